"""The part of :mod:`asyncio` that asyncio libraries use, answered by manyio inside manyio tasks.

Adapters (``manyio_redis.patch``, ``manyio_asyncpg.patch``) put this module, or a module
built on it, where a library's modules say ``asyncio``. Every function asks, when called,
who runs the caller:

* a manyio task (on any worker, in no asyncio task): manyio answers. Timeouts are cancel
  scopes with real deadlines (``reschedule`` included), ``shield`` of a coroutine really
  shields (it finishes before the caller's cancellation is raised; a shielded future is left
  alone while the caller stops waiting, as in asyncio), locks are manyio's thread-safe ones,
  sockets are manyio's;
* anything else (an asyncio task, on asyncio's own loop or on a :mod:`manyio.asyncio` facade
  loop): stock asyncio answers, so asyncio programs in the same process keep working.

Locks, conditions and events are created before anyone awaits them (in ``Redis.__init__``,
maybe at import time), so they pick their implementation lazily, on first use, per side.
Names not defined here are asyncio's own (``CancelledError``, ``IncompleteReadError``...).
"""

from __future__ import annotations

import asyncio as _asyncio
import contextvars
import functools
import inspect
import logging
import math
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterable
from types import TracebackType
from typing import Any

import manyio
from manyio._core import FutureDone as _FutureDone
from manyio._core import current_task as _manyio_current_task
from manyio.compat import on_manyio

__all__ = [
    "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION", "Condition", "Event", "Future", "LifoQueue",
    "Lock", "Queue", "Task", "Timeout", "create_task", "current_task", "ensure_future", "gather",
    "get_event_loop", "get_running_loop", "iscoroutinefunction", "on_manyio", "shield", "sleep",
    "timeout", "timeout_at", "to_thread", "wait", "wait_for",
]  # fmt: skip

_logger = logging.getLogger("manyio.compat")


def __getattr__(name: str) -> Any:
    return getattr(_asyncio, name)


# --- time and tasks ---


async def sleep(delay: float, result: Any = None) -> Any:
    if on_manyio():
        await manyio.sleep(max(delay, 0.0))
        return result
    return await _asyncio.sleep(delay, result)


class Task:
    """An asyncio-style handle on a manyio task: done callbacks, ``exception()``, ``get_name()``."""

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str | None,
        context: contextvars.Context | None,
        *,
        spawn: Callable[[Coroutine[Any, Any, Any], str | None], Any] | None = None,
    ) -> None:
        self._callbacks: list[tuple[Callable[[Task], object], contextvars.Context]] = []
        self._mutex = threading.Lock()
        self._watching = False
        coro = _as_current(self, coro)
        if context is not None:
            coro = _in_context(context, coro)
        self._task = manyio.spawn(coro, name=name) if spawn is None else spawn(coro, name)

    def add_done_callback(self, fn: Callable[[Task], object], *, context: contextvars.Context | None = None):
        """Calls ``fn(task)`` once the task is done, from a task that waits for it."""
        ctx = context if context is not None else contextvars.copy_context()
        with self._mutex:
            self._callbacks.append((fn, ctx))
            start, self._watching = not self._watching, True
        if start:
            manyio.spawn(self._watch(), name=f"done callbacks of {self._task.name}")

    async def _watch(self) -> None:
        try:
            await self._task
        except BaseException:
            pass  # the callbacks read it with result() or exception()
        while True:
            with self._mutex:
                callbacks, self._callbacks = self._callbacks, []
                if not callbacks:
                    self._watching = False
                    return
            for fn, ctx in callbacks:
                try:
                    ctx.run(fn, self)
                except Exception:
                    _logger.exception("exception in a done callback of %r", self)

    def remove_done_callback(self, fn: Callable[[Task], object]) -> int:
        with self._mutex:
            before = len(self._callbacks)
            self._callbacks = [(f, c) for f, c in self._callbacks if f != fn]
            return before - len(self._callbacks)

    def cancel(self, msg: Any = None) -> bool:
        if self._task.done():
            return False
        self._task.cancel()
        return True

    def done(self) -> bool:
        return self._task.done()

    def cancelled(self) -> bool:
        return self._task.cancelled()

    def result(self) -> Any:
        return self._task.result()

    def exception(self) -> BaseException | None:
        return self._task.exception()

    def get_name(self) -> str:
        return self._task.name

    def set_name(self, value: object) -> None:
        self._task.name = value

    def get_coro(self) -> Any:
        return self._task.get_coro()

    def __await__(self) -> Generator[Any, None, Any]:
        return self._task.__await__()

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<manyio.compat.Task {self.get_name()!r} {state}>"


async def _in_context(context: contextvars.Context, coro: Coroutine[Any, Any, Any]) -> Any:
    # manyio runs each task in a copy of the spawner's context; asyncio's context= asks for a
    # given one. Step the coroutine inside it.
    return await _ContextStepper(context, coro)


class _ContextStepper:
    def __init__(self, context: contextvars.Context, coro: Coroutine[Any, Any, Any]) -> None:
        self._context = context
        self._coro = coro

    def __await__(self) -> Generator[Any, Any, Any]:
        run, coro = self._context.run, self._coro
        send: Any = None
        error: BaseException | None = None
        while True:
            try:
                yielded = run(coro.throw, error) if error is not None else run(coro.send, send)
            except StopIteration as stop:
                return stop.value
            error = None
            try:
                send = yield yielded
            except BaseException as e:
                error = e


# Either kind of task handle; a tuple, since ``Task | manyio.Task`` would build a union per call.
_TASKS = (Task, manyio.Task)


def create_task(
    coro: Coroutine[Any, Any, Any], *, name: str | None = None, context: contextvars.Context | None = None
) -> Any:
    if on_manyio():
        return Task(coro, name, context)
    return _asyncio.create_task(coro, name=name, context=context)


def ensure_future(aw: Awaitable[Any], *, loop: Any = None) -> Any:
    if on_manyio():
        if isinstance(aw, _TASKS):
            return aw
        return Task(_await(aw), None, None)
    return _asyncio.ensure_future(aw, loop=loop)


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


# The shim Task whose manyio task is running, with that manyio task: tasks it spawns inherit
# the variable (a copy of its context), so the manyio task tells whether it is really theirs.
_current: contextvars.ContextVar[tuple[Task, Any]] = contextvars.ContextVar("manyio_aioshim_task")


async def _as_current(handle: Task, coro: Coroutine[Any, Any, Any]) -> Any:
    _current.set((handle, _manyio_current_task()))
    return await coro


def current_task(loop: Any = None) -> Any:
    if loop is None and on_manyio():
        # asyncio's promise: inside a task from create_task(), the very object it returned.
        me = _manyio_current_task()
        entry = _current.get(None)
        return entry[0] if entry is not None and entry[1] is me else me
    own = getattr(loop, "manyio_current_task", None)
    if own is not None:
        return own()  # a loop-like object of an adapter that runs its tasks on manyio
    return _asyncio.current_task(loop)


class _Loop:
    """What libraries ask of ``get_running_loop()`` inside a manyio task."""

    def time(self) -> float:
        return manyio.current_time()

    def create_task(self, coro: Coroutine[Any, Any, Any], *, name: str | None = None, context: Any = None):
        return Task(coro, name, context)

    def run_in_executor(self, executor: Any, fn: Callable[..., Any], *args: Any) -> Any:
        if executor is not None:
            return _asyncio.wrap_future(executor.submit(fn, *args))
        return Task(manyio.to_thread(fn, *args), None, None)

    def create_future(self) -> Future[Any]:
        return Future(loop=self)

    def call_soon(self, callback: Callable[..., object], *args: Any, context: Any = None) -> _asyncio.Handle:
        """Runs ``callback(*args)`` soon, in a manyio task of its own (a future's done
        callbacks come here); manyio's own wake-up of a task runs at once."""
        handle = _asyncio.Handle(callback, args, self, context)  # type: ignore[arg-type]
        if type(callback) is _FutureDone:
            callback(*args)
        else:
            manyio.spawn(_run_handle(handle), name="asyncio callback")
        return handle

    call_soon_threadsafe = call_soon

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        _logger.error(context.get("message", "unhandled error"), exc_info=exc)

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return False

    def get_debug(self) -> bool:
        return False


async def _run_handle(handle: _asyncio.Handle) -> None:
    if not handle._cancelled:
        handle._run()


_LOOP = _Loop()


class Future(_asyncio.Future):  # type: ignore[type-arg]
    """``asyncio.Future``: made with no loop inside a manyio task, it belongs to the shim's loop
    (its done callbacks run in manyio tasks) instead of failing for want of an asyncio loop."""

    def __init__(self, *, loop: Any = None) -> None:
        if loop is None and on_manyio():
            loop = _LOOP
        super().__init__(loop=loop)


def get_running_loop() -> Any:
    if on_manyio():
        return _LOOP
    return _asyncio.get_running_loop()


def get_event_loop() -> Any:
    if on_manyio():
        return _LOOP
    return _asyncio.get_event_loop()


async def to_thread(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    if on_manyio():
        return await manyio.to_thread(functools.partial(fn, *args, **kwargs))
    return await _asyncio.to_thread(fn, *args, **kwargs)


def iscoroutinefunction(fn: Any) -> bool:
    return inspect.iscoroutinefunction(fn)


# --- waiting: timeouts, shield, gather ---


class Timeout:
    """``asyncio.timeout`` as a manyio cancel scope: the deadline is real and moves at once
    with :meth:`reschedule`; expiry raises :class:`TimeoutError` out of the block."""

    def __init__(self, when: float | None) -> None:
        self._when = when
        self._scope: manyio.CancelScope | None = None

    def when(self) -> float | None:
        return self._scope.when() if self._scope is not None else self._when

    def reschedule(self, when: float | None) -> None:
        self._when = when
        if self._scope is not None:
            self._scope.reschedule(when)

    def expired(self) -> bool:
        return self._scope is not None and self._scope.cancel_called

    async def __aenter__(self) -> Timeout:
        when = self._when
        scope = self._scope = manyio.CancelScope(deadline=math.inf if when is None else when)
        scope.__enter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        scope = self._scope
        assert scope is not None
        swallowed = scope.__exit__(exc_type, exc, tb)
        if swallowed and scope.cancelled_caught:
            raise TimeoutError from exc
        return swallowed


def timeout(delay: float | None) -> Any:
    if on_manyio():
        return Timeout(None if delay is None else manyio.current_time() + delay)
    return _asyncio.timeout(delay)


def timeout_at(when: float | None) -> Any:
    if on_manyio():
        return Timeout(when)
    return _asyncio.timeout_at(when)


async def wait_for(aw: Awaitable[Any], timeout: float | None) -> Any:
    if not on_manyio():
        return await _asyncio.wait_for(aw, timeout)
    if timeout is None:
        return await aw
    if isinstance(aw, _TASKS):
        with manyio.move_on_after(timeout) as scope:
            return await aw
        if scope.cancelled_caught:
            aw.cancel()
            with manyio.CancelScope(shield=True):
                try:
                    await aw
                except BaseException:
                    pass
        raise TimeoutError
    with manyio.CancelScope(deadline=manyio.current_time() + timeout) as scope:
        return await aw
    assert scope.cancelled_caught
    raise TimeoutError


def shield(aw: Awaitable[Any]) -> Any:
    if on_manyio():
        return _shielded(aw)
    return _asyncio.shield(aw)


async def _shielded(aw: Awaitable[Any]) -> Any:
    if isinstance(aw, _asyncio.Future):
        return await _await_uncancelled(aw)
    # Level-triggered cancellation makes this a real shield: the awaited work finishes, and
    # the caller's cancellation is raised at its next checkpoint after it.
    with manyio.CancelScope(shield=True):
        return await aw


async def _await_uncancelled(fut: _asyncio.Future[Any]) -> Any:
    """A future already exists on its own: as in asyncio, a cancelled caller stops waiting for
    it at once and the future is left alone (awaiting it directly would cancel it)."""
    done = manyio.Event()

    def wake(_: object) -> None:
        done.set()

    fut.add_done_callback(wake)
    try:
        await done.wait()
    finally:
        fut.remove_done_callback(wake)
    return fut.result()


FIRST_COMPLETED = _asyncio.FIRST_COMPLETED
FIRST_EXCEPTION = _asyncio.FIRST_EXCEPTION
ALL_COMPLETED = _asyncio.ALL_COMPLETED


async def wait(
    fs: Iterable[Any], *, timeout: float | None = None, return_when: str = ALL_COMPLETED
) -> tuple[set[Any], set[Any]]:
    if not on_manyio():
        return await _asyncio.wait(fs, timeout=timeout, return_when=return_when)
    pending = set(fs)
    if not pending:
        raise ValueError("Set of Tasks/Futures is empty.")
    done: set[Any] = set()
    with manyio.move_on_after(math.inf if timeout is None else timeout):
        async with manyio.TaskGroup() as tg:

            async def watch(task: Any) -> None:
                inner = task._task if isinstance(task, Task) else task
                try:
                    await inner
                except BaseException:
                    if not inner.done():
                        return  # this watcher was cancelled, not the task
                done.add(task)
                failed = not inner.cancelled() and inner.exception() is not None
                if return_when == FIRST_COMPLETED or (return_when == FIRST_EXCEPTION and failed):
                    tg.cancel_scope.cancel()

            for task in pending:
                tg.start_soon(watch, task)
    return done, pending - done


async def gather(*aws: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
    if not on_manyio():
        return await _asyncio.gather(*aws, return_exceptions=return_exceptions)
    if not aws:
        return []
    results: list[Any] = [None] * len(aws)
    first_error: list[BaseException] = []

    async def one(i: int, aw: Awaitable[Any]) -> None:
        try:
            results[i] = await aw
        except Exception as e:
            if return_exceptions:
                results[i] = e
            elif not first_error:
                # asyncio.gather raises the first error; we also cancel the rest and wait for
                # them rather than leaving them running unobserved.
                first_error.append(e)
                tg.cancel_scope.cancel()

    async with manyio.TaskGroup() as tg:
        for i, aw in enumerate(aws):
            tg.start_soon(one, i, aw)
    if first_error:
        raise first_error[0]
    return results


# --- synchronisation: one object, the implementation of whichever side uses it ---


class _Lazy:
    """Holds a manyio and an asyncio implementation, each made on first use by its side."""

    _manyio_factory: Callable[[], Any]
    _asyncio_factory: Callable[[], Any]

    def __init__(self) -> None:
        self._m: Any = None
        self._a: Any = None
        self._mutex = threading.Lock()

    def _impl(self) -> Any:
        if on_manyio():
            if self._m is None:
                with self._mutex:
                    if self._m is None:
                        self._m = self._make_manyio()
            return self._m
        if self._a is None:
            with self._mutex:
                if self._a is None:
                    self._a = self._make_asyncio()
        return self._a

    def _existing(self) -> Any:
        """For calls that may come from outside any task: the side already in use."""
        if self._m is not None and (self._a is None or on_manyio()):
            return self._m
        if self._a is not None:
            return self._a
        return self._impl()

    def _make_manyio(self) -> Any:
        return type(self)._manyio_factory()

    def _make_asyncio(self) -> Any:
        return type(self)._asyncio_factory()


async def _acquire(lock: Any) -> None:
    try:
        lock.acquire_nowait()
    except manyio.WouldBlock:
        await lock.acquire()


class _Acquirable(_Lazy):
    """What ``Lock`` and ``Condition`` share: acquire, release, ``async with``.

    asyncio's acquire of a free lock does not yield, so it is no cancellation point; code
    written for asyncio relies on that (redis-py takes its pool lock in ``finally`` blocks of
    cancelled tasks). manyio's ``acquire`` is a checkpoint, so the manyio side takes a free
    lock without one. ``async with`` returns the implementation's awaitables directly: redis-py
    enters its pool lock twice per command.
    """

    # How the manyio side takes its lock (an unbound function: no frame of ours per call).
    _acquire_manyio: Callable[[Any], Awaitable[None]] = staticmethod(_acquire)

    async def acquire(self) -> bool:
        await self.__aenter__()
        return True

    def release(self) -> None:
        self._existing().release()

    def locked(self) -> bool:
        return self._existing().locked()

    # The two below inline _impl and _existing for manyio's side.
    def __aenter__(self) -> Awaitable[None]:
        if on_manyio():
            return self._acquire_manyio(self._m if self._m is not None else self._impl())
        return self._impl().__aenter__()

    def __aexit__(self, *exc_info: object) -> Awaitable[None]:
        if self._m is not None and (self._a is None or on_manyio()):
            return self._m.__aexit__(*exc_info)
        return self._existing().__aexit__(*exc_info)


class Lock(_Acquirable):
    # Barging (fair=False): asyncio code relies on no order among waiters, and a FIFO hand-off
    # convoys on a busy machine (redis-py's pool lock, taken twice per command).
    _manyio_factory = functools.partial(manyio.Lock, fair=False)
    _asyncio_factory = _asyncio.Lock
    _acquire_manyio = staticmethod(manyio.Lock.acquire_unchecked)


class Condition(_Acquirable):
    def __init__(self, lock: Lock | None = None) -> None:
        super().__init__()
        self._lock = lock

    def _make_manyio(self) -> Any:
        inner = self._lock._impl() if self._lock is not None else None
        return manyio.Condition(inner)

    def _make_asyncio(self) -> Any:
        inner = self._lock._impl() if self._lock is not None else None
        return _asyncio.Condition(inner)

    async def wait(self) -> bool:
        await self._impl().wait()
        return True

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:
        return await self._impl().wait_for(predicate)

    def notify(self, n: int = 1) -> None:
        self._impl().notify(n)

    def notify_all(self) -> None:
        self._impl().notify_all()


class Queue(_Lazy):
    """asyncio.Queue's API; the manyio side is :class:`manyio.Queue` (same API, thread-safe)."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__()
        self._maxsize = maxsize

    def _make_manyio(self) -> Any:
        return manyio.Queue(self._maxsize)

    def _make_asyncio(self) -> Any:
        return _asyncio.Queue(self._maxsize)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._existing(), name)

    async def get(self) -> Any:
        return await self._impl().get()

    async def put(self, item: Any) -> None:
        await self._impl().put(item)

    async def join(self) -> None:
        await self._impl().join()


class LifoQueue(Queue):
    def _make_manyio(self) -> Any:
        return manyio.LifoQueue(self._maxsize)

    def _make_asyncio(self) -> Any:
        return _asyncio.LifoQueue(self._maxsize)


class Event(_Lazy):
    """Set from anywhere (also plain code); both sides see it."""

    def __init__(self) -> None:
        super().__init__()
        self._set = False

    def _make_manyio(self) -> Any:
        event = manyio.Event()
        if self._set:
            event.set()
        return event

    def _make_asyncio(self) -> Any:
        event = _asyncio.Event()
        if self._set:
            event.set()
        return event

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        with self._mutex:
            self._set = True
            sides = [s for s in (self._m, self._a) if s is not None]
        for side in sides:
            side.set()

    def clear(self) -> None:
        with self._mutex:
            self._set = False
            sides = [s for s in (self._m, self._a) if s is not None]
        for side in sides:
            side.clear()

    async def wait(self) -> bool:
        await self._impl().wait()
        return True


# --- pointing a library's modules at a shim ---


def replacements(shim: types.ModuleType, names: Iterable[str]) -> dict[int, object]:
    """What :func:`patch_module` swaps: ``asyncio`` itself for ``shim``, and each of ``names``
    bound directly (``from asyncio import timeout``) for the shim's version, matched by identity."""
    table: dict[int, object] = {id(getattr(_asyncio, name)): getattr(shim, name) for name in names}
    table[id(_asyncio)] = shim
    return table


def patch_module(module: types.ModuleType, table: dict[int, object]) -> bool:
    """Rebinds ``module``'s globals found in ``table``; True when any changed."""
    changed = False
    namespace = vars(module)
    for name, value in list(namespace.items()):
        new = table.get(id(value))
        if new is not None:
            namespace[name] = new
            changed = True
    return changed
