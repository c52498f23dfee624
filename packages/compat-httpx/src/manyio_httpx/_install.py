"""What :func:`manyio_httpx.patch` changes in httpcore, applied once per process."""

from __future__ import annotations

import threading
from typing import Any

from httpcore._backends import auto

from . import _http2, _pool, _sync
from ._backend import ManyioBackend

_lock = threading.Lock()
_done = False


def httpcore() -> None:
    """Thread-safe primitives, HTTP/2 connections in strands, orphaned connections reclaimed,
    and manyio sockets for pools that did not choose a network backend (what
    ``httpx.AsyncClient()`` builds)."""
    global _done
    with _lock:
        if _done:
            return
        _sync.install()
        _http2.install()
        _pool.install()
        _auto_backend()
        _done = True


def _auto_backend() -> None:
    from manyio.compat import on_manyio

    init_backend = auto.AutoBackend._init_backend

    async def _init_backend(self: Any) -> None:
        if not hasattr(self, "_backend") and on_manyio():
            self._backend = ManyioBackend()
            return
        await init_backend(self)

    auto.AutoBackend._init_backend = _init_backend  # type: ignore[method-assign]
