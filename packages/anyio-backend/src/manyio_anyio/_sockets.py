"""AnyIO's socket classes over plain non-blocking sockets and manyio's readiness waits.

Every operation tries the system call first and waits (``manyio.wait_readable`` /
``wait_writable``) only when it would block. ``aclose()`` wakes the tasks waiting on the
socket (``manyio.notify_closing``) before closing it, so they raise ``ClosedResourceError``
instead of waiting forever. The guards that stop two tasks reading (or writing) at once are
real locks: the tasks may run on different worker threads.
"""

from __future__ import annotations

import array
import errno
import socket
import threading
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from functools import partial
from io import IOBase
from typing import Any, TypeVar

import manyio
from anyio import BrokenResourceError, BusyResourceError, ClosedResourceError, EndOfStream, abc
from anyio._core._sockets import convert_ipv6_sockaddr
from manyio import _core

T = TypeVar("T")

_RECEIVE_SIZE = 65536


class _Guard:
    """Raises ``BusyResourceError`` when a second task tries the same direction at once."""

    __slots__ = ("_action", "_lock")

    def __init__(self, action: str) -> None:
        self._action = action
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise BusyResourceError(self._action)

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class _RawSocket:
    """What every socket class shares: the socket, closing, and error translation."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False
        self._receive_guard = _Guard("reading from")
        self._send_guard = _Guard("writing to")

    @property
    def _raw_socket(self) -> socket.socket:
        return self._sock

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError
        if self._sock.fileno() < 0:
            raise BrokenResourceError

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            with translated_waits("reading from or writing to"):
                yield
        except OSError as exc:
            if self._closed:
                raise ClosedResourceError from None
            raise BrokenResourceError from exc

    async def _io(self, wait: Callable[[Any], Any], op: Callable[[], T]) -> T:
        # A cancelled task does not start the operation; once it has happened (bytes sent
        # or consumed), the result reaches the caller.
        _core.check_cancelled()
        with self._translated():
            while True:
                self._check_open()
                try:
                    result = op()
                except BlockingIOError, InterruptedError:
                    await wait(self._sock)
                    continue
                await _core.cancel_shielded_checkpoint()
                return result

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._sock.fileno() >= 0:
                manyio.notify_closing(self._sock)
            self._sock.close()
        await _core.checkpoint()


class SocketStream(_RawSocket, abc.SocketStream):
    async def receive(self, max_bytes: int = _RECEIVE_SIZE) -> bytes:
        if max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        with self._receive_guard:
            data = await self._io(_core.wait_readable, lambda: self._sock.recv(max_bytes))
        if not data:
            raise EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        with self._send_guard, memoryview(item).cast("B") as view:
            sent = 0
            total = len(view)
            while sent < total:
                sent += await self._io(_core.wait_writable, partial(self._sock.send, view[sent:]))
            if total == 0:
                await _core.checkpoint()

    async def send_eof(self) -> None:
        with self._send_guard:
            self._check_open()
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                if exc.errno != errno.ENOTCONN:
                    raise BrokenResourceError from exc
        await _core.checkpoint()


class UNIXSocketStream(SocketStream, abc.UNIXSocketStream):
    async def send_fds(self, message: bytes, fds: Collection[int | IOBase]) -> None:
        if not message:
            raise ValueError("message must not be empty")
        if not fds:
            raise ValueError("fds must not be empty")
        filenos = [fd if isinstance(fd, int) else fd.fileno() for fd in fds]
        ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", filenos))]
        await _core.checkpoint()
        with self._send_guard, memoryview(message).cast("B") as view:
            sent = 0
            while sent < len(view):
                sent += await self._io(
                    _core.wait_writable, partial(self._sock.sendmsg, [view[sent:]], ancdata)
                )
                ancdata = []  # the descriptors went with the first successful write

    async def receive_fds(self, msglen: int, maxfds: int) -> tuple[bytes, list[int]]:
        if not isinstance(msglen, int) or msglen < 0:
            raise ValueError("msglen must be a non-negative integer")
        if not isinstance(maxfds, int) or maxfds < 1:
            raise ValueError("maxfds must be a positive integer")
        fds = array.array("i")
        await _core.checkpoint()
        with self._receive_guard:
            message, ancdata, _flags, _addr = await self._io(
                _core.wait_readable,
                lambda: self._sock.recvmsg(msglen, socket.CMSG_LEN(maxfds * fds.itemsize)),
            )
        if not message and not ancdata:
            raise EndOfStream
        for level, kind, data in ancdata:
            if level != socket.SOL_SOCKET or kind != socket.SCM_RIGHTS:
                raise RuntimeError(
                    f"Received unexpected ancillary data; message = {message!r}, "
                    f"cmsg_level = {level}, cmsg_type = {kind}"
                )
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
        return message, list(fds)


class _Listener(_RawSocket):
    _stream_class: type[SocketStream] = SocketStream

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._accept_guard = _Guard("accepting connections from")

    def _configure(self, conn: socket.socket) -> None:
        pass

    async def accept(self) -> Any:
        with self._accept_guard:
            conn, _addr = await self._io(_core.wait_readable, self._sock.accept)
        conn.setblocking(False)
        self._configure(conn)
        return self._stream_class(conn)


class TCPSocketListener(_Listener, abc.SocketListener):
    def _configure(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class UNIXSocketListener(_Listener, abc.SocketListener):
    _stream_class = UNIXSocketStream


class UDPSocket(_RawSocket, abc.UDPSocket):
    async def receive(self) -> tuple[bytes, tuple[str, int]]:
        with self._receive_guard:
            data, addr = await self._io(_core.wait_readable, lambda: self._sock.recvfrom(_RECEIVE_SIZE))
        return data, convert_ipv6_sockaddr(addr)

    async def send(self, item: tuple[bytes, tuple[str, int]]) -> None:
        data, address = item
        with self._send_guard:
            await self._io(_core.wait_writable, lambda: self._sock.sendto(data, address))


class _ConnectedDatagrams(_RawSocket):
    async def receive(self) -> bytes:
        with self._receive_guard:
            return await self._io(_core.wait_readable, lambda: self._sock.recv(_RECEIVE_SIZE))

    async def send(self, item: bytes) -> None:
        with self._send_guard:
            await self._io(_core.wait_writable, lambda: self._sock.send(item))


class ConnectedUDPSocket(_ConnectedDatagrams, abc.ConnectedUDPSocket):
    pass


class UNIXDatagramSocket(_RawSocket, abc.UNIXDatagramSocket):
    async def receive(self) -> tuple[bytes, str]:
        with self._receive_guard:
            return await self._io(_core.wait_readable, lambda: self._sock.recvfrom(_RECEIVE_SIZE))

    async def send(self, item: tuple[bytes, str]) -> None:
        data, path = item
        with self._send_guard:
            await self._io(_core.wait_writable, lambda: self._sock.sendto(data, path))


class ConnectedUNIXDatagramSocket(_ConnectedDatagrams, abc.ConnectedUNIXDatagramSocket):
    pass


async def connect(sock: socket.socket, address: Any) -> None:
    """Connects ``sock`` (closing it on failure or cancellation)."""
    try:
        await manyio.sockets.connect(sock, address)
    except BaseException:
        sock.close()
        raise


@contextmanager
def translated_waits(action: str) -> Iterator[None]:
    """manyio's closed/busy errors from a readiness wait, as AnyIO's."""
    try:
        yield
    except manyio.ClosedResourceError as exc:
        raise ClosedResourceError from exc
    except manyio.BusyResourceError as exc:
        raise BusyResourceError(action) from exc
