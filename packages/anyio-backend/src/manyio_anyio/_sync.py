"""AnyIO's synchronization primitives, safe across manyio's worker threads.

AnyIO defines the behaviour (which calls are checkpoints, the error messages, what
``fast_acquire`` skips); the asyncio backend implements it for one thread. Here each primitive
keeps its state under a ``threading.Lock`` and parks tasks on manyio ``Waiter`` objects, so
the same object can be shared by tasks running on different workers.

A release hands the resource straight to the next waiter. If that waiter was cancelled
meanwhile, ``Waiter.complete()`` says so and the resource goes on to the one after it.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict, deque
from types import TracebackType
from typing import Any

import manyio
from anyio import CapacityLimiterStatistics, EventStatistics, LockStatistics, WouldBlock
from anyio._core._synchronization import CapacityLimiter as BaseCapacityLimiter
from anyio._core._synchronization import Event as BaseEvent
from anyio._core._synchronization import Lock as BaseLock
from anyio._core._synchronization import Semaphore as BaseSemaphore
from anyio._core._synchronization import SemaphoreStatistics
from manyio import _core

from ._tasks import ManyioTaskInfo


class Event(BaseEvent):
    __slots__ = ("_event",)

    def __new__(cls) -> Event:
        return object.__new__(cls)

    def __init__(self) -> None:
        self._event = manyio.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        if self._event.is_set():
            await _core.checkpoint()
        else:
            await self._event.wait()

    def statistics(self) -> EventStatistics:
        return EventStatistics(self._event.statistics())


class Lock(BaseLock):
    __slots__ = ("_fast_acquire", "_mutex", "_owner", "_waiters")

    def __new__(cls, *, fast_acquire: bool = False) -> Lock:
        return object.__new__(cls)

    def __init__(self, *, fast_acquire: bool = False) -> None:
        self._fast_acquire = fast_acquire
        self._mutex = threading.Lock()
        self._owner: manyio.Task[Any] | None = None
        self._waiters: deque[tuple[_core.Waiter, manyio.Task[Any]]] = deque()

    async def acquire(self) -> None:
        task = _core.current_task()
        with self._mutex:
            if self._owner is None and not self._waiters:
                _core.check_cancelled()
                self._owner = task
                record = None
            elif self._owner is task:
                raise RuntimeError("Attempted to acquire an already held Lock")
            else:
                record = (_core.Waiter(), task)
                self._waiters.append(record)
        if record is None:
            if not self._fast_acquire:
                # Taking a free lock still lets other tasks run (unless fast_acquire).
                await _core.cancel_shielded_checkpoint()
            return
        try:
            await record[0]
        except BaseException:
            with self._mutex:
                try:
                    self._waiters.remove(record)
                except ValueError:
                    # A release already dequeued us. A cancelled wait is aborted, so the lock
                    # went on to the next waiter; hand it on if it reached us all the same.
                    if self._owner is task:
                        self._hand_over()
            raise

    def acquire_nowait(self) -> None:
        task = _core.current_task()
        with self._mutex:
            if self._owner is None and not self._waiters:
                self._owner = task
                return
            if self._owner is task:
                raise RuntimeError("Attempted to acquire an already held Lock")
        raise WouldBlock

    def locked(self) -> bool:
        return self._owner is not None

    def release(self) -> None:
        task = _core.current_task()
        with self._mutex:
            if self._owner is not task:
                raise RuntimeError("The current task is not holding this lock")
            self._hand_over()

    def _hand_over(self) -> None:
        # Called with the mutex held.
        while self._waiters:
            waiter, next_owner = self._waiters.popleft()
            self._owner = next_owner
            if waiter.complete():
                return
        self._owner = None

    def statistics(self) -> LockStatistics:
        owner = self._owner
        return LockStatistics(
            owner is not None, ManyioTaskInfo(owner) if owner is not None else None, len(self._waiters)
        )


class Semaphore(BaseSemaphore):
    __slots__ = ("_max_value", "_mutex", "_value", "_waiters")

    def __new__(
        cls, initial_value: int, *, max_value: int | None = None, fast_acquire: bool = False
    ) -> Semaphore:
        return object.__new__(cls)

    def __init__(
        self, initial_value: int, *, max_value: int | None = None, fast_acquire: bool = False
    ) -> None:
        super().__init__(initial_value, max_value=max_value, fast_acquire=fast_acquire)
        self._value = initial_value
        self._max_value = max_value
        self._mutex = threading.Lock()
        self._waiters: deque[_core.Waiter] = deque()

    async def acquire(self) -> None:
        with self._mutex:
            if self._value > 0 and not self._waiters:
                _core.check_cancelled()
                self._value -= 1
                waiter = None
            else:
                waiter = _core.Waiter()
                self._waiters.append(waiter)
        if waiter is None:
            if not self._fast_acquire:
                await _core.cancel_shielded_checkpoint()
            return
        try:
            await waiter
        except BaseException:
            with self._mutex:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    # A release already dequeued us; a cancelled wait is aborted, so the
                    # permit went to the next waiter (or back to the count).
                    pass
            raise

    def acquire_nowait(self) -> None:
        with self._mutex:
            if self._value == 0 or self._waiters:
                raise WouldBlock
            self._value -= 1

    def release(self) -> None:
        with self._mutex:
            if self._max_value is not None and self._value == self._max_value:
                raise ValueError("semaphore released too many times")
            self._release_locked()

    def _release_locked(self) -> None:
        while self._waiters:
            if self._waiters.popleft().complete():
                return
        self._value += 1

    @property
    def value(self) -> int:
        return self._value

    @property
    def max_value(self) -> int | None:
        return self._max_value

    def statistics(self) -> SemaphoreStatistics:
        return SemaphoreStatistics(len(self._waiters))


class CapacityLimiter(BaseCapacityLimiter):
    __slots__ = ("_borrowers", "_mutex", "_total_tokens", "_waiting")

    def __new__(cls, total_tokens: float) -> CapacityLimiter:
        return object.__new__(cls)

    def __init__(self, total_tokens: float) -> None:
        self._mutex = threading.Lock()
        self._total_tokens: float = 0
        self._borrowers: set[object] = set()
        self._waiting: OrderedDict[object, _core.Waiter] = OrderedDict()
        self.total_tokens = total_tokens

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    @property
    def total_tokens(self) -> float:
        return self._total_tokens

    @total_tokens.setter
    def total_tokens(self, value: float) -> None:
        if not isinstance(value, int) and not math.isinf(value):
            raise TypeError("total_tokens must be an int or math.inf")
        if value < 0:
            raise ValueError("total_tokens must be >= 0")
        with self._mutex:
            self._total_tokens = value
            self._wake_waiters()

    @property
    def borrowed_tokens(self) -> int:
        return len(self._borrowers)

    @property
    def available_tokens(self) -> float:
        return self._total_tokens - len(self._borrowers)

    def _wake_waiters(self) -> None:
        # Called with the mutex held: hand free tokens to the longest waiting borrowers.
        while self._waiting and len(self._borrowers) < self._total_tokens:
            borrower, waiter = self._waiting.popitem(last=False)
            if waiter.complete():
                self._borrowers.add(borrower)

    def acquire_nowait(self) -> None:
        self.acquire_on_behalf_of_nowait(_core.current_task())

    def acquire_on_behalf_of_nowait(self, borrower: object) -> None:
        with self._mutex:
            self._take_nowait(borrower)

    def _take_nowait(self, borrower: object) -> None:
        if borrower in self._borrowers:
            raise RuntimeError("this borrower is already holding one of this CapacityLimiter's tokens")
        if self._waiting or len(self._borrowers) >= self._total_tokens:
            raise WouldBlock
        self._borrowers.add(borrower)

    async def acquire(self) -> None:
        await self.acquire_on_behalf_of(_core.current_task())

    async def acquire_on_behalf_of(self, borrower: object) -> None:
        _core.check_cancelled()
        with self._mutex:
            try:
                self._take_nowait(borrower)
                waiter = None
            except WouldBlock:
                waiter = _core.Waiter()
                self._waiting[borrower] = waiter
        if waiter is None:
            try:
                await _core.cancel_shielded_checkpoint()
            except BaseException:
                self.release_on_behalf_of(borrower)
                raise
            return
        try:
            await waiter
        except BaseException:
            with self._mutex:
                if self._waiting.get(borrower) is waiter:
                    del self._waiting[borrower]
                elif borrower in self._borrowers:
                    # The token reached us as we were cancelled: pass it on.
                    self._borrowers.discard(borrower)
                    self._wake_waiters()
            raise

    def release(self) -> None:
        self.release_on_behalf_of(_core.current_task())

    def release_on_behalf_of(self, borrower: object) -> None:
        with self._mutex:
            try:
                self._borrowers.remove(borrower)
            except KeyError:
                raise RuntimeError(
                    "this borrower isn't holding any of this CapacityLimiter's tokens"
                ) from None
            self._wake_waiters()

    def statistics(self) -> CapacityLimiterStatistics:
        with self._mutex:
            return CapacityLimiterStatistics(
                len(self._borrowers), self._total_tokens, tuple(self._borrowers), len(self._waiting)
            )
