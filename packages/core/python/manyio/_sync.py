"""Locks, semaphores, conditions, barriers and capacity limiters, safe across worker threads.

Each primitive keeps its state under a ``threading.Lock`` (a real mutex on free-threaded
Python) and parks tasks on :class:`manyio._core.Waiter` objects kept in FIFO order. Releasing
hands the resource straight to the next waiter (``waiter.complete()``), so locks are fair and
nobody barges in. If that waiter was cancelled meanwhile, ``complete()`` returns False and the
resource goes to the next one: nothing is lost to a task that stopped waiting.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from types import TracebackType
from typing import Any

from . import _core
from ._core import Waiter, checkpoint, current_task
from ._exceptions import WouldBlock

__all__ = [
    "Barrier",
    "BoundedSemaphore",
    "CapacityLimiter",
    "Condition",
    "Lock",
    "Semaphore",
]


async def _park(mutex: threading.Lock, waiters: deque[Any], record: Any, waiter: Waiter) -> Any:
    """Awaits ``waiter`` (already queued as ``record``); a cancelled wait dequeues itself."""
    try:
        return await waiter
    except BaseException:
        with mutex:
            try:
                waiters.remove(record)
            except ValueError:
                pass
        raise


class _AsyncContext:
    async def acquire(self) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def release(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


class Lock(_core.Lock):
    """A fair mutual-exclusion lock for tasks: FIFO, owned by the task that acquired it.

    ``acquire()`` is a checkpoint; ``release()`` hands the lock straight to the longest waiting
    task. ``Lock(fair=False)`` lets a newcomer take a free lock while others wait (``release()``
    wakes the longest waiting task to try again), which keeps short sections from forming a
    convoy when an owner is preempted; a task overtaken for 1 ms is handed the lock. Implemented
    in the Rust core (``manyio._core.Lock``).

    Example::

        lock = manyio.Lock()
        async with lock:
            counter += 1
    """

    __slots__ = ()


class Semaphore(_AsyncContext):
    """A counter of permits; ``acquire`` waits (FIFO) while it is zero."""

    def __init__(self, value: int = 1, *, max_value: int | None = None) -> None:
        if value < 0:
            raise ValueError("the initial value must be >= 0")
        if max_value is not None and value > max_value:
            raise ValueError("the initial value must be <= max_value")
        self._mutex = threading.Lock()
        self._value = value
        self._max_value = max_value
        self._waiters: deque[Waiter] = deque()

    @property
    def value(self) -> int:
        """Permits available now."""
        return self._value

    @property
    def max_value(self) -> int | None:
        """The most permits ``release`` may bring it to (None: no limit)."""
        return self._max_value

    def locked(self) -> bool:
        """True when no permit is available."""
        return self._value == 0

    def acquire_nowait(self) -> None:
        """Takes a permit or raises :class:`WouldBlock`."""
        with self._mutex:
            if self._value == 0 or self._waiters:
                raise WouldBlock
            self._value -= 1

    async def acquire(self) -> None:
        """Waits for a permit and takes it."""
        await checkpoint()
        with self._mutex:
            if self._value > 0 and not self._waiters:
                self._value -= 1
                return
            waiter = Waiter()
            self._waiters.append(waiter)
        await _park(self._mutex, self._waiters, waiter, waiter)

    def release(self) -> None:
        """Returns a permit, handing it to the longest waiting task if there is one.

        Raises :class:`ValueError` above ``max_value``.
        """
        with self._mutex:
            while self._waiters:
                if self._waiters.popleft().complete():
                    return
            if self._max_value is not None and self._value >= self._max_value:
                raise ValueError("semaphore released too many times")
            self._value += 1

    def statistics(self) -> dict[str, Any]:
        """``value`` and ``tasks_waiting``."""
        return {"value": self._value, "tasks_waiting": len(self._waiters)}


class BoundedSemaphore(Semaphore):
    """A semaphore that raises :class:`ValueError` when released above its initial value."""

    def __init__(self, value: int = 1) -> None:
        super().__init__(value, max_value=value)


class Condition(_AsyncContext):
    """Wait for a state change while holding a :class:`Lock`."""

    def __init__(self, lock: Lock | None = None) -> None:
        self._lock = lock if lock is not None else Lock()
        self._mutex = threading.Lock()
        self._waiters: deque[Waiter] = deque()

    async def acquire(self) -> None:
        """Acquires the underlying lock."""
        await self._lock.acquire()

    def acquire_nowait(self) -> None:
        """Acquires the underlying lock or raises :class:`WouldBlock`."""
        self._lock.acquire_nowait()

    def release(self) -> None:
        """Releases the underlying lock."""
        self._lock.release()

    def locked(self) -> bool:
        """True while a task holds the underlying lock."""
        return self._lock.locked()

    async def wait(self) -> None:
        """Releases the lock, waits for a notify, and reacquires the lock (even if cancelled)."""
        if self._lock._owner is not current_task():
            raise RuntimeError("Condition.wait() needs the lock held by this task")
        waiter = Waiter()
        with self._mutex:
            self._waiters.append(waiter)
        self._lock.release()
        try:
            await _park(self._mutex, self._waiters, waiter, waiter)
        finally:
            from ._core import CancelScope

            with CancelScope(shield=True):
                await self._lock.acquire()

    async def wait_for(self, predicate: Any) -> Any:
        """Waits (as :meth:`wait`) until ``predicate()`` is true; returns its value."""
        result = predicate()
        while not result:
            await self.wait()
            result = predicate()
        return result

    def notify(self, n: int = 1) -> None:
        """Wakes up to ``n`` waiting tasks; the caller must hold the lock."""
        if self._lock._owner is not current_task():
            raise RuntimeError("Condition.notify() needs the lock held by this task")
        with self._mutex:
            while n > 0 and self._waiters:
                if self._waiters.popleft().complete():
                    n -= 1

    def notify_all(self) -> None:
        """Wakes every waiting task; the caller must hold the lock."""
        self.notify(math.inf)  # type: ignore[arg-type]

    def statistics(self) -> dict[str, Any]:
        """``tasks_waiting`` and the lock's statistics."""
        return {"tasks_waiting": len(self._waiters), "lock": self._lock.statistics()}


class Barrier:
    """Waits until ``parties`` tasks have arrived, then releases them all together."""

    def __init__(self, parties: int) -> None:
        if parties < 1:
            raise ValueError("parties must be >= 1")
        self._parties = parties
        self._mutex = threading.Lock()
        self._waiters: deque[Waiter] = deque()
        self._generation = 0

    @property
    def parties(self) -> int:
        """How many tasks must arrive to release the barrier."""
        return self._parties

    @property
    def n_waiting(self) -> int:
        """Tasks waiting at the barrier now."""
        return len(self._waiters)

    async def wait(self) -> int:
        """Returns this task's arrival index (0 for the first) in the released generation.

        Indices are handed out when the generation is released, so a waiter that gave up
        (was cancelled) leaves no gap or duplicate.
        """
        await checkpoint()
        with self._mutex:
            if len(self._waiters) + 1 == self._parties:
                waiters, self._waiters = self._waiters, deque()
                self._generation += 1
                index = 0
                for w in waiters:
                    if w.complete(index):
                        index += 1
                return index
            waiter = Waiter()
            self._waiters.append(waiter)
        return await _park(self._mutex, self._waiters, waiter, waiter)


class CapacityLimiter(_AsyncContext):
    """Limits how many borrowers hold a token at once (like trio's), e.g. threads in use."""

    def __init__(self, total_tokens: float) -> None:
        self._mutex = threading.Lock()
        self._borrowers: set[object] = set()
        self._waiters: deque[tuple[Waiter, object]] = deque()
        self._total = 0.0
        self.total_tokens = total_tokens

    @property
    def total_tokens(self) -> float:
        """How many tokens exist (an int or ``math.inf``); settable, which wakes waiters if it grows."""
        return self._total

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        if not isinstance(value, int) and value != math.inf:
            raise TypeError("total_tokens must be an int or math.inf")
        if value < 1:
            raise ValueError("total_tokens must be >= 1")
        with self._mutex:
            self._total = value
            self._hand_out()

    @property
    def borrowed_tokens(self) -> int:
        """Tokens held now."""
        return len(self._borrowers)

    @property
    def available_tokens(self) -> float:
        """Tokens free now."""
        return self._total - len(self._borrowers)

    def _hand_out(self) -> None:
        while self._waiters and len(self._borrowers) < self._total:
            waiter, borrower = self._waiters.popleft()
            self._borrowers.add(borrower)
            if not waiter.complete():
                self._borrowers.discard(borrower)

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        """Takes a token for ``borrower`` or raises :class:`WouldBlock`."""
        with self._mutex:
            if borrower in self._borrowers:
                raise RuntimeError("this borrower already holds a token")
            if len(self._borrowers) >= self._total or self._waiters:
                raise WouldBlock
            self._borrowers.add(borrower)

    def acquire_nowait(self) -> None:
        """Takes a token for the current task or raises :class:`WouldBlock`."""
        self.acquire_on_behalf_of_nowait(current_task())

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        """Waits for a token and gives it to ``borrower`` (any hashable object, one token each)."""
        await checkpoint()
        with self._mutex:
            if borrower in self._borrowers:
                raise RuntimeError("this borrower already holds a token")
            if len(self._borrowers) < self._total and not self._waiters:
                self._borrowers.add(borrower)
                return
            waiter = Waiter()
            record = (waiter, borrower)
            self._waiters.append(record)
        await _park(self._mutex, self._waiters, record, waiter)

    async def acquire(self) -> None:
        """Waits for a token for the current task."""
        await self.acquire_on_behalf_of(current_task())

    def release_on_behalf_of(self, borrower: object) -> None:
        """Returns ``borrower``'s token."""
        with self._mutex:
            if borrower not in self._borrowers:
                raise RuntimeError("this borrower does not hold a token")
            self._borrowers.remove(borrower)
            self._hand_out()

    def release(self) -> None:
        """Returns the current task's token."""
        self.release_on_behalf_of(current_task())

    def statistics(self) -> dict[str, Any]:
        """``borrowed_tokens``, ``total_tokens``, ``borrowers`` and ``tasks_waiting``."""
        return {
            "borrowed_tokens": len(self._borrowers),
            "total_tokens": self._total,
            "borrowers": list(self._borrowers),
            "tasks_waiting": len(self._waiters),
        }
