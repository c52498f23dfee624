"""Entry points: ``run``, ``@main`` and the ``Runtime`` class."""

from __future__ import annotations

import functools
import inspect
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, overload

from . import _core, _introspect
from ._strand import Strand

__all__ = ["Runtime", "main", "run"]

T = TypeVar("T")
P = ParamSpec("P")

_logger = logging.getLogger("manyio")


def default_exception_handler(context: dict[str, Any]) -> None:
    """Logs an exception that no one retrieved from its task, with its traceback."""
    exc = context.get("exception")
    _logger.error(
        context.get("message", "unhandled exception in a manyio task"),
        exc_info=(type(exc), exc, exc.__traceback__) if isinstance(exc, BaseException) else None,
    )


def _as_coroutine(main: Any, what: str) -> Coroutine[Any, Any, Any]:
    if inspect.iscoroutine(main):
        return main
    if callable(main):
        result = main()
        if inspect.iscoroutine(result):
            return result
        raise TypeError(f"{what} expects a coroutine or an async function, got {main!r} returning {result!r}")
    if inspect.isawaitable(main):
        return _await(main)
    raise TypeError(f"{what} expects a coroutine or an async function, got {main!r}")


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _in_task() -> bool:
    try:
        _core.current_task()
    except RuntimeError:
        return False
    return True


class Runtime:
    """A set of worker threads that run tasks in parallel.

    Use it as a context manager, or call :meth:`close` yourself. ``block_on`` and ``spawn``
    may be called from any thread that is not one of the runtime's workers.

    Example::

        with manyio.Runtime(threads=2) as rt:
            assert rt.block_on(compute()) == 42
    """

    def __init__(
        self,
        threads: int | None = None,
        *,
        exception_handler: Callable[[dict[str, Any]], object] | None = None,
    ) -> None:
        core = _core.Runtime(threads, exception_handler or default_exception_handler)
        self._core = core
        # A runtime nobody closed is closed when it is collected or at interpreter exit, so
        # its worker threads never outlive it.
        self._finalizer = weakref.finalize(self, core.close)
        # So `python -m manyio ps` can find it from outside any task.
        self._serial = _introspect.register(self)

    @property
    def threads(self) -> int:
        """Number of worker threads."""
        return self._core.threads

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._core.closed

    def block_on(
        self,
        main: Coroutine[Any, Any, T] | Callable[[], Coroutine[Any, Any, T]],
        *,
        strand: Strand | None = None,
    ) -> T:
        """Runs ``main`` to completion on the runtime and returns its result.

        With ``strand``, ``main`` runs in that strand, and so do the tasks it spawns.
        """
        return self._core.block_on(_as_coroutine(main, "Runtime.block_on()"), strand=strand)

    def spawn(
        self, coro: Coroutine[Any, Any, T], *, name: str | None = None, strand: Strand | None = None
    ) -> _core.Task[T]:
        """Starts ``coro`` as a task without waiting for it (in ``strand``, if given)."""
        return self._core.spawn(coro, name=name, strand=strand)

    def stats(self) -> dict[str, Any]:
        """The runtime's counters (see :func:`manyio.stats`)."""
        return self._core.stats()

    def close(self) -> None:
        """Cancels the tasks still running, waits for them, and stops the workers."""
        # No Python lock here (see _introspect._registry): the core's close is idempotent, and
        # a second caller waits for the first to finish joining the workers. If it raises
        # (called from one of its own tasks), the runtime stays listed and its finalizer armed.
        self._core.close()
        _introspect.unregister(self._serial)
        self._finalizer.detach()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return repr(self._core)


def run(
    main: Coroutine[Any, Any, T] | Callable[[], Coroutine[Any, Any, T]],
    *,
    threads: int | None = None,
    exception_handler: Callable[[dict[str, Any]], object] | None = None,
) -> T:
    """Runs ``main`` on a new runtime with ``threads`` workers (default: one per CPU).

    When ``main`` returns, tasks still running are cancelled and awaited before ``run``
    returns: nothing is leaked.

    Example::

        async def main():
            return 42

        assert manyio.run(main()) == 42
    """
    if _in_task():
        if inspect.iscoroutine(main):
            main.close()
        raise RuntimeError(
            "manyio.run() cannot be called from a running manyio task: it would block a worker; "
            "await the coroutine (or spawn it) instead"
        )
    coro = _as_coroutine(main, "manyio.run()")
    try:
        rt = Runtime(threads, exception_handler=exception_handler)
    except BaseException:
        coro.close()
        raise
    with rt:
        return rt.block_on(coro)


@overload
def main(fn: Callable[P, Coroutine[Any, Any, T]], /) -> Callable[P, T]: ...
@overload
def main(
    *, threads: int | None = None
) -> Callable[[Callable[P, Coroutine[Any, Any, T]]], Callable[P, T]]: ...
def main(fn: Any = None, /, *, threads: int | None = None) -> Any:
    """Turns an async function into a plain one that runs it with :func:`run`.

    Example::

        @manyio.main(threads=2)
        async def app() -> int:
            return 7

        assert app() == 7
    """

    def wrap(f: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
        @functools.wraps(f)
        def runner(*args: Any, **kwargs: Any) -> Any:
            return run(f(*args, **kwargs), threads=threads)

        return runner

    return wrap(fn) if fn is not None else wrap
