"""``manyio.Queue``: :class:`asyncio.Queue`'s API, safe for tasks on different workers."""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any, Generic, TypeVar

from ._core import Event, Waiter, checkpoint

__all__ = ["LifoQueue", "Queue"]

T = TypeVar("T")


class Queue(Generic[T]):
    """A FIFO queue with ``maxsize`` (0: unbounded), ``task_done`` and ``join``."""

    def __init__(self, maxsize: int = 0) -> None:
        self._maxsize = maxsize
        self._mutex = threading.Lock()
        self._items: deque[T] = deque()
        self._getters: deque[Waiter] = deque()
        self._putters: deque[tuple[Waiter, T]] = deque()
        self._unfinished = 0
        self._finished = Event()
        self._finished.set()
        self._shutdown = False

    @property
    def maxsize(self) -> int:
        """The capacity (0: unbounded)."""
        return self._maxsize

    def qsize(self) -> int:
        """Items in the queue now."""
        return len(self._items)

    def empty(self) -> bool:
        """True if the queue holds no item."""
        return not self._items

    def full(self) -> bool:
        """True if ``maxsize`` items are queued."""
        return 0 < self._maxsize <= len(self._items)

    def _put_locked(self, item: T) -> bool:
        if self._shutdown:
            raise asyncio.QueueShutDown
        self._unfinished += 1
        self._finished.clear()
        while self._getters:
            if self._getters.popleft().complete(item):
                return True
        if self._maxsize <= 0 or len(self._items) < self._maxsize:
            self._items.append(item)
            return True
        self._unfinished -= 1
        if self._unfinished == 0:
            self._finished.set()
        return False

    def put_nowait(self, item: T) -> None:
        """Adds ``item`` or raises :class:`asyncio.QueueFull`."""
        with self._mutex:
            if not self._put_locked(item):
                raise asyncio.QueueFull

    async def put(self, item: T) -> None:
        """Adds ``item``, waiting while the queue is full."""
        await checkpoint()
        with self._mutex:
            if self._put_locked(item):
                return
            waiter = Waiter()
            record = (waiter, item)
            self._putters.append(record)
        try:
            await waiter
        except BaseException:
            with self._mutex:
                try:
                    self._putters.remove(record)
                except ValueError:
                    pass
            raise

    def _get_locked(self) -> tuple[bool, Any]:
        if self._items:
            item = self._take()
            while self._putters:
                waiter, pending = self._putters.popleft()
                if waiter.complete():
                    self._unfinished += 1
                    self._items.append(pending)
                    break
            return True, item
        while self._putters:
            waiter, pending = self._putters.popleft()
            if waiter.complete():
                self._unfinished += 1
                return True, pending
        if self._shutdown:
            raise asyncio.QueueShutDown
        return False, None

    def _take(self) -> T:
        return self._items.popleft()

    def get_nowait(self) -> T:
        """Removes and returns an item, or raises :class:`asyncio.QueueEmpty`."""
        with self._mutex:
            ok, item = self._get_locked()
        if not ok:
            raise asyncio.QueueEmpty
        return item

    async def get(self) -> T:
        """Removes and returns an item, waiting while the queue is empty."""
        await checkpoint()
        with self._mutex:
            ok, item = self._get_locked()
            if ok:
                return item
            waiter = Waiter()
            self._getters.append(waiter)
        try:
            return await waiter
        except BaseException:
            with self._mutex:
                try:
                    self._getters.remove(waiter)
                except ValueError:
                    pass
            raise

    def task_done(self) -> None:
        """Marks one item taken with ``get`` as processed (see :meth:`join`)."""
        with self._mutex:
            if self._unfinished <= 0:
                raise ValueError("task_done() called too many times")
            self._unfinished -= 1
            if self._unfinished == 0:
                self._finished.set()

    async def join(self) -> None:
        """Waits until every item put has been marked done with :meth:`task_done`."""
        await self._finished.wait()

    def shutdown(self, immediate: bool = False) -> None:
        """Like :meth:`asyncio.Queue.shutdown`: ``put`` raises, waiting getters are woken."""
        with self._mutex:
            self._shutdown = True
            if immediate:
                self._unfinished -= len(self._items)
                self._items.clear()
                if self._unfinished <= 0:
                    self._unfinished = 0
                    self._finished.set()
            getters, self._getters = self._getters, deque()
            putters, self._putters = self._putters, deque()
        for g in getters:
            g.fail(asyncio.QueueShutDown())
        for p, _ in putters:
            p.fail(asyncio.QueueShutDown())


class LifoQueue(Queue[T]):
    """:class:`Queue` that hands out the most recently added item first (``asyncio.LifoQueue``)."""

    def _take(self) -> T:
        return self._items.pop()
