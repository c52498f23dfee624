"""manyio-redis: unmodified ``redis.asyncio`` code on manyio.

Example::

    import manyio
    import manyio_redis
    import redis.asyncio as redis

    manyio_redis.patch()          # or manyio.compat.patch_all()

    async def main():
        r = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=1.0)
        await r.set("k", "v")
        assert await r.get("k") == b"v"
        await r.aclose()

    manyio.run(main(), threads=2)

One client and its connection pool can be shared by tasks on every worker. Inside manyio
tasks redis-py's sockets are manyio's, its timeouts are cancel scopes with real deadlines
(``socket_timeout``, ``socket_connect_timeout``, the pool's ``timeout``, and redis-py's
``reschedule()`` of them), its ``shield`` really shields, its pool is guarded by
thread-safe locks, and each ``PubSub`` is a serial domain (tasks on several workers can
share one, as asyncio tasks do: see :mod:`manyio_redis._pubsub`). asyncio tasks in the same
process (on asyncio's loop or on a :mod:`manyio.asyncio` facade) keep getting stock asyncio:
see :mod:`manyio_redis._aio`.

hiredis is never imported by this package: it would turn the GIL back on. In its place,
replies are parsed and commands packed by this package's Rust module (``_resp``), behind
redis-py's own parser classes; see :mod:`manyio_redis._parser`.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
import sys
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any

import manyio
from manyio import _aioshim

from . import _aio, _parser, _pubsub

__all__ = ["patch", "patched_modules"]

# What _aio answers for. redis-py also binds some of these by name (``from asyncio import
# timeout as async_timeout``), so module globals are matched by identity, not by name.
_SHIMMED = (
    "Condition", "Event", "Lock", "Queue", "create_task", "current_task", "ensure_future", "gather",
    "get_event_loop", "get_running_loop", "iscoroutinefunction", "open_connection",
    "open_unix_connection", "shield", "sleep", "timeout", "timeout_at", "to_thread", "wait", "wait_for",
)  # fmt: skip

_lock = threading.Lock()
_patched: list[str] = []


def patch() -> list[str]:
    """Points redis-py's asyncio client at manyio (idempotent); returns the patched modules.

    Imports every submodule of ``redis.asyncio`` that imports cleanly (optional extras that
    are not installed are left alone) so that modules loaded later are covered as well.
    """
    if "hiredis" in sys.modules:
        raise RuntimeError(
            "hiredis is imported: it re-enables the GIL on free-threaded Python; uninstall it "
            "(manyio-redis parses RESP in Rust without it)"
        )
    import redis.asyncio

    with _lock:
        if _patched:
            return list(_patched)
        names = [redis.asyncio.__name__, "redis._parsers.base", "redis.event"]
        for info in pkgutil.walk_packages(redis.asyncio.__path__, prefix="redis.asyncio.", onerror=_ignore):
            names.append(info.name)
        replacements = _replacements()
        for name in names:
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue  # an optional dependency of that module is missing
            if _patch_module(module, replacements):
                _patched.append(name)
        _shield_cleanup()
        _parser.install()
        _pubsub.install()
        import redis.asyncio.lock

        redis.asyncio.lock.threading = _aio.threading_for_redis_lock  # type: ignore[attr-defined]
        return list(_patched)


def patched_modules() -> list[str]:
    """The modules :func:`patch` rewired (empty before it ran)."""
    return list(_patched)


def _ignore(name: str) -> None:
    pass


def _shield_cleanup() -> None:
    """Runs redis-py's connection release and disconnect shielded from cancellation.

    asyncio delivers a cancellation once; the ``finally`` blocks of a cancelled redis-py call
    then give its connection back to the pool, awaiting as they go. manyio's cancellation is
    level-triggered (every checkpoint in a cancelled scope raises again), so without a shield
    that release would stop at its first await and the connection would leak from the pool.
    """
    from redis.asyncio import connection

    targets = [
        (connection.AbstractConnection, "disconnect"),
        (connection.ConnectionPool, "release"),
        (connection.BlockingConnectionPool, "release"),
    ]
    for cls, name in targets:
        original = cls.__dict__[name]
        if getattr(original, "__manyio_shielded__", False):
            continue
        setattr(cls, name, _shielded(original))


def _shielded(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _aio.on_manyio():
            return await method(*args, **kwargs)
        with manyio.CancelScope(shield=True):
            return await method(*args, **kwargs)

    wrapper.__manyio_shielded__ = True  # type: ignore[attr-defined]
    return wrapper


def _replacements() -> dict[int, object]:
    return _aioshim.replacements(_aio, _SHIMMED)


def _patch_module(module: types.ModuleType, replacements: dict[int, object] | None = None) -> bool:
    """Points ``module``'s globals that are asyncio (or one of its shimmed names) at _aio."""
    return _aioshim.patch_module(module, replacements if replacements is not None else _replacements())
