"""The part of :mod:`asyncio` that redis-py uses, answered by manyio inside manyio tasks.

:func:`manyio_redis.patch` puts this module where redis-py's modules say ``asyncio``. It is
manyio's shared shim (:mod:`manyio._aioshim`: each call asks whether a manyio task or an
asyncio task is calling, and answers with manyio or stock asyncio) plus what only redis-py
needs: streams on manyio sockets and a ``threading`` whose ``local`` is shared by tasks.
"""

from __future__ import annotations

import threading
import types
from typing import Any

from manyio._aioshim import *  # noqa: F403
from manyio._aioshim import _asyncio, on_manyio

from ._streams import open_connection as _open_connection
from ._streams import open_unix_connection as _open_unix_connection


def __getattr__(name: str) -> Any:
    return getattr(_asyncio, name)


class _SharedLocal(types.ModuleType):
    """:mod:`threading` as ``redis.asyncio.lock`` sees it. Under asyncio every task runs on
    the loop's one thread, so a ``threading.local()`` there is shared by all tasks (a lock
    acquired in one task can be released in another). manyio tasks move between threads, so
    the same sharing is a plain namespace."""

    local = types.SimpleNamespace

    def __getattr__(self, name: str) -> Any:
        return getattr(threading, name)


threading_for_redis_lock = _SharedLocal("threading")


# --- streams: manyio sockets inside manyio tasks ---


async def open_connection(host: str | None = None, port: int | None = None, **kwargs: Any) -> Any:
    if on_manyio():
        return await _open_connection(host, port, **kwargs)
    return await _asyncio.open_connection(host, port, **kwargs)


async def open_unix_connection(path: Any = None, **kwargs: Any) -> Any:
    if on_manyio():
        return await _open_unix_connection(path, **kwargs)
    return await _asyncio.open_unix_connection(path, **kwargs)
