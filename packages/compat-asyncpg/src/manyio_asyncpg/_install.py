"""What :func:`manyio_asyncpg.patch` changes in asyncpg, and why.

* asyncpg's modules say ``asyncio``: they get :mod:`manyio._aioshim` instead, which answers
  with manyio inside manyio tasks (timeouts are cancel scopes, ``shield`` shields, the pool's
  queue is thread-safe) and with stock asyncio inside asyncio tasks.
* Each connection gets its own :class:`SerialLoop` (``connect_utils._connect_addr``), each
  pool one for its bookkeeping (``Pool.__init__``); a pool passing its loop to ``connect``
  does not make its connections share one.
* The protocol's async entry points (``bind_execute``, ``query``, ``copy_in``...) step
  holding their connection's lock, whoever calls them: asyncpg's Connection,
  PreparedStatement, Cursor and Pool code all end there, so the protocol state is only ever
  touched serially (with the reader and the timers, which hold the same lock).
* The connection's background cancel request (``Connection._cancel``, a task of its own) steps
  holding the connection's lock, and so does ``_clean_tasks``, which cancels those tasks on
  close: both change the connection's set of pending cancellations. ``_cleanup`` (terminate,
  close, and the protocol's connection_lost) holds it too: it hands the pool holder back.
* Each pool holder is a serial domain of its own, shared with the connections it opens
  (see ``_pool``): acquiring and releasing a connection takes no pool-wide lock. The pool's
  own bookkeeping (init, close, expiry, its timers and size maintenance) steps holding the
  pool's lock. Locks are taken pool first, then holder (= connection), never the other way.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
from collections.abc import Awaitable, Callable
from typing import Any

from manyio import _aioshim
from manyio._core import Serialized

from ._loop import SerialLoop
from ._pool import connection_lock, serial_holder_class

# Protocol methods that start an operation on the connection (all coroutines).
_PROTOCOL_CALLS = (
    "prepare", "bind_execute", "bind_execute_many", "bind", "execute", "close_portal", "query",
    "copy_out", "copy_in", "close_statement", "close", "_wait_for_cancellation",
)  # fmt: skip
# Pool-wide bookkeeping; acquire and release hold only the holder's lock.
_POOL_CALLS = ("_async__init__", "close", "expire_connections")
# asyncio names asyncpg binds directly (``from asyncio import wait_for``), matched by identity.
_SHIMMED = ("timeout", "timeout_at", "wait_for", "shield", "gather", "sleep", "create_task", "current_task")

_protocol_class: type | None = None


def install() -> list[str]:
    import asyncpg
    import asyncpg.compat
    import asyncpg.connect_utils
    import asyncpg.connection
    import asyncpg.pool
    import asyncpg.protocol.protocol

    patched = []
    table = _aioshim.replacements(_aioshim, _SHIMMED)
    for module in _asyncpg_modules():
        if _aioshim.patch_module(module, table):
            patched.append(module.__name__)
    _install_protocol(asyncpg.connect_utils)
    _install_connect(asyncpg.connect_utils)
    _install_connection(asyncpg.connection.Connection)
    _install_pool(asyncpg.pool)
    return patched


def _asyncpg_modules() -> list[types.ModuleType]:
    return [m for name, m in list(sys.modules.items()) if name.startswith("asyncpg") and m is not None]


# -- protocol: every operation serialized with its connection ---------------------------------


def _install_protocol(connect_utils: types.ModuleType) -> None:
    global _protocol_class
    original = connect_utils.protocol
    if isinstance(original, _ProtocolModule):
        return
    base = original.Protocol

    def __init__(
        self: Any, addr: Any, connected_fut: Any, con_params: Any, record_class: Any, loop: Any
    ) -> None:
        base.__init__(self, addr, connected_fut, con_params, record_class, loop)
        self._manyio_loop = loop  # the Cython attribute is not readable from Python

    def abort(self: Any) -> None:
        # terminate() may come from any task: change the protocol's state under its loop's lock.
        loop = self._manyio_loop
        if type(loop) is SerialLoop:
            with loop.lock:
                base.abort(self)
        else:
            base.abort(self)

    namespace: dict[str, Any] = {
        "__module__": __name__, "__doc__": _SERIAL_PROTOCOL_DOC, "__init__": __init__, "abort": abort,
    }  # fmt: skip
    for name in _PROTOCOL_CALLS:
        namespace[name] = _serialized_step(getattr(base, name), name)
    _protocol_class = type("SerialProtocol", (base,), namespace)
    connect_utils.protocol = _ProtocolModule(original, _protocol_class)


_SERIAL_PROTOCOL_DOC = """asyncpg's Protocol whose operations step holding its loop's lock."""


def _serialized_step(method: Any, name: str) -> Callable[..., Awaitable[Any]]:
    """A protocol ``method`` stepping under its loop's lock. It returns the awaitable itself,
    not a coroutine around it: asyncpg only ever awaits these at once, and every step of a
    query passes through them, so a wrapping frame would cost on each step."""

    def call(self: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
        loop = self._manyio_loop
        if type(loop) is SerialLoop:
            return Serialized(method(self, *args, **kwargs), loop.lock, loop.run_ready)
        return method(self, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    call.__manyio__ = True  # type: ignore[attr-defined]
    return call


def _serialized(method: Any, loop_attr: str, name: str) -> Callable[..., Awaitable[Any]]:
    """``method`` stepping under the lock of the object's loop (``getattr(self, loop_attr)``)
    when that loop is a :class:`SerialLoop`; the method as it is otherwise. Still a coroutine
    function: these are public (``Pool.release``) or handed to ``create_task``."""

    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        loop = getattr(self, loop_attr)
        if type(loop) is SerialLoop:
            return await Serialized(method(self, *args, **kwargs), loop.lock, loop.run_ready)
        return await method(self, *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    call.__manyio__ = True  # type: ignore[attr-defined]
    return call


class _ProtocolModule(types.ModuleType):
    """``asyncpg.protocol`` as ``connect_utils`` sees it: its Protocol is the serialized one."""

    def __init__(self, module: types.ModuleType, protocol: type) -> None:
        super().__init__(module.__name__)
        self._module = module
        self.Protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


# -- connect: a loop per connection -----------------------------------------------------


def _install_connect(connect_utils: types.ModuleType) -> None:
    original = connect_utils._connect_addr
    if getattr(original, "__manyio__", False):
        return

    @functools.wraps(original)
    async def _connect_addr(*, loop: Any, **kwargs: Any) -> Any:
        if not _on_manyio_loop(loop):
            return await original(loop=loop, **kwargs)
        own = SerialLoop(parent=loop, lock=connection_lock())
        return await own.run(original(loop=own, **kwargs))

    _connect_addr.__manyio__ = True  # type: ignore[attr-defined]
    connect_utils._connect_addr = _connect_addr


def _on_manyio_loop(loop: Any) -> bool:
    if type(loop) is SerialLoop:
        return True
    return (loop is None or isinstance(loop, _aioshim._Loop)) and _aioshim.on_manyio()


def _install_connection(connection_class: type) -> None:
    if getattr(connection_class._cancel, "__manyio__", False):
        return
    connection_class._cancel = _serialized(connection_class._cancel, "_loop", "_cancel")
    # _cleanup runs from terminate() and close() in the caller's task, and from the protocol's
    # connection_lost in the loop's: both take the pool holder and clear the listeners.
    connection_class._cleanup = _under_loop_lock(connection_class._cleanup)
    connection_class._clean_tasks = _under_loop_lock(connection_class._clean_tasks)


def _under_loop_lock(method: Callable[[Any], None]) -> Callable[[Any], None]:
    """A synchronous Connection ``method`` run holding its SerialLoop's lock (reentrant)."""

    @functools.wraps(method)
    def locked(self: Any) -> None:
        loop = self._loop
        if type(loop) is SerialLoop:
            with loop.lock:
                method(self)
        else:
            method(self)

    return locked


# -- pool: bookkeeping serialized -----------------------------------------------


def _install_pool(pool_module: types.ModuleType) -> None:
    original_queue = getattr(pool_module, "_PoolConnectionHolderQueue", None)  # asyncpg >= 0.32
    if original_queue is not None and not getattr(original_queue, "__manyio__", False):

        def _holder_queue(maxsize: int = 0) -> Any:
            if not _aioshim.on_manyio():
                return original_queue(maxsize=maxsize)
            from ._pool import HolderQueue

            return HolderQueue(maxsize)

        _holder_queue.__manyio__ = True  # type: ignore[attr-defined]
        pool_module._PoolConnectionHolderQueue = _holder_queue
    pool_class = pool_module.Pool
    init = pool_class.__init__
    if getattr(init, "__manyio__", False):
        return
    pool_module.PoolConnectionHolder = serial_holder_class(
        pool_module.PoolConnectionHolder, lambda pool: type(pool._loop) is SerialLoop
    )
    schedule = getattr(pool_class, "_schedule_min_size_maintenance", None)  # asyncpg >= 0.32
    if schedule is not None:
        pool_class._schedule_min_size_maintenance = _under_mutex(schedule)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, loop: Any = None, **kwargs: Any) -> None:
        if _on_manyio_loop(loop):
            loop = SerialLoop(locked_tasks=True, parent=loop)
        init(self, *args, loop=loop, **kwargs)

    __init__.__manyio__ = True  # type: ignore[attr-defined]
    pool_class.__init__ = __init__
    for name in _POOL_CALLS:
        setattr(pool_class, name, _serialized(getattr(pool_class, name), "_loop", name))


# Holders whose connections close (under their own locks, on any worker) may all ask at once.
_maintenance_mutex = threading.Lock()


def _under_mutex(method: Callable[[Any], None]) -> Callable[[Any], None]:
    """The pool's check-then-start of its size maintenance task, made atomic. A plain mutex:
    it is called holding a holder's lock, so it must not wait for the pool's."""

    @functools.wraps(method)
    def atomic(self: Any) -> None:
        with _maintenance_mutex:
            method(self)

    return atomic
