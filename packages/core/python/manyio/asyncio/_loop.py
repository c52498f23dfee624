"""The asyncio event loop facade: one per strand, driven by a manyio task in that strand.

The loop is CPython's own selector event loop (transports, SSL, servers, subprocesses,
executors: all unchanged) with one difference: it never blocks a thread in ``select()``.
A driver task runs the loop's iterations inside the strand and, when there is nothing to
run, parks in manyio's reactor on the loop's epoll descriptor (with the next timer as its
deadline). Every asyncio callback therefore runs inside the strand, serially, on whichever
worker is free, while other strands (and their loops) run in parallel.

Two ways to run it:

* live: the loop belongs to a strand of a running manyio runtime (``loop_for(strand)``,
  ``run_in_strand``, ``manyio.asyncio.run``). Callbacks run as soon as they are scheduled;
  the driver exits when the loop has nothing left (no callbacks, timers or watched fds) and
  starts again on demand.
* classic: ``new_event_loop()`` outside a runtime, then ``run_until_complete`` /
  ``run_forever`` from a plain thread (``asyncio.run(main(), loop_factory=EventLoop)``). The
  calling thread blocks while the loop's own runtime runs it; between runs nothing does.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import selectors
import threading
from typing import Any

from .. import _core
from .._exceptions import ClosedResourceError
from .._run import Runtime
from .._strand import Strand

__all__ = ["EventLoop", "loop_for", "new_event_loop"]

_attach_lock = threading.Lock()
# Loop iterations the driver runs before yielding its worker while callbacks keep coming.
_ITERATIONS_PER_TURN = 32


class _PollOnlySelector(selectors.EpollSelector):
    """``select()`` never blocks: the driver has already waited in manyio's reactor."""

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        return super().select(0)


class EventLoop(asyncio.SelectorEventLoop):
    """An ``asyncio.AbstractEventLoop`` whose callbacks run in a manyio strand.

    Example::

        asyncio.run(main(), loop_factory=manyio.asyncio.EventLoop)
    """

    def __init__(self, *, strand: Strand | None = None) -> None:
        self._strand = strand if strand is not None else Strand()
        self._runtime: Any = None  # the _core.Runtime the driver runs on
        self._own_runtime: Runtime | None = None
        self._live = False
        self._driving = False
        self._driver_parked = False
        self._wake_sent = False
        self._driver_lock = threading.Lock()
        super().__init__(_PollOnlySelector())
        self._strand._core.set_event_loop(self)

    @property
    def strand(self) -> Strand:
        """The strand every callback of this loop runs in."""
        return self._strand

    # -- scheduling: thread-safe, and it wakes the driver -------------------------------

    def call_soon(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        handle = super().call_soon(callback, *args, context=context)
        self._wake()
        return handle

    def call_at(self, when: float, callback: Any, *args: Any, context: Any = None) -> asyncio.TimerHandle:
        handle = super().call_at(when, callback, *args, context=context)
        self._wake()
        return handle

    def call_soon_threadsafe(self, callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
        handle = super().call_soon_threadsafe(callback, *args, context=context)
        if not self._driving:
            self._start_driver()
        return handle

    def _add_reader(self, fd: Any, callback: Any, *args: Any) -> Any:
        handle = super()._add_reader(fd, callback, *args)
        self._wake()
        return handle

    def _add_writer(self, fd: Any, callback: Any, *args: Any) -> Any:
        handle = super()._add_writer(fd, callback, *args)
        self._wake()
        return handle

    def _check_thread(self) -> None:
        # The loop's callbacks run on whichever worker runs its strand: no thread owns it.
        pass

    def _wake(self) -> None:
        if self._driver_parked:
            if not self._wake_sent:
                self._wake_sent = True
                self._write_to_self()
        elif not self._driving:
            self._start_driver()

    def _start_driver(self) -> None:
        with self._driver_lock:
            if self._driving or not self._live or self.is_closed():
                return
            self._driving = True
        try:
            self._runtime.spawn(self._drive(), name=f"asyncio driver of {self!r}", strand=self._strand._core)
        except BaseException:
            self._driving = False
            raise

    # -- the driver --------------------------------------------------------------------

    def _next_deadline(self) -> float | None:
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:
            self._timer_cancelled_count -= 1
            handle = heapq.heappop(scheduled)
            handle._scheduled = False
        return scheduled[0]._when if scheduled else None

    def _has_work(self) -> bool:
        # Only the self-pipe registered, no callbacks, no timers: nothing can happen until
        # someone schedules something (which starts a driver again).
        return bool(self._ready or self._scheduled or len(self._selector.get_map()) > 1)

    async def _drive(self, *, until_stopped: bool = False) -> None:
        """Runs loop iterations. Live: until the loop has nothing left. Classic (run_forever):
        until ``stop()``, parking without a deadline while idle."""
        epoll_fd = self._selector.fileno()
        turns = 0
        try:
            while not self.is_closed():
                self._run_once()
                if self._stopping:
                    self._stopping = False
                    if until_stopped:
                        return
                deadline = self._next_deadline()
                if self._ready or (deadline is not None and deadline <= self.time()):
                    # More to run: a few iterations per turn, then let the strand's other
                    # tasks (and the worker's) have theirs.
                    turns += 1
                    if turns >= _ITERATIONS_PER_TURN:
                        turns = 0
                        await _core.checkpoint()
                    continue
                turns = 0
                if not until_stopped:
                    with self._driver_lock:
                        if not self._live or not self._has_work():
                            self._driving = False
                            return
                self._driver_parked = True
                try:
                    # Re-check after announcing the park: a callback scheduled in between saw
                    # the flag down and did not write to the self-pipe.
                    if self._ready or self._next_deadline() != deadline:
                        continue
                    with _core.CancelScope(deadline=math.inf if deadline is None else deadline):
                        await _core.wait_readable(epoll_fd)
                except ClosedResourceError:
                    return  # close() closed the selector under us
                finally:
                    self._driver_parked = False
                    self._wake_sent = False
        finally:
            self._driving = False

    # -- live and classic running --------------------------------------------------------

    def _go_live(self, runtime: Any) -> None:
        self._runtime = runtime
        self._live = True
        self._thread_id = -1  # is_running(): the loop runs wherever its strand runs
        if self._has_work():
            self._start_driver()

    def is_running(self) -> bool:
        return self._live

    def run_until_complete(self, future: Any) -> Any:
        _refuse_on_worker()
        return super().run_until_complete(future)

    def run_forever(self) -> None:
        self._check_closed()
        self._check_running()
        _refuse_on_worker()
        if self._own_runtime is None:
            self._own_runtime = Runtime()

        async def serve() -> None:
            self._runtime = _core.current_runtime()
            self._driving = True
            self._live = True
            self._thread_id = threading.get_ident()
            try:
                await self._drive(until_stopped=True)
            finally:
                self._live = False
                self._thread_id = None

        self._own_runtime.block_on(serve(), strand=self._strand)

    def close(self) -> None:
        if self._own_runtime is None:
            # A live loop is never "running" in asyncio's sense of a thread inside
            # run_forever(): closing it stops its driver.
            self._live = False
            self._thread_id = None
        if self._driver_parked and not self.is_closed():
            _core.notify_closing(self._selector.fileno())
        super().close()
        self._strand._core.set_event_loop(None)
        if self._own_runtime is not None:
            self._own_runtime.close()
            self._own_runtime = None

    def __repr__(self) -> str:
        return (
            f"<manyio.asyncio.EventLoop live={self._live} closed={self.is_closed()} strand={self._strand!r}>"
        )


_c_all_tasks = asyncio.tasks.all_tasks


def all_tasks(loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[Any]]:
    """``asyncio.all_tasks`` that also finds a facade loop's tasks created on other threads.

    CPython keeps tasks in per-thread lists and, when asked from a thread whose running loop
    is ``loop``, reads only that thread's list: right for a loop pinned to one thread, wrong
    for a strand that moves between workers. Asking with no running loop set takes the path
    that reads every thread's list.
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    if not isinstance(loop, EventLoop):
        return _c_all_tasks(loop)
    running = asyncio.events._get_running_loop()
    asyncio.events._set_running_loop(None)
    try:
        return _c_all_tasks(loop)
    finally:
        asyncio.events._set_running_loop(running)


def _install_all_tasks() -> None:
    asyncio.tasks.all_tasks = all_tasks
    asyncio.all_tasks = all_tasks


_install_all_tasks()


def _refuse_on_worker() -> None:
    try:
        _core.current_task()
    except RuntimeError:
        return  # a plain thread: blocking it is fine
    raise RuntimeError(
        "run_forever()/run_until_complete() would block a manyio worker; "
        "await the future instead (or use manyio.asyncio.run_in_strand)"
    )


def new_event_loop() -> EventLoop:
    """A new facade loop in a new strand (``loop_factory`` for ``asyncio.run``/``Runner``)."""
    return EventLoop()


def loop_for(strand: Strand) -> EventLoop:
    """The live asyncio loop of ``strand`` on the current runtime, created on first use."""
    with _attach_lock:
        loop = strand._core.get_event_loop()
        if isinstance(loop, EventLoop) and not loop.is_closed():
            return loop
        loop = EventLoop(strand=strand)
    loop._go_live(_core.current_runtime())
    return loop
