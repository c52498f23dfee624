"""The lock of a :class:`~manyio_asyncpg.SerialLoop`: held for one step, waited for by tasks.

It is a reentrant thread lock, held only for a step (a few microseconds, never across an
await). Plain ``with lock:`` blocks the calling thread, which is right for the short
callbacks that use it. A pool's lock, though, is wanted by every task that acquires or
releases a connection: a task that blocked its worker thread on it would keep that worker
from running anything else. :meth:`SerialLock.acquire_steps` waits as a task instead: it
parks on an event that the next release sets, and the worker runs other tasks meanwhile.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Generator
from typing import Any

import manyio

__all__ = ["SerialLock"]


class SerialLock:
    __slots__ = ("_lock", "_mutex", "_waiters")

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._mutex = threading.Lock()  # guards _waiters
        self._waiters: deque[manyio.Event] = deque()

    def __enter__(self) -> SerialLock:
        self._lock.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        self._lock.release()
        # Every release wakes one parked task: it takes the lock or parks again, so a wake-up
        # that finds the lock taken is passed on by that holder's own release. The mutex
        # orders this check after a waiter's listing or before its second try.
        with self._mutex:
            event = self._waiters.popleft() if self._waiters else None
        if event is not None:
            event.set()

    def try_acquire(self) -> bool:
        """Takes the lock if it is free (or already the calling thread's); never waits."""
        return self._lock.acquire(False)

    def acquire_steps(self) -> Generator[Any, Any, BaseException | None]:
        """``yield from`` it in a task's ``__await__`` to take the lock without blocking the
        worker. Returns the exception thrown in while it waited (a cancellation), if any:
        the lock is then taken blocking, and the caller delivers the exception."""
        lock = self._lock
        while not lock.acquire(False):
            event = manyio.Event()
            with self._mutex:
                self._waiters.append(event)
            if lock.acquire(False):  # released before we were listed: nobody will wake us
                self._forget(event)
                return None
            try:
                yield from event.wait().__await__()
            except BaseException as e:
                # Waiting again in a cancelled scope would raise again at once.
                self._forget(event)
                lock.acquire()
                return e
        return None

    def _forget(self, event: manyio.Event) -> None:
        # The caller holds the lock now, so its own release wakes the next waiter even if a
        # release already took this event off the list.
        with self._mutex:
            try:
                self._waiters.remove(event)
            except ValueError:
                pass
