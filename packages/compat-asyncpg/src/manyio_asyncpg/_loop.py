"""The event loop asyncpg sees: one per connection (and one per pool), a serial domain.

asyncpg's protocol keeps its state in a Cython object with no locks: a transport callback
running while a query is being sent corrupts it. So everything that touches one connection
runs serially: its reader's ``data_received``, its timers, the callbacks of its futures, and
each step of every protocol operation, whoever calls it. The loop's lock is held for each
such step (a few microseconds, never across an await), so the caller's own task runs the
operation's steps on whichever worker it is on, with no hand-off to another task; different
connections run in parallel, which is the point.

``SerialLoop`` is the small part of an asyncio event loop asyncpg uses: futures, callbacks,
timers, tasks, an executor and connections. It is not a general event loop (asyncio code
that needs one runs on :mod:`manyio.asyncio`); it carries no selector and no thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import manyio
from manyio import _aioshim, _core
from manyio._aioshim import Task as _ShimTask
from manyio._core import Serialized, SerialLock

from ._transport import open_transport, upgrade_transport

__all__ = ["SerialLoop"]

T = TypeVar("T")
_logger = logging.getLogger("manyio_asyncpg")
# The asyncio-style handle of the current task, for ``asyncio.current_task(loop)``.
# Cancelled timers are dropped from the heap once they are this many and half of it.
_CLEANUP_THRESHOLD = 100


class SerialLoop:
    """asyncio's event loop API, as much as asyncpg uses, with every callback serialized.

    ``locked_tasks``: whether tasks from :meth:`create_task` run their steps holding the
    lock too (the pool's loop: its tasks are its own bookkeeping). A connection's tasks run
    without it (asyncpg's cancel request, user listeners): their protocol calls lock anyway.

    ``parent``: the loop the user handed asyncpg (``connect(loop=...)``, a pool's loop);
    errors asyncpg reports with ``call_exception_handler`` go to its handler.

    ``lock``: a lock to share (a pool holder's, so the holder and its connection are one
    serial domain); a new one by default.
    """

    def __init__(
        self, *, locked_tasks: bool = False, parent: Any = None, lock: SerialLock | None = None
    ) -> None:
        self.lock = SerialLock() if lock is None else lock
        self._locked_tasks = locked_tasks
        self._parent = parent
        self._runtime = _core.current_runtime()
        self._mutex = threading.Lock()  # guards the timers, never held while running
        # The ready queue is native (a reply's callbacks cross it several times); its
        # methods are bound here so that calling them costs no Python frame.
        self._callbacks = _core.SerialCallbacks(self.lock, self._start_drain, self.call_exception_handler)
        self.call_soon = self.call_soon_threadsafe = self._callbacks.call_soon  # type: ignore[method-assign]
        self.run_ready = self._callbacks.run_ready  # type: ignore[method-assign]
        self.deliver = self._callbacks.deliver  # type: ignore[method-assign]
        # (when, sequence, handle): tuples compare in C, TimerHandles with a Python __lt__.
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._timer_seq = itertools.count()
        self._cancelled_timers = 0
        self._timer_task_running = False
        self._timer_wake: manyio.Event | None = None
        self.set_debug(False)
        # Three futures per query: a C partial instead of the method's Python frame.
        self.create_future = functools.partial(asyncio.Future, loop=self)  # type: ignore[method-assign]
        self._closed = False

    # -- running code serially ----------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> _core.Task[T]:
        return self._runtime.spawn(coro, name=name)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``await coro`` with each of its steps holding the loop's lock.

        When it raises (a cancellation cancels the future it awaited, and asyncpg reacts in
        that future's callbacks by sending PostgreSQL a cancel request), the callbacks queued
        so far run before the caller sees the exception, as asyncio runs them before the
        task resumes.
        """
        return await Serialized(coro, self.lock, self.run_ready)

    # -- callbacks ----------------------------------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any, context: Any = None) -> Any:
        """Queues ``callback(*args)`` to run holding the lock. A task's wake-up from a future
        (``FutureDone``: thread-safe, runs no user code) runs at once."""
        return self._callbacks.call_soon(callback, *args, context=context)

    call_soon_threadsafe = call_soon

    def _start_drain(self) -> None:
        self.spawn(self._drain(), "asyncpg callbacks")

    async def _drain(self) -> None:
        with self.lock:
            self.run_ready()

    def run_ready(self) -> None:
        """Runs the queued callbacks (holding the lock) until none are left."""
        self._callbacks.run_ready()

    def deliver(self, fn: Callable[..., object], *args: Any) -> None:
        """Runs ``fn(*args)`` (a transport callback) holding the lock, then the callbacks it
        queued, without a separate task for them."""
        self._callbacks.deliver(fn, *args)

    # -- timers -------------------------------------------------------------------------

    time = staticmethod(manyio.current_time)

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None):
        return self.call_at(self.time() + delay, callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any, context: Any = None):
        handle = (_Timer if not self._debug else asyncio.TimerHandle)(when, callback, args, self, context)  # type: ignore[arg-type]
        with self._mutex:
            heapq.heappush(self._timers, (when, next(self._timer_seq), handle))
            handle._scheduled = True
            earliest = self._timers[0][2] is handle
            start = not self._timer_task_running
            self._timer_task_running = True
            wake = self._timer_wake if earliest else None
        if start:
            self.spawn(self._run_timers(), "asyncpg timers")
        elif wake is not None:
            wake.set()
        return handle

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        with self._mutex:
            if not handle._scheduled:
                return
            self._cancelled_timers += 1
            if self._cancelled_timers > _CLEANUP_THRESHOLD and self._cancelled_timers * 2 > len(self._timers):
                live = []
                for entry in self._timers:
                    if entry[2]._cancelled:
                        entry[2]._scheduled = False
                    else:
                        live.append(entry)
                heapq.heapify(live)
                self._timers = live
                self._cancelled_timers = 0

    async def _run_timers(self) -> None:
        """Sleeps until the earliest timer, runs those due; exits when none are left."""
        while True:
            due: list[asyncio.TimerHandle] = []
            with self._mutex:
                timers = self._timers
                while timers and timers[0][2]._cancelled:
                    heapq.heappop(timers)[2]._scheduled = False
                    self._cancelled_timers -= 1
                if not timers:
                    self._timer_task_running = False
                    self._timer_wake = None
                    return
                now = self.time()
                while timers and timers[0][0] <= now:
                    handle = heapq.heappop(timers)[2]
                    handle._scheduled = False
                    if handle._cancelled:
                        self._cancelled_timers -= 1
                    else:
                        due.append(handle)
                if not due:
                    wake = self._timer_wake = manyio.Event()
                    deadline = timers[0][0]
            if due:
                with self.lock:
                    for handle in due:
                        if not handle._cancelled:
                            handle._run()
                    self.run_ready()
                continue
            with manyio.move_on_at(deadline):
                await wake.wait()

    # -- futures and tasks --------------------------------------------------------------

    def create_future(self) -> asyncio.Future[Any]:
        return asyncio.Future(loop=self)  # type: ignore[arg-type]

    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, name: str | None = None, context: Any = None
    ) -> Task:
        return Task(self, coro, name, context)

    def manyio_current_task(self) -> Any:
        """``asyncio.current_task(loop)``: the caller's handle if this loop created its task."""
        handle = _aioshim.current_task()  # the shim knows which Task object runs
        return handle if isinstance(handle, Task) and handle._loop is self else None

    def run_in_executor(self, executor: Any, fn: Callable[..., T], *args: Any) -> Any:
        if executor is None:
            return self.create_task(manyio.to_thread(fn, *args))
        return asyncio.wrap_future(executor.submit(fn, *args), loop=self)  # type: ignore[arg-type]

    # -- connections --------------------------------------------------------------------

    async def create_connection(
        self, protocol_factory: Callable[[], Any], host: str | None = None, port: int | None = None, *,
        ssl: Any = None, server_hostname: str | None = None, sock: Any = None, **_: Any,
    ) -> tuple[Any, Any]:  # fmt: skip
        return await open_transport(
            self, protocol_factory, host=host, port=port, ssl=ssl, server_hostname=server_hostname, sock=sock
        )

    async def create_unix_connection(
        self, protocol_factory: Callable[[], Any], path: str | None = None, *, ssl: Any = None,
        server_hostname: str | None = None, sock: Any = None, **_: Any,
    ) -> tuple[Any, Any]:  # fmt: skip
        return await open_transport(
            self, protocol_factory, path=path, ssl=ssl, server_hostname=server_hostname, sock=sock
        )

    async def start_tls(
        self, transport: Any, protocol: Any, sslcontext: Any, *, server_side: bool = False,
        server_hostname: str | None = None, **_: Any,
    ) -> Any:  # fmt: skip
        return await upgrade_transport(transport, protocol, sslcontext, server_hostname)

    # -- the rest of the loop API asyncpg touches ----------------------------------------

    def get_debug(self) -> bool:
        return self._debug

    def set_debug(self, enabled: bool) -> None:
        self._debug = bool(enabled)
        # asyncio's Future and Handle ask get_debug() on creation: seven times per query.
        # A C callable returning the flag saves a Python frame each time.
        self.get_debug = itertools.repeat(self._debug).__next__  # type: ignore[method-assign]

    def is_running(self) -> bool:
        return not self._closed

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        report = getattr(self._parent, "call_exception_handler", None)
        if report is None:
            self.default_exception_handler(context)
        else:
            report(context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        _logger.error("%s", context.get("message", "unhandled error in asyncpg"), exc_info=exc)

    def __repr__(self) -> str:
        return f"<manyio_asyncpg.SerialLoop at {id(self):#x}>"


class Task(_ShimTask):
    """A task a loop created (``loop.create_task``), with asyncio's done callbacks."""

    def __init__(
        self, loop: SerialLoop, coro: Coroutine[Any, Any, Any], name: str | None, context: Any
    ) -> None:
        self._loop = loop
        if loop._locked_tasks:
            coro = loop.run(coro)
        super().__init__(coro, name, context, spawn=_spawner(loop))

    def get_loop(self) -> SerialLoop:
        return self._loop


def _spawner(loop: SerialLoop) -> Callable[[Any, str | None], Any]:
    return lambda coro, name: loop.spawn(coro, name or "asyncpg task")


class _Timer(asyncio.TimerHandle):
    """asyncio's TimerHandle built and cancelled without its chain of calls (the loop is not
    in debug mode). A pool arms one per query (a connection's inactivity timer), and the next
    query cancels it."""

    __slots__ = ()

    def __init__(
        self, when: float, callback: Callable[..., object], args: tuple[Any, ...], loop: Any, context: Any
    ) -> None:
        self._when = when
        self._scheduled = False
        self._callback = callback
        self._args = args
        self._loop = loop
        self._context = contextvars.copy_context() if context is None else context
        self._cancelled = False
        self._repr = None
        self._source_traceback = None

    def cancel(self) -> None:
        if not self._cancelled:
            self._loop._timer_handle_cancelled(self)
            self._cancelled = True
            self._callback = None
            self._args = None
