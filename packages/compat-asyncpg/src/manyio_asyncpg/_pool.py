"""The pool's holder queue on manyio: thread-safe, with asyncpg's preference for live holders.

asyncpg's ``_PoolConnectionHolderQueue`` subclasses ``asyncio.LifoQueue`` (bound to one
asyncio loop, not thread-safe). Its holders are put back from wherever a connection closes,
including tasks that do not hold the pool's lock, so ours is :class:`manyio.LifoQueue` with the
same two rules: ``get`` prefers a connected holder (most recent first), and
``get_disconnected_nowait`` takes a disconnected one for the pool's size maintenance.
"""

from __future__ import annotations

import asyncio
from typing import Any

import manyio

__all__ = ["HolderQueue"]


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
