"""The pool on manyio: a thread-safe holder queue, and each holder a serial domain of its own.

asyncpg's ``_PoolConnectionHolderQueue`` subclasses ``asyncio.LifoQueue`` (bound to one
asyncio loop, not thread-safe). Its holders are put back from wherever a connection closes,
including tasks that do not hold the pool's lock, so ours is :class:`manyio.LifoQueue` with the
same two rules: ``get`` prefers a connected holder (most recent first), and
``get_disconnected_nowait`` takes a disconnected one for the pool's size maintenance.

A holder's state (its connection, the in-use future, the inactivity timer) changes in its
``acquire`` and ``release``, in the pool's timers and ``close``, and when its connection
closes. Those steps hold the holder's lock, which is also the lock of every connection the
holder opens: a holder and its connection are one serial domain. Acquiring and releasing
connections therefore takes no pool-wide lock, and tasks using different connections of one
pool run in parallel (with the pool's lock around every acquire and release, two workers
mostly took turns). Locks are taken pool, then holder; never the other way.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Awaitable
from typing import Any

import manyio
from manyio._core import Serialized, SerialLock

__all__ = ["HolderQueue", "connection_lock", "serial_holder_class"]

# Set while a holder connects: the lock the new connection's loop takes as its own.
_connection_lock: contextvars.ContextVar[SerialLock | None] = contextvars.ContextVar(
    "manyio_asyncpg_connection_lock", default=None
)


def connection_lock() -> SerialLock | None:
    """The lock a connection opened now must share (its pool holder's), if any."""
    return _connection_lock.get()


class HolderQueue(manyio.LifoQueue[Any]):
    def _take(self) -> Any:
        items = self._items
        for i in range(len(items) - 1, -1, -1):
            if items[i].is_connected():
                holder = items[i]
                del items[i]
                return holder
        return items.pop()

    def get_disconnected_nowait(self) -> Any:
        with self._mutex:
            items = self._items
            for i in range(len(items) - 1, -1, -1):
                if not items[i].is_connected():
                    holder = items[i]
                    del items[i]
                    return holder
        raise asyncio.QueueEmpty


def serial_holder_class(base: type, on_manyio: Any) -> type:
    """asyncpg's ``PoolConnectionHolder`` (``base``) whose state changes hold its own lock
    when its pool runs on manyio (``on_manyio(pool)``), and as it is otherwise."""

    class SerialHolder(base):  # type: ignore[misc, valid-type]
        __slots__ = ("_manyio_lock",)

        def __init__(self, pool: Any, **kwargs: Any) -> None:
            super().__init__(pool, **kwargs)
            self._manyio_lock = SerialLock() if on_manyio(pool) else None

        # The coroutines return the awaitable itself: asyncpg awaits each at once (or hands
        # it to gather/shield), and a wrapping frame would cost on every step.
        def acquire(self) -> Awaitable[Any]:
            return _stepped(self, base.acquire(self))

        def release(self, timeout: float | None) -> Awaitable[None]:
            return _stepped(self, base.release(self, timeout))

        def connect(self) -> Awaitable[None]:
            lock = self._manyio_lock
            if lock is None:
                return base.connect(self)
            return Serialized(self._connect_sharing(lock), lock)

        async def _connect_sharing(self, lock: SerialLock) -> None:
            token = _connection_lock.set(lock)
            try:
                await base.connect(self)
            finally:
                _connection_lock.reset(token)

        def wait_until_released(self) -> Awaitable[None]:
            return _stepped(self, base.wait_until_released(self))

        def close(self) -> Awaitable[None]:
            return _stepped(self, base.close(self))

        def terminate(self) -> None:
            _locked(self, base.terminate)

        def _deactivate_inactive_connection(self) -> None:
            _locked(self, base._deactivate_inactive_connection)

        def _release_on_close(self) -> None:
            _locked(self, base._release_on_close)

    SerialHolder.__name__ = SerialHolder.__qualname__ = "SerialHolder"
    SerialHolder.__module__ = __name__
    SerialHolder.__doc__ = base.__doc__
    SerialHolder.__manyio__ = True  # type: ignore[attr-defined]
    return SerialHolder


def _stepped(holder: Any, coro: Any) -> Awaitable[Any]:
    """``coro`` stepping holding the holder's lock (as it is for a pool not on manyio)."""
    lock = holder._manyio_lock
    return coro if lock is None else Serialized(coro, lock)


def _locked(holder: Any, method: Any) -> None:
    lock = holder._manyio_lock
    if lock is None:
        method(holder)
    else:
        with lock:
            method(holder)
