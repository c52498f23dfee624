"""Async operations on standard :class:`socket.socket` objects.

Each function tries the non-blocking call first and waits for readiness only when it would
block, so a busy socket costs one system call per operation. Every call is a checkpoint. The
socket must be non-blocking (``sock.setblocking(False)``); these functions set it if needed.

Example::

    sock = socket.socket()
    await manyio.sockets.connect(sock, ("127.0.0.1", 8080))
    await manyio.sockets.sendall(sock, b"ping")
    reply = await manyio.sockets.recv(sock, 4096)
"""

from __future__ import annotations

import os as _os
import socket as _socket
from collections.abc import Callable
from typing import Any, TypeVar

from ._core import (
    cancel_shielded_checkpoint,
    check_cancelled,
    checkpoint,
    sleep,
    try_recv,
    wait_readable,
    wait_writable,
)

__all__ = ["accept", "connect", "recv", "recv_into", "recvfrom", "send", "sendall", "sendto"]

T = TypeVar("T")


async def _io(sock: _socket.socket, wait: Callable[[Any], Any], op: Callable[[], T]) -> T:
    # As in trio: a cancelled task does not start the operation; once the operation has
    # happened (data consumed, a connection accepted) its result reaches the caller and the
    # yield after it does not raise.
    check_cancelled()
    if sock.gettimeout() != 0.0:
        sock.setblocking(False)
    while True:
        try:
            result = op()
        except BlockingIOError, InterruptedError:
            result = None
        if result is None:  # would block (try_recv says so without raising)
            await wait(sock)
            continue
        await cancel_shielded_checkpoint()
        return result


async def recv(sock: _socket.socket, nbytes: int, flags: int = 0) -> bytes:
    """Receives up to ``nbytes``; ``b""`` at end of stream."""
    if flags:
        return await _io(sock, wait_readable, lambda: sock.recv(nbytes, flags))
    return await _io(sock, wait_readable, lambda: try_recv(sock, nbytes))


async def recv_into(sock: _socket.socket, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
    """Receives into ``buffer`` (up to ``nbytes``, 0: its size); returns the count, 0 at end of stream."""
    return await _io(sock, wait_readable, lambda: sock.recv_into(buffer, nbytes, flags))


async def recvfrom(sock: _socket.socket, bufsize: int, flags: int = 0) -> tuple[bytes, Any]:
    """Receives a datagram of up to ``bufsize`` bytes; returns it and the sender's address."""
    return await _io(sock, wait_readable, lambda: sock.recvfrom(bufsize, flags))


async def send(sock: _socket.socket, data: Any, flags: int = 0) -> int:
    """Sends what fits in the kernel buffer now (at least one byte); returns how much."""
    return await _io(sock, wait_writable, lambda: sock.send(data, flags))


async def sendto(sock: _socket.socket, data: Any, address: Any) -> int:
    """Sends a datagram to ``address``; returns the number of bytes sent."""
    return await _io(sock, wait_writable, lambda: sock.sendto(data, address))


async def sendall(sock: _socket.socket, data: Any, flags: int = 0) -> None:
    """Sends all of ``data``, waiting while the kernel buffer is full (backpressure)."""
    with memoryview(data).cast("B") as view:
        total = len(view)
        sent = 0
        while sent < total:
            sent += await send(sock, view[sent:], flags)
        if total == 0:
            await checkpoint()


async def accept(sock: _socket.socket) -> tuple[_socket.socket, Any]:
    """Accepts a connection; the new socket is non-blocking."""
    conn, address = await _io(sock, wait_readable, sock.accept)
    conn.setblocking(False)
    return conn, address


async def _connect_unix(sock: _socket.socket, address: Any) -> None:
    # A Unix socket connects at once or, with the listener's backlog full, fails with EAGAIN
    # without starting (there is no "in progress" to wait for): back off and try again.
    delay = 0.001
    while True:
        try:
            sock.connect(address)
        except BlockingIOError:
            await sleep(delay)
            delay = min(delay * 2, 0.05)
            continue
        except OSError as e:
            raise OSError(e.errno, f"{e.strerror} connecting to {address!r}") from None
        await cancel_shielded_checkpoint()
        return


async def connect(sock: _socket.socket, address: Any) -> None:
    """Connects, waiting for the handshake; raises the connection error (naming ``address``)."""
    check_cancelled()
    if sock.gettimeout() != 0.0:
        sock.setblocking(False)
    if sock.family == _socket.AF_UNIX:
        await _connect_unix(sock, address)
        return
    try:
        sock.connect(address)
    except BlockingIOError, InterruptedError:
        await wait_writable(sock)
        err = sock.getsockopt(_socket.SOL_SOCKET, _socket.SO_ERROR)
        if err:
            raise OSError(err, f"{_os.strerror(err)} connecting to {address!r}")
    except OSError as e:
        raise OSError(e.errno, f"{e.strerror} connecting to {address!r}") from None
    await checkpoint()
