"""Running blocking code: :func:`to_thread`, and calls back into the runtime from there."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from . import _core
from ._core import CancelScope
from ._sync import CapacityLimiter

__all__ = ["current_default_thread_limiter", "from_thread_run", "from_thread_run_sync", "to_thread"]

T = TypeVar("T")

_DEFAULT_TOKENS = 40
_default_limiter: CapacityLimiter | None = None
_default_lock = threading.Lock()


def current_default_thread_limiter() -> CapacityLimiter:
    """The limiter :func:`to_thread` uses when none is given (40 threads at once)."""
    global _default_limiter
    with _default_lock:
        if _default_limiter is None:
            _default_limiter = CapacityLimiter(_DEFAULT_TOKENS)
        return _default_limiter


async def to_thread(
    fn: Callable[..., T],
    *args: Any,
    limiter: CapacityLimiter | None = None,
    abandon_on_cancel: bool = False,
) -> T:
    """Runs ``fn(*args)`` in a thread of the blocking pool and returns its result.

    The call runs in a copy of the task's context. By default a cancelled task still waits for
    the thread to finish (the cancellation is raised at its next checkpoint); with
    ``abandon_on_cancel=True`` it stops waiting and the result is discarded.

    Example::

        data = await manyio.to_thread(path.read_bytes)
    """
    limiter = limiter if limiter is not None else current_default_thread_limiter()
    # One borrower per call: an abandoned thread keeps its token until it really finishes,
    # and must not stop the same task from starting another thread meanwhile.
    borrower = object()
    await limiter.acquire_on_behalf_of(borrower)
    context = contextvars.copy_context()

    def call() -> T:
        try:
            return context.run(fn, *args)
        finally:
            limiter.release_on_behalf_of(borrower)

    try:
        waiter = _core.to_thread_raw(call)
    except BaseException:
        limiter.release_on_behalf_of(borrower)
        raise
    if abandon_on_cancel:
        return await waiter
    with CancelScope(shield=True):
        return await waiter


def from_thread_run(async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
    """From a :func:`to_thread` thread: runs ``async_fn(*args)`` on the runtime and waits."""
    rt = _core.from_thread_runtime()

    async def call() -> T:
        return await async_fn(*args)

    return rt.block_on(call())


def from_thread_run_sync(fn: Callable[..., T], *args: Any) -> T:
    """From a :func:`to_thread` thread: runs ``fn(*args)`` in a task on the runtime and waits."""
    rt = _core.from_thread_runtime()

    async def call() -> T:
        return fn(*args)

    return rt.block_on(call())
