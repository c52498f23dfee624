"""Each ``PubSub`` is a serial domain: its methods never run at the same time.

redis-py's ``PubSub`` keeps its subscriptions in plain dicts and sets that its methods read
and change between awaits, and asyncio programs share one ``PubSub`` between tasks: ``run()``
or ``get_message()`` in one, ``subscribe()`` and ``unsubscribe()`` in others. asyncio runs one
of those tasks at a time; manyio's workers would run them at once (``run()`` iterating
``channels`` while ``subscribe()`` adds to it raises "dictionary changed size"). So on manyio
every method of a ``PubSub`` runs holding that ``PubSub``'s own ``SerialLock``, one step at a
time: while a method waits (for a reply, say) the lock is free, exactly the points where
asyncio would let another task run. Other ``PubSub`` objects, and the rest of the client, run
in parallel as before.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from manyio._aioshim import on_manyio
from manyio._core import Serialized, SerialLock

T = TypeVar("T")

# Synchronous methods that change the subscriptions, then return the command's awaitable.
_SYNC_MUTATORS = ("unsubscribe", "punsubscribe", "sunsubscribe")


def install() -> None:
    """Makes every coroutine method of ``redis.asyncio.client.PubSub`` (and the synchronous
    ``unsubscribe`` family) run in the ``PubSub``'s serial domain inside manyio tasks
    (idempotent). ``listen()`` is left as it is: it only loops over the methods."""
    from redis.asyncio.client import PubSub

    for name, method in list(vars(PubSub).items()):
        if getattr(method, "__manyio_serial__", False):
            continue
        if inspect.iscoroutinefunction(method):
            setattr(PubSub, name, _serial_coroutine(method))
        elif name in _SYNC_MUTATORS:
            setattr(PubSub, name, _serial_call(method))


def lock_of(pubsub: object) -> SerialLock:
    """The ``SerialLock`` of ``pubsub``'s domain (made on first use; ``setdefault`` keeps two
    first uses on two workers from making two)."""
    lock = pubsub.__dict__.get("_manyio_serial")
    if lock is None:
        lock = pubsub.__dict__.setdefault("_manyio_serial", SerialLock())
    return lock


async def _awaited(make: Callable[[], Awaitable[T]]) -> T:
    return await make()


def _serial_coroutine(method: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., Coroutine[Any, Any, T]]:
    @functools.wraps(method)
    async def serial(self: object, *args: Any, **kwargs: Any) -> T:
        if not on_manyio():
            return await method(self, *args, **kwargs)
        return await Serialized(method(self, *args, **kwargs), lock_of(self))

    serial.__manyio_serial__ = True  # type: ignore[attr-defined]
    return serial


def _serial_call(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    # The method's own body (it changes the pending sets) runs in the first step of the
    # coroutine returned here, holding the lock; what it returns is awaited in the domain too.
    @functools.wraps(method)
    def serial(self: object, *args: Any, **kwargs: Any) -> Awaitable[T]:
        if not on_manyio():
            return method(self, *args, **kwargs)
        return Serialized(_awaited(lambda: method(self, *args, **kwargs)), lock_of(self))

    serial.__manyio_serial__ = True  # type: ignore[attr-defined]
    return serial
