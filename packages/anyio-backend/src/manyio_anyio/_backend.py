"""``ManyioBackend``: AnyIO's backend interface implemented on manyio's own primitives.

AnyIO calls these classmethods; it finds the class as ``backend_class`` in the module it
imports as ``anyio._backends._manyio`` (see ``_register``).

Options (``anyio.run(main, backend="manyio", backend_options={...})``):

``threads``
    worker threads (default: one per CPU).
``parallel``
    ``False`` (default): the run's tasks share one strand, so at most one of them runs at a
    time (on any worker) and AnyIO's single-threaded pieces (memory object streams,
    ``Condition``, ``BlockingPortal``) stay correct. Worker threads, blocking calls and other
    runs still proceed in parallel. ``True``: tasks run on all workers at once; code must not
    share AnyIO's single-threaded objects between tasks without a lock.
``exception_handler``
    called with a context dict for errors no one retrieved (default: logged).
"""

from __future__ import annotations

import math
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import AbstractContextManager
from signal import Signals
from types import TracebackType
from typing import IO, Any, TypeVar

import manyio
from anyio import TaskInfo, abc
from anyio._core._tasks import CancelScope as BaseCancelScope
from anyio.abc import AsyncBackend, IPSockAddrType
from anyio.abc._tasks import get_callable_name
from manyio import _core

from . import _process, _sockets, _threads
from ._sync import CapacityLimiter, Event, Lock, Semaphore
from ._tasks import CancelScope, ManyioTaskInfo, TaskGroup, current_task_info
from ._testing import TestRunner
from ._token import RunToken, current_run, current_token

T = TypeVar("T")

_OPTIONS = frozenset({"threads", "parallel", "exception_handler"})


def run_options(
    options: dict[str, Any],
) -> tuple[int | None, bool, Callable[[dict[str, Any]], object] | None]:
    unknown = set(options) - _OPTIONS
    if unknown:
        raise TypeError(
            f"unknown manyio backend option(s): {', '.join(sorted(unknown))}; "
            f"expected some of: {', '.join(sorted(_OPTIONS))}"
        )
    return options.get("threads"), bool(options.get("parallel", False)), options.get("exception_handler")


class ManyioBackend(AsyncBackend):
    @classmethod
    def run(
        cls,
        func: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        options: dict[str, Any],
    ) -> T:
        threads, parallel, handler = run_options(options)
        runtime = manyio.Runtime(threads, exception_handler=handler)
        strand = None if parallel else manyio.Strand()
        token = RunToken(runtime, strand)

        async def root() -> T:
            current_run.set(token)
            _core.current_task().name = get_callable_name(func)
            return await func(*args, **kwargs)

        with runtime:
            return runtime.block_on(root(), strand=strand)

    @classmethod
    def current_token(cls) -> object:
        return current_token()

    @classmethod
    def current_time(cls) -> float:
        return _core.current_time()

    @classmethod
    def cancelled_exception_class(cls) -> type[BaseException]:
        return manyio.Cancelled

    @classmethod
    async def checkpoint(cls) -> None:
        await _core.checkpoint()

    @classmethod
    async def checkpoint_if_cancelled(cls) -> None:
        _core.check_cancelled()

    @classmethod
    async def cancel_shielded_checkpoint(cls) -> None:
        await _core.cancel_shielded_checkpoint()

    @classmethod
    async def sleep(cls, delay: float) -> None:
        await _core.sleep(delay)

    @classmethod
    def create_cancel_scope(cls, *, deadline: float = math.inf, shield: bool = False) -> BaseCancelScope:
        return CancelScope(deadline=deadline, shield=shield)

    @classmethod
    def current_effective_deadline(cls) -> float:
        return _core.current_effective_deadline()

    @classmethod
    def create_task_group(cls) -> abc.TaskGroup:
        return TaskGroup()

    @classmethod
    def create_event(cls) -> Event:
        return Event()

    @classmethod
    def create_lock(cls, *, fast_acquire: bool) -> Lock:
        return Lock(fast_acquire=fast_acquire)

    @classmethod
    def create_semaphore(
        cls, initial_value: int, *, max_value: int | None = None, fast_acquire: bool = False
    ) -> Semaphore:
        return Semaphore(initial_value, max_value=max_value, fast_acquire=fast_acquire)

    @classmethod
    def create_capacity_limiter(cls, total_tokens: float) -> CapacityLimiter:
        return CapacityLimiter(total_tokens)

    @classmethod
    async def run_sync_in_worker_thread(
        cls,
        func: Callable[..., T],
        args: tuple[Any, ...],
        abandon_on_cancel: bool = False,
        limiter: Any = None,
    ) -> T:
        return await _threads.run_sync_in_worker_thread(cls, func, args, abandon_on_cancel, limiter)

    @classmethod
    def check_cancelled(cls) -> None:
        _threads.check_cancelled()

    @classmethod
    def run_async_from_thread(
        cls, func: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...], token: object
    ) -> T:
        return _threads.run_async_from_thread(func, args, token)  # type: ignore[arg-type]

    @classmethod
    def run_sync_from_thread(cls, func: Callable[..., T], args: tuple[Any, ...], token: object) -> T:
        return _threads.run_sync_from_thread(func, args, token)  # type: ignore[arg-type]

    @classmethod
    def run_sync_soon(cls, func: Callable[..., object], args: tuple[Any, ...], token: object) -> None:
        _threads.run_sync_soon(func, args, token)  # type: ignore[arg-type]

    @classmethod
    async def open_process(
        cls,
        command: Any,
        *,
        stdin: int | IO[Any] | None,
        stdout: int | IO[Any] | None,
        stderr: int | IO[Any] | None,
        **kwargs: Any,
    ) -> abc.Process:
        return await _process.open_process(command, stdin=stdin, stdout=stdout, stderr=stderr, **kwargs)

    @classmethod
    def setup_process_pool_exit_at_shutdown(cls, workers: set[abc.Process]) -> None:
        current_token().spawn(_process.shut_down_process_pool(workers), name="anyio process pool shutdown")

    @classmethod
    async def connect_tcp(
        cls, host: str, port: int, local_address: IPSockAddrType | None = None
    ) -> abc.SocketStream:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if local_address:
                sock.bind(local_address)
        except BaseException:
            sock.close()
            raise
        await _sockets.connect(sock, (host, port))
        return _sockets.SocketStream(sock)

    @classmethod
    async def connect_unix(cls, path: str | bytes, kind: socket.SocketKind) -> abc.UNIXSocketStream:
        sock = socket.socket(socket.AF_UNIX, kind)
        await _sockets.connect(sock, path)
        return _sockets.UNIXSocketStream(sock)

    @classmethod
    def create_tcp_listener(cls, sock: socket.socket) -> abc.SocketListener:
        return _sockets.TCPSocketListener(sock)

    @classmethod
    def create_unix_listener(cls, sock: socket.socket) -> abc.SocketListener:
        return _sockets.UNIXSocketListener(sock)

    @classmethod
    async def create_udp_socket(
        cls,
        family: socket.AddressFamily,
        local_address: IPSockAddrType | None,
        remote_address: IPSockAddrType | None,
        reuse_port: bool,
    ) -> abc.UDPSocket | abc.ConnectedUDPSocket:
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if local_address:
                sock.bind(local_address)
        except BaseException:
            sock.close()
            raise
        if remote_address:
            await _sockets.connect(sock, remote_address)
            return _sockets.ConnectedUDPSocket(sock)
        await _core.checkpoint()
        return _sockets.UDPSocket(sock)

    @classmethod
    async def create_unix_datagram_socket(  # type: ignore[override]
        cls, raw_socket: socket.socket, remote_path: str | bytes | None
    ) -> abc.UNIXDatagramSocket | abc.ConnectedUNIXDatagramSocket:
        if remote_path:
            await _sockets.connect(raw_socket, remote_path)
            return _sockets.ConnectedUNIXDatagramSocket(raw_socket)
        await _core.checkpoint()
        return _sockets.UNIXDatagramSocket(raw_socket)

    @classmethod
    async def getaddrinfo(
        cls,
        host: bytes | str | None,
        port: str | int | None,
        *,
        family: int | socket.AddressFamily = 0,
        type: int | socket.SocketKind = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> Sequence[tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]]:
        return await manyio.net.getaddrinfo(host, port, family=family, type=type, proto=proto, flags=flags)

    @classmethod
    async def getnameinfo(cls, sockaddr: IPSockAddrType, flags: int = 0) -> tuple[str, str]:
        return await manyio.net.getnameinfo(sockaddr, flags)

    @classmethod
    async def wait_readable(cls, obj: Any) -> None:
        with _sockets.translated_waits("reading from"):
            await _core.wait_readable(obj)

    @classmethod
    async def wait_writable(cls, obj: Any) -> None:
        with _sockets.translated_waits("writing to"):
            await _core.wait_writable(obj)

    @classmethod
    def notify_closing(cls, obj: Any) -> None:
        _core.notify_closing(obj)

    @classmethod
    async def wrap_listener_socket(cls, sock: socket.socket) -> abc.SocketListener:
        if sock.family == socket.AF_UNIX:
            return _sockets.UNIXSocketListener(sock)
        return _sockets.TCPSocketListener(sock)

    @classmethod
    async def wrap_stream_socket(cls, sock: socket.socket) -> abc.SocketStream:
        return _sockets.SocketStream(sock)

    @classmethod
    async def wrap_unix_stream_socket(cls, sock: socket.socket) -> abc.UNIXSocketStream:
        return _sockets.UNIXSocketStream(sock)

    @classmethod
    async def wrap_udp_socket(cls, sock: socket.socket) -> abc.UDPSocket:
        return _sockets.UDPSocket(sock)

    @classmethod
    async def wrap_connected_udp_socket(cls, sock: socket.socket) -> abc.ConnectedUDPSocket:
        return _sockets.ConnectedUDPSocket(sock)

    @classmethod
    async def wrap_unix_datagram_socket(cls, sock: socket.socket) -> abc.UNIXDatagramSocket:
        return _sockets.UNIXDatagramSocket(sock)

    @classmethod
    async def wrap_connected_unix_datagram_socket(
        cls, sock: socket.socket
    ) -> abc.ConnectedUNIXDatagramSocket:
        return _sockets.ConnectedUNIXDatagramSocket(sock)

    @classmethod
    def current_default_thread_limiter(cls) -> CapacityLimiter:
        return current_token().default_thread_limiter()

    @classmethod
    def open_signal_receiver(cls, *signals: Signals) -> AbstractContextManager[AsyncIterator[Signals]]:
        return _SignalReceiver(signals)

    @classmethod
    def get_current_task(cls) -> TaskInfo:
        return current_task_info()

    @classmethod
    def get_running_tasks(cls) -> Sequence[TaskInfo]:
        return [ManyioTaskInfo(task) for task in _core.all_tasks() if not task.done()]

    @classmethod
    async def wait_all_tasks_blocked(cls) -> None:
        await wait_all_tasks_blocked()

    @classmethod
    def create_test_runner(cls, options: dict[str, Any]) -> abc.TestRunner:
        return TestRunner(**options)


async def wait_all_tasks_blocked() -> None:
    """Returns once every other task of the runtime waits for something (trio's semantics)."""
    me = _core.current_task()
    spins = 0
    while True:
        await _core.checkpoint()
        if all(task is me or task.blocked() or task.done() for task in _core.all_tasks()):
            # Look twice, a step apart: a task woken between the two looks shows up.
            await _core.checkpoint()
            if all(task is me or task.blocked() or task.done() for task in _core.all_tasks()):
                return
        spins += 1
        if spins > 100:
            # Others are busy for a while (maybe in a worker thread): stop spinning hot.
            await _core.sleep(0.001)


class _SignalReceiver:
    def __init__(self, signals: tuple[Signals, ...]) -> None:
        self._signals = signals
        self._cm: Any = None
        self._receiver: Any = None

    def __enter__(self) -> _SignalReceiver:
        self._cm = manyio.open_signal_receiver(*self._signals)
        self._receiver = self._cm.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return self._cm.__exit__(exc_type, exc, tb)

    def __aiter__(self) -> _SignalReceiver:
        return self

    async def __anext__(self) -> Signals:
        return Signals(await self._receiver.__anext__())


backend_class = ManyioBackend
