"""Byte streams over sockets: :class:`SocketStream`, :class:`SocketListener`, :class:`UDPSocket`."""

from __future__ import annotations

import errno
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from . import sockets
from ._core import checkpoint, notify_closing, try_recv
from ._exceptions import BrokenResourceError, BusyResourceError, ClosedResourceError, WouldBlock

__all__ = ["SocketListener", "SocketStream", "UDPSocket"]

_BROKEN = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class _Guard:
    """Detects two tasks using one direction of a stream at once (BusyResourceError). A real
    lock, taken without waiting: tasks on two workers cannot both get in."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        if not self._lock.acquire(blocking=False):
            raise BusyResourceError(f"another task is already {self._what}")

    def __exit__(self, *exc_info: object) -> None:
        self._lock.release()


class _SocketResource:
    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._closed = False

    @property
    def socket(self) -> socket.socket:
        """The underlying socket (do not close it yourself: use ``aclose``)."""
        return self._sock

    def fileno(self) -> int:
        """The socket's file descriptor."""
        return self._sock.fileno()

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError("this socket was closed")

    @contextmanager
    def _translate_errors(self, *, peer_errors: bool = True) -> Iterator[None]:
        """OS errors as the stream errors callers handle: a reset or closed peer is
        BrokenResourceError (unless ``peer_errors`` is false: datagram sockets report an
        unreachable peer as itself), our own close is ClosedResourceError. A close made by a
        task on another worker can land between the open check and the system call (EBADF)."""
        try:
            yield
        except _BROKEN as e:
            if not peer_errors:
                raise
            raise BrokenResourceError(f"the peer closed or reset the connection: {e}") from e
        except OSError as e:
            if self._closed or e.errno == errno.EBADF:
                raise ClosedResourceError("this socket was closed") from e
            raise

    def close(self) -> None:
        """Closes the socket; tasks blocked on it raise :class:`ClosedResourceError`."""
        if self._closed:
            return
        self._closed = True
        if self._sock.fileno() >= 0:
            try:
                notify_closing(self._sock)
            except RuntimeError:
                pass  # outside a runtime: nobody can be waiting
        self._sock.close()

    async def aclose(self) -> None:
        """Closes the socket (see :meth:`close`); a checkpoint."""
        self.close()
        await checkpoint()

    def setsockopt(self, level: int, option: int, value: Any) -> None:
        """Sets a socket option (:meth:`socket.socket.setsockopt`)."""
        self._sock.setsockopt(level, option, value)

    def getsockopt(self, level: int, option: int, buflen: int | None = None) -> Any:
        """Reads a socket option (:meth:`socket.socket.getsockopt`)."""
        if buflen is None:
            return self._sock.getsockopt(level, option)
        return self._sock.getsockopt(level, option, buflen)

    @property
    def local_address(self) -> Any:
        """The address the socket is bound to."""
        return self._sock.getsockname()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class SocketStream(_SocketResource):
    """A connected stream socket (TCP or Unix).

    Example::

        async with await manyio.net.connect_tcp("127.0.0.1", 8080) as stream:
            await stream.send_all(b"ping")
            print(await stream.receive())
    """

    def __init__(self, sock: socket.socket) -> None:
        super().__init__(sock)
        self._send_guard = _Guard("sending on this stream")
        self._receive_guard = _Guard("receiving from this stream")
        if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.type == socket.SOCK_STREAM:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    @property
    def remote_address(self) -> Any:
        """The peer's address."""
        return self._sock.getpeername()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Sends all of ``data``, waiting while the kernel buffer is full."""
        with self._send_guard, self._translate_errors():
            self._check_open()
            await sockets.sendall(self._sock, data)

    send = send_all

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` bytes; ``b""`` once the peer has finished sending."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._receive_guard, self._translate_errors():
            self._check_open()
            return await sockets.recv(self._sock, max_bytes)

    def receive_nowait(self, max_bytes: int = 65536) -> bytes:
        """What :meth:`receive` would return right now, without waiting: raises
        :class:`WouldBlock` when nothing has arrived (``b""`` means the peer finished)."""
        if max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        with self._receive_guard, self._translate_errors():
            self._check_open()
            data = try_recv(self._sock, max_bytes)
            if data is None:
                raise WouldBlock
            return data

    async def send_eof(self) -> None:
        """Shuts down the sending direction; the peer then reads ``b""``."""
        with self._send_guard:
            self._check_open()
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError as e:
                if e.errno != errno.ENOTCONN:
                    raise
            await checkpoint()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive():
            yield chunk

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._sock.fileno()}"
        return f"<manyio.SocketStream {state}>"


class SocketListener(_SocketResource):
    """A listening socket; ``accept()`` returns a :class:`SocketStream`."""

    async def accept(self) -> SocketStream:
        """Waits for a connection and returns it as a :class:`SocketStream`."""
        self._check_open()
        with self._translate_errors():
            conn, _ = await sockets.accept(self._sock)
        return SocketStream(conn)

    @property
    def port(self) -> int:
        """The bound port (for TCP)."""
        return self._sock.getsockname()[1]

    def __repr__(self) -> str:
        return f"<manyio.SocketListener {self.local_address!r}>"


class UDPSocket(_SocketResource):
    """A datagram socket (UDP or Unix datagram), connected or not."""

    async def sendto(self, data: bytes, address: Any) -> None:
        """Sends a datagram to ``address``."""
        self._check_open()
        with self._translate_errors(peer_errors=False):
            await sockets.sendto(self._sock, data, address)

    async def send(self, data: bytes) -> None:
        """Sends to the connected peer."""
        self._check_open()
        with self._translate_errors(peer_errors=False):
            await sockets.send(self._sock, data)

    async def receive_from(self, max_bytes: int = 65536) -> tuple[bytes, Any]:
        """A datagram and the address it came from."""
        self._check_open()
        with self._translate_errors(peer_errors=False):
            return await sockets.recvfrom(self._sock, max_bytes)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """A datagram from the connected peer."""
        self._check_open()
        with self._translate_errors(peer_errors=False):
            return await sockets.recv(self._sock, max_bytes)

    @property
    def remote_address(self) -> Any:
        """The connected peer's address."""
        return self._sock.getpeername()
