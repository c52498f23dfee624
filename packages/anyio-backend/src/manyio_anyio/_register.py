"""Making AnyIO (and httpcore) find the manyio backend.

AnyIO has no plugin mechanism: ``get_async_backend("manyio")`` imports
``anyio._backends._manyio`` and reads its ``backend_class``. Registering puts our backend
module into ``sys.modules`` under that name (public import machinery), adds "manyio" to the
names ``anyio.get_all_backends()`` lists, makes AnyIO's memory object streams thread-safe
(``_memory_streams``), and lets httpcore accept the "manyio" sniffio name:
httpcore only knows "asyncio" and "trio", and for "asyncio" it uses AnyIO's API, which is
exactly what runs on this backend.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

BACKEND_NAME = "manyio"
_lock = threading.Lock()
_done = False


def register() -> None:
    """Registers the backend with AnyIO, and with httpcore if it is installed. Idempotent."""
    global _done
    with _lock:
        if _done:
            return
        from anyio._core import _eventloop

        from . import _backend, _memory_streams

        sys.modules.setdefault(f"anyio._backends._{BACKEND_NAME}", _backend)
        # AnyIO code may run in parallel on manyio (parallel runs, plain manyio tasks).
        _memory_streams.install()
        if BACKEND_NAME not in _eventloop.BACKENDS:
            _eventloop.BACKENDS = (*_eventloop.BACKENDS, BACKEND_NAME)
        _patch_httpcore()
        _done = True


def _patch_httpcore() -> None:
    try:
        from httpcore import _synchronization
        from httpcore._backends import auto
    except ImportError:
        return
    original = _synchronization.current_async_library
    if getattr(original, "_manyio", False):
        return

    def current_async_library() -> str:
        import sniffio

        if sniffio.current_async_library() == BACKEND_NAME:
            return "asyncio"  # httpcore's AnyIO code path
        return original()

    patched: Any = current_async_library
    patched._manyio = True
    _synchronization.current_async_library = patched
    auto.current_async_library = patched  # imported by name there
