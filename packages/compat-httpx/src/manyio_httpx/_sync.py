"""httpcore's synchronization primitives, made safe for tasks on several threads.

httpcore picks Trio or AnyIO-on-asyncio per primitive on first use and refuses anything else.
We replace the methods on its classes (so every module that imported them sees the change):

* ``AsyncThreadLock`` guards the pool's request and connection lists. httpcore makes it a
  no-op in async code because one event loop runs one task at a time; manyio runs tasks on
  every worker at once, so it becomes a real mutex (held only around code that never awaits).
* ``AsyncLock``, ``AsyncEvent``, ``AsyncSemaphore`` and ``AsyncShieldCancellation`` use
  manyio's thread-safe primitives when the caller is a manyio task; otherwise httpcore's own
  code runs unchanged, so asyncio and Trio programs in the same process keep working.
* Their lazy ``setup()`` runs under a mutex: two workers could otherwise each build their own
  lock for one connection and both get in.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

import manyio
from httpcore import PoolTimeout
from httpcore import _synchronization as hs
from manyio.compat import on_manyio

__all__ = ["install"]

_MANYIO = "manyio"
_setup_mutex = threading.Lock()
_fallback_mutex = threading.RLock()  # for AsyncThreadLocks made before install()


def install() -> None:
    """Patches httpcore's primitive classes once (idempotent)."""
    if getattr(hs, "_manyio_installed", False):
        return
    _patch_thread_lock()
    _patch_lock()
    _patch_event()
    _patch_semaphore()
    _patch_shield()
    hs._manyio_installed = True  # type: ignore[attr-defined]


def _lazy_setup(cls: Any, build: Any) -> None:
    """Replaces ``cls.setup`` (httpcore's first-use choice of implementation): under a mutex,
    ``build(self)`` for a manyio task, httpcore's own choice otherwise."""
    original = cls.setup

    def setup(self: Any) -> None:
        with _setup_mutex:
            if self._backend:
                return
            if on_manyio():
                build(self)
                self._backend = _MANYIO
            else:
                original(self)

    cls.setup = setup


def _patch_thread_lock() -> None:
    cls = hs.AsyncThreadLock

    def __init__(self: Any) -> None:
        self._manyio_mutex = threading.Lock()

    def __enter__(self: Any) -> Any:
        self.__dict__.get("_manyio_mutex", _fallback_mutex).acquire()
        return self

    def __exit__(self: Any, *exc_info: object) -> None:
        self.__dict__.get("_manyio_mutex", _fallback_mutex).release()

    cls.__init__ = __init__  # type: ignore[method-assign,assignment]
    cls.__enter__ = __enter__  # type: ignore[method-assign]
    cls.__exit__ = __exit__  # type: ignore[method-assign,assignment]


def _patch_lock() -> None:
    cls = hs.AsyncLock
    aenter, aexit = cls.__aenter__, cls.__aexit__
    _lazy_setup(cls, lambda self: setattr(self, "_manyio_lock", manyio.Lock()))

    async def __aenter__(self: Any) -> Any:
        if not self._backend:
            self.setup()
        if self._backend != _MANYIO:
            return await aenter(self)
        lock = self._manyio_lock
        try:
            lock.acquire_nowait()  # uncontended: no checkpoint, as with asyncio's lock
        except manyio.WouldBlock:
            await lock.acquire()
        return self

    async def __aexit__(
        self: Any, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:  # fmt: skip
        if self._backend == _MANYIO:
            self._manyio_lock.release()
        else:
            await aexit(self, exc_type, exc, tb)

    cls.__aenter__ = __aenter__  # type: ignore[method-assign]
    cls.__aexit__ = __aexit__  # type: ignore[method-assign]


def _patch_event() -> None:
    cls = hs.AsyncEvent
    set_, wait = cls.set, cls.wait
    _lazy_setup(cls, lambda self: setattr(self, "_manyio_event", manyio.Event()))

    def patched_set(self: Any) -> None:
        if not self._backend:
            self.setup()
        if self._backend == _MANYIO:
            self._manyio_event.set()
        else:
            set_(self)

    async def patched_wait(self: Any, timeout: float | None = None) -> None:
        if not self._backend:
            self.setup()
        if self._backend != _MANYIO:
            await wait(self, timeout)
            return
        event = self._manyio_event
        if event.is_set():
            return
        if timeout is None:
            await event.wait()
            return
        with manyio.move_on_after(max(timeout, 0.0)):
            await event.wait()
            return
        raise PoolTimeout(f"no connection became available within {timeout} s")

    cls.set = patched_set  # type: ignore[method-assign]
    cls.wait = patched_wait  # type: ignore[method-assign]


def _patch_semaphore() -> None:
    cls = hs.AsyncSemaphore
    acquire, release = cls.acquire, cls.release
    _lazy_setup(cls, lambda self: setattr(self, "_manyio_semaphore", manyio.Semaphore(self._bound)))

    async def patched_acquire(self: Any) -> None:
        if not self._backend:
            self.setup()
        if self._backend == _MANYIO:
            await self._manyio_semaphore.acquire()
        else:
            await acquire(self)

    async def patched_release(self: Any) -> None:
        if self._backend == _MANYIO:
            self._manyio_semaphore.release()
        else:
            await release(self)

    cls.acquire = patched_acquire  # type: ignore[method-assign]
    cls.release = patched_release  # type: ignore[method-assign]


def _patch_shield() -> None:
    cls = hs.AsyncShieldCancellation
    init, enter, exit_ = cls.__init__, cls.__enter__, cls.__exit__

    def __init__(self: Any) -> None:
        if on_manyio():
            self._backend = _MANYIO
            self._manyio_scope = manyio.CancelScope(shield=True)
        else:
            init(self)

    def __enter__(self: Any) -> Any:
        if self._backend == _MANYIO:
            self._manyio_scope.__enter__()
            return self
        return enter(self)

    def __exit__(
        self: Any, exc_type: type[BaseException] | None = None, exc: BaseException | None = None,
        tb: TracebackType | None = None,
    ) -> None:  # fmt: skip
        if self._backend == _MANYIO:
            self._manyio_scope.__exit__(exc_type, exc, tb)
        else:
            exit_(self, exc_type, exc, tb)

    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.__enter__ = __enter__  # type: ignore[method-assign]
    cls.__exit__ = __exit__  # type: ignore[method-assign,assignment]
