"""asyncio-style stream reader and writer over manyio sockets, for redis-py's connections.

redis-py talks to the server through ``asyncio.open_connection``'s (reader, writer) pair and
reads through ``readline``/``readexactly``. These classes give it the same surface over a
manyio :class:`~manyio.net.SocketStream` (or :class:`~manyio.TLSStream`), so its bytes move on
whichever worker runs the calling task: no loop thread, no transport callbacks.

A connection is used by one task at a time (redis-py's pool hands it out), so the reader
keeps a plain buffer; two tasks reading at once get manyio's ``BusyResourceError``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as _ssl
from typing import Any

import manyio
from manyio._core import try_recv
from manyio.net import connect_tcp, connect_unix

__all__ = ["StreamReader", "StreamWriter", "open_connection", "open_unix_connection"]

_LIMIT = 2**16
_CHUNK = 65536


def _as_os_error(e: Exception) -> OSError:
    """manyio's stream errors as the OSErrors redis-py handles (asyncio raises those)."""
    if isinstance(e, manyio.ClosedResourceError):
        return ConnectionError(f"the connection was closed: {e}")
    return ConnectionResetError(str(e) or "the server closed or reset the connection")


class StreamReader:
    """``readline``, ``readexactly``, ``read`` and ``at_eof`` over a manyio byte stream."""

    def __init__(self, stream: Any, limit: int = _LIMIT) -> None:
        self._stream = stream
        # Plain TCP/Unix: read the socket directly (one recv per fill, readiness from manyio's
        # reactor only when the kernel has nothing); TLS goes through the TLSStream.
        self._sock: socket.socket | None = None if isinstance(stream, manyio.TLSStream) else stream.socket
        self._limit = limit
        self._buf = bytearray()
        self._eof = False

    @property
    def _buffer(self) -> bytearray:
        # redis-py peeks at asyncio's private buffer to tell a dirty or dead pooled connection
        # from a clean one before reusing it. asyncio fills that buffer in the background; we
        # pull what the socket already holds, without waiting.
        if not self._buf and not self._eof:
            try:
                sock = self._sock
                data = try_recv(sock, _CHUNK) if sock is not None else self._stream.receive_nowait(_CHUNK)
            except manyio.WouldBlock:
                pass
            except manyio.BrokenResourceError, manyio.ClosedResourceError, OSError:
                self._eof = True
            else:
                if data:
                    self._buf += data
                elif data is not None:
                    self._eof = True
        return self._buf

    def at_eof(self) -> bool:
        return self._eof and not self._buf

    async def _fill(self) -> bool:
        """Receives one chunk into the buffer; False at end of stream.

        Bytes the kernel already holds are taken without a checkpoint: under asyncio they
        would already sit in the reader's buffer, and redis-py relies on reading them even
        inside an expired timeout (``get_message(timeout=0)`` polls that way)."""
        if self._eof:
            return False
        sock = self._sock
        try:
            if sock is not None:
                while (data := try_recv(sock, _CHUNK)) is None:
                    await manyio.wait_readable(sock)
            else:
                try:
                    data = self._stream.receive_nowait(_CHUNK)
                except manyio.WouldBlock:
                    data = await self._stream.receive(_CHUNK)
        except (manyio.BrokenResourceError, manyio.ClosedResourceError) as e:
            raise _as_os_error(e) from e
        if not data:
            self._eof = True
            return False
        self._buf += data
        return True

    async def readline(self) -> bytes:
        """Up to and including the next ``\\n``; what is left (maybe ``b""``) at end of stream."""
        buf = self._buf
        start = 0
        while (end := buf.find(b"\n", start)) < 0:
            start = len(buf)
            if start > self._limit:
                raise ValueError("Separator is not found, and chunk exceed the limit")
            if not await self._fill():
                line = bytes(buf)
                buf.clear()
                return line
        line = bytes(buf[: end + 1])
        del buf[: end + 1]
        return line

    async def readexactly(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or :class:`asyncio.IncompleteReadError` at end of stream."""
        if n < 0:
            raise ValueError("readexactly size can not be less than zero")
        buf = self._buf
        while len(buf) < n:
            if not await self._fill():
                partial = bytes(buf)
                buf.clear()
                raise asyncio.IncompleteReadError(partial, n)
        data = bytes(buf[:n])
        del buf[:n]
        return data

    async def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (everything until end of stream when ``n < 0``)."""
        if n == 0:
            return b""
        if n < 0:
            while await self._fill():
                pass
            data = bytes(self._buf)
            self._buf.clear()
            return data
        if not self._buf:
            await self._fill()
        data = bytes(self._buf[:n])
        del self._buf[:n]
        return data


class _Transport:
    """What redis-py asks of ``writer.transport``: ``get_extra_info``, ``close``."""

    def __init__(self, writer: StreamWriter) -> None:
        self._writer = writer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._writer.get_extra_info(name, default)

    def close(self) -> None:
        self._writer.close()

    def is_closing(self) -> bool:
        return self._writer.is_closing()


class StreamWriter:
    """``write``/``writelines`` collect bytes; ``drain`` sends them; ``close`` is immediate."""

    def __init__(self, stream: Any, sock: socket.socket) -> None:
        self._stream = stream
        self._sock = sock
        self._pending: list[bytes | bytearray | memoryview] = []
        self._closed = False
        self.transport = _Transport(self)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data:
            self._pending.append(data)

    def writelines(self, data: Any) -> None:
        self._pending.extend(data)

    async def drain(self) -> None:
        pending = self._pending
        if not pending:
            await manyio.checkpoint()
            return
        data = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        try:
            if isinstance(self._stream, manyio.TLSStream):
                await self._stream.send_all(data)
                return
            # Plain sockets: send directly; wait in manyio's reactor only when the kernel's
            # buffer is full. Like asyncio's drain, this is no checkpoint when it need not wait.
            sock = self._sock
            try:
                sent = sock.send(data)
            except BlockingIOError:
                sent = 0
            if sent == len(data):  # a command nearly always fits the kernel's buffer
                return
            with memoryview(data) as view:
                while sent < len(view):
                    try:
                        sent += sock.send(view[sent:])
                    except BlockingIOError:
                        await manyio.wait_writable(sock)
        except (manyio.BrokenResourceError, manyio.ClosedResourceError) as e:
            raise _as_os_error(e) from e

    def can_write_eof(self) -> bool:
        return not isinstance(self._stream, manyio.TLSStream)

    def write_eof(self) -> None:
        self._sock.shutdown(socket.SHUT_WR)

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        # Synchronous, like asyncio's: TLS close_notify is skipped (the peer sees the TCP
        # close), which is what asyncio does when the loop cannot flush it either.
        if self._closed:
            return
        self._closed = True
        self._pending.clear()
        stream = self._stream
        (stream.transport if isinstance(stream, manyio.TLSStream) else stream).close()

    async def wait_closed(self) -> None:
        await manyio.checkpoint()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        sock = self._sock
        try:
            match name:
                case "socket":
                    return sock
                case "peername":
                    return sock.getpeername()
                case "sockname":
                    return sock.getsockname()
        except OSError:
            return default
        if isinstance(self._stream, manyio.TLSStream):
            match name:
                case "ssl_object" | "sslcontext":
                    obj = self._stream.ssl_object
                    return obj if name == "ssl_object" else obj.context
                case "peercert":
                    return self._stream.getpeercert()
                case "cipher":
                    return self._stream.cipher()
                case "compression":
                    return None
        return default


async def open_connection(
    host: str | None = None,
    port: int | None = None,
    *,
    limit: int = _LIMIT,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    **kwargs: Any,
) -> tuple[StreamReader, StreamWriter]:
    """:func:`asyncio.open_connection` on manyio: TCP, and TLS when ``ssl`` is given."""
    if host is None or port is None:
        raise ValueError("host and port are required (a sock= argument is not supported)")
    stream = await connect_tcp(host, port)
    sock = stream.socket
    if ssl:
        context = ssl if isinstance(ssl, _ssl.SSLContext) else _ssl.create_default_context()
        hostname = server_hostname if server_hostname is not None else host
        try:
            with manyio.fail_after(ssl_handshake_timeout if ssl_handshake_timeout is not None else 60.0):
                stream = await manyio.TLSStream.wrap(
                    stream, ssl_context=context, server_hostname=hostname or None
                )
        except (manyio.BrokenResourceError, manyio.ClosedResourceError) as e:
            cause = e.__cause__
            if isinstance(cause, _ssl.SSLError):
                raise cause from None  # asyncio raises OpenSSL's own error (a certificate failure, say)
            raise _as_os_error(e) from e
    return StreamReader(stream, limit), StreamWriter(stream, sock)


async def open_unix_connection(
    path: str | bytes | os.PathLike[str] | None = None, *, limit: int = _LIMIT, **kwargs: Any
) -> tuple[StreamReader, StreamWriter]:
    """:func:`asyncio.open_unix_connection` on manyio."""
    if path is None:
        raise ValueError("path is required (a sock= argument is not supported)")
    stream = await connect_unix(path)
    return StreamReader(stream, limit), StreamWriter(stream, stream.socket)
