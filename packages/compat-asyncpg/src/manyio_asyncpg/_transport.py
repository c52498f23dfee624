"""asyncio's Transport over a manyio socket (or TLS stream), for one protocol.

A reader task feeds ``protocol.data_received`` holding the loop's lock; writes (made by
protocol steps, which hold it too) go straight to the socket while the kernel takes them,
and the rest is flushed by a writer task (with asyncio's flow control: ``pause_writing`` /
``resume_writing`` at the buffer's high and low marks).
"""

from __future__ import annotations

import asyncio
import socket
import ssl as _ssl
from typing import TYPE_CHECKING, Any

import manyio
import manyio.net
from manyio._core import wait_readable

if TYPE_CHECKING:
    from ._loop import SerialLoop

__all__ = ["StreamTransport", "open_transport", "upgrade_transport"]

_HIGH_WATER = 64 * 1024
_LOW_WATER = 16 * 1024
_READ_SIZE = 256 * 1024


class StreamTransport(asyncio.Transport):
    def __init__(self, loop: SerialLoop, stream: Any, sock: socket.socket, protocol: Any) -> None:
        super().__init__(_extra_info(stream, sock))
        self._loop = loop
        self._stream = stream
        self._sock = sock
        # Plain sockets are written directly; a TLS stream encrypts first.
        self._direct = isinstance(stream, manyio.net.SocketStream)
        self._protocol = protocol
        self._buffer = bytearray()
        self._writer: Any = None
        self._reader: Any = None
        self._reading = manyio.Event()
        self._reading.set()
        self._writing_paused = False
        self._high_water = _HIGH_WATER
        self._low_water = _LOW_WATER
        self._closing = False
        self._lost = False

    def _start_reading(self) -> None:
        self._reader = self._loop.spawn(self._read_loop(), "asyncpg reader")

    # -- reading ------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        loop = self._loop
        try:
            if self._direct:
                await self._read_socket()
            else:
                await self._read_stream()
        except manyio.Cancelled:
            raise  # closed by us
        except (OSError, manyio.BrokenResourceError, manyio.ClosedResourceError, _ssl.SSLError) as e:
            loop.deliver(self._connection_lost, _as_os_error(e))
            return
        except Exception as e:
            loop.call_exception_handler({"message": "asyncpg protocol failed", "exception": e})
            loop.deliver(self._connection_lost, e)
            return
        loop.deliver(self._eof)

    async def _read_socket(self) -> None:
        """Delivers what the plain socket receives until end of stream. A reply has usually
        not arrived yet when the previous one was delivered, so this waits for readiness and
        then reads once: trying to read first would mostly fail (a wasted system call and an
        exception per chunk)."""
        sock, recv, reading, loop = self._sock, self._sock.recv, self._reading, self._loop
        while True:
            if not reading.is_set():
                await reading.wait()
            await wait_readable(sock)  # a checkpoint, even when already readable
            try:
                data = recv(_READ_SIZE)
            except BlockingIOError, InterruptedError:
                continue  # another reader of the fd took the data, or a signal
            if not data:
                return
            loop.deliver(self._received, data)

    async def _read_stream(self) -> None:
        """Delivers what a TLS stream decrypts until end of stream."""
        receive, reading, loop = self._stream.receive, self._reading, self._loop
        while True:
            if not reading.is_set():
                await reading.wait()
            data = await receive(_READ_SIZE)
            if not data:
                return
            loop.deliver(self._received, data)

    def _received(self, data: bytes) -> None:
        if not self._lost:
            self._protocol.data_received(data)

    def _eof(self) -> None:
        # asyncio asks the protocol whether to keep the write side open; asyncpg never does.
        keep_open = self._protocol.eof_received()
        if not keep_open:
            self._connection_lost(None)

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def is_reading(self) -> bool:
        return self._reading.is_set() and not self._closing

    # -- writing ------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing or self._lost:
            return
        if not data:
            return
        if self._direct and not self._buffer:
            try:
                sent = self._sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError as e:
                self._fatal(e)
                return
            if sent == len(data):
                return
            data = memoryview(data)[sent:]
        self._buffer += data
        if self._writer is None:
            self._writer = self._loop.spawn(self._flush(), "asyncpg writer")
        self._maybe_pause()

    def _maybe_pause(self) -> None:
        if not self._writing_paused and len(self._buffer) > self._high_water:
            self._writing_paused = True
            self._protocol.pause_writing()

    def writelines(self, chunks: Any) -> None:
        self.write(b"".join(chunks))

    async def _flush(self) -> None:
        loop = self._loop
        try:
            while True:
                with loop.lock:
                    if not self._buffer:
                        self._writer = None
                        if self._closing:
                            self._finish_close()
                        return
                    chunk = bytes(self._buffer)
                    self._buffer.clear()
                await self._stream.send_all(chunk)
                with loop.lock:
                    if self._writing_paused and len(self._buffer) <= self._low_water:
                        self._writing_paused = False
                        loop.deliver(self._protocol.resume_writing)
        except manyio.Cancelled:
            raise
        except (OSError, manyio.BrokenResourceError, manyio.ClosedResourceError, _ssl.SSLError) as e:
            with loop.lock:
                self._writer = None
                loop.deliver(self._fatal, _as_os_error(e))

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low_water, self._high_water

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        # asyncio's defaults and checks: low is a quarter of high unless given.
        if high is None:
            high = _HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause()

    def can_write_eof(self) -> bool:
        return False

    # -- closing ------------------------------------------------------------------------

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def close(self) -> None:
        """Flushes what is buffered, then closes; the protocol hears ``connection_lost(None)``."""
        if self._closing:
            return
        self._closing = True
        if self._writer is None:
            self._finish_close()

    def abort(self) -> None:
        """Closes at once, dropping buffered data."""
        self._closing = True
        self._buffer.clear()
        if self._writer is not None:
            self._writer.cancel()
            self._writer = None
        self._finish_close()

    def _finish_close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._connection_lost(None)

    def _fatal(self, exc: BaseException) -> None:
        self._closing = True
        self._buffer.clear()
        if self._reader is not None:
            self._reader.cancel()
        self._connection_lost(exc)

    def _connection_lost(self, exc: BaseException | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._stream_close()
        # asyncio reports it from the loop, never from inside write() or close().
        self._loop.call_soon(self._protocol.connection_lost, exc)

    def _stream_close(self) -> None:
        stream = self._stream
        if isinstance(stream, manyio.net.SocketStream):
            stream.close()
        else:
            # A TLS stream: no close_notify exchange (asyncpg sends Terminate itself first).
            try:
                manyio.notify_closing(self._sock)
            except RuntimeError:
                pass
            self._sock.close()

    # -- the rest -----------------------------------------------------------------------

    def set_protocol(self, protocol: Any) -> None:
        self._protocol = protocol

    def get_protocol(self) -> Any:
        return self._protocol

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return f"<manyio_asyncpg.StreamTransport {state} fd={self._sock.fileno()}>"


def _extra_info(stream: Any, sock: socket.socket) -> dict[str, Any]:
    extra: dict[str, Any] = {"socket": sock}
    try:
        extra["sockname"] = sock.getsockname()
    except OSError:
        pass
    try:
        extra["peername"] = sock.getpeername()
    except OSError:
        pass
    if isinstance(stream, manyio.TLSStream):
        extra["ssl_object"] = stream.ssl_object
        extra["sslcontext"] = stream.ssl_object.context
        extra["peercert"] = stream.getpeercert()
        extra["cipher"] = stream.cipher()
    return extra


def _as_os_error(e: BaseException) -> BaseException:
    if isinstance(e, OSError):
        return e
    if isinstance(e, manyio.BrokenResourceError | manyio.ClosedResourceError):
        error = ConnectionResetError(str(e))
        error.__cause__ = e
        return error
    return e


async def open_transport(
    loop: SerialLoop,
    protocol_factory: Any,
    *,
    host: str | None = None,
    port: int | None = None,
    path: str | None = None,
    ssl: Any = None,
    server_hostname: str | None = None,
    sock: socket.socket | None = None,
) -> tuple[StreamTransport, Any]:
    """``loop.create_connection`` / ``create_unix_connection``: connects, wraps in TLS when
    asked, and starts the protocol (``connection_made``, then the reader)."""
    if sock is not None:
        stream: Any = manyio.net.SocketStream(sock)
    elif path is not None:
        stream = await manyio.net.connect_unix(path)
    else:
        if host is None or port is None:
            raise ValueError("host and port are required without sock")
        try:
            stream = await manyio.net.connect_tcp(host, port)
        except OSError as e:
            # asyncio's wording, which asyncpg users see and match.
            raise OSError(e.errno, f"Connect call failed ({host!r}, {port}): {e.strerror or e}") from e
    raw = stream.socket
    if ssl is not None:
        context = ssl if isinstance(ssl, _ssl.SSLContext) else _ssl.create_default_context()
        try:
            stream = await manyio.TLSStream.wrap(
                stream,
                ssl_context=context,
                server_hostname=server_hostname or host,
                standard_compatible=False,
            )
        except BaseException:
            raw.close()
            raise
    protocol = protocol_factory()
    transport = StreamTransport(loop, stream, raw, protocol)
    protocol.connection_made(transport)
    transport._start_reading()
    return transport, protocol


async def upgrade_transport(
    transport: StreamTransport, protocol: Any, context: _ssl.SSLContext, server_hostname: str | None
) -> StreamTransport:
    """``loop.start_tls``: stops the plain transport's reader and continues in TLS."""
    if transport._reader is not None:
        transport._reader.cancel()
        with manyio.CancelScope(shield=True):
            try:
                await transport._reader
            except BaseException:
                pass
    plain = transport._stream
    tls = await manyio.TLSStream.wrap(
        plain, ssl_context=context, server_hostname=server_hostname, standard_compatible=False
    )
    # The plain transport is retired without closing the socket the TLS stream now uses.
    transport._lost = transport._closing = True
    upgraded = StreamTransport(transport._loop, tls, transport._sock, protocol)
    upgraded._start_reading()
    return upgraded
