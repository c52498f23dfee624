"""httpcore's network backend on manyio sockets: connections made and read on whichever worker
runs the calling task, no event-loop thread in between.

Plain TCP and Unix sockets are read and written directly; a task parks in manyio's reactor
only when the kernel would block, and only then is a timeout armed. TLS goes through
:class:`manyio.TLSStream` (Python's ``ssl`` over memory BIOs), so ALPN, client certificates
and verification are the ``SSLContext``'s that httpx built.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Coroutine, Iterable
from typing import Any

import manyio
from httpcore import (
    ConnectError,
    ConnectTimeout,
    ReadError,
    ReadTimeout,
    WriteError,
    WriteTimeout,
)
from httpcore._backends.base import SOCKET_OPTION, AsyncNetworkBackend, AsyncNetworkStream
from httpcore._utils import is_socket_readable
from manyio import CancelScope, current_time
from manyio.net import connect_tcp, connect_unix

__all__ = ["ManyioBackend", "ManyioStream", "ManyioTLSStream"]

_STREAM_ERRORS = (manyio.BrokenResourceError, manyio.ClosedResourceError, OSError)


def _deadline(timeout: float | None) -> float:
    return float("inf") if timeout is None else current_time() + max(timeout, 0.0)


class _Connection(AsyncNetworkStream):
    """What plain and TLS connections share: TLS on top, and httpcore's extra info."""

    _transport: Any  # what a TLS handshake on this connection runs over
    _sock: socket.socket
    _ssl_object: ssl.SSLObject | None = None

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> AsyncNetworkStream:
        # Over TLS too: an HTTPS origin reached through an HTTPS proxy's CONNECT tunnel.
        tls = await _handshake(self._transport, ssl_context, server_hostname, timeout)
        return ManyioTLSStream(tls, self._sock)

    def get_extra_info(self, info: str) -> Any:
        if info == "ssl_object":
            return self._ssl_object
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return is_socket_readable(self._sock)
        try:
            if info == "client_addr":
                return self._sock.getsockname()
            if info == "server_addr":
                return self._sock.getpeername()
        except OSError:
            return None
        return None


class ManyioStream(_Connection):
    """A TCP or Unix connection, as httpcore's connections use it."""

    def __init__(self, stream: manyio.net.SocketStream) -> None:
        self._stream = self._transport = stream
        self._sock = stream.socket

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        sock = self._sock
        try:
            # Bytes the kernel already holds are taken at once (asyncio's buffered reads).
            return sock.recv(max_bytes)
        except BlockingIOError:
            pass
        except OSError as e:
            raise ReadError(_describe(e)) from e
        with CancelScope(deadline=_deadline(timeout)) as scope:
            while True:
                try:
                    await manyio.wait_readable(sock)
                    return sock.recv(max_bytes)
                except BlockingIOError:
                    continue
                except _STREAM_ERRORS as e:
                    raise ReadError(_describe(e)) from e
        assert scope.cancelled_caught
        raise ReadTimeout(f"no response data within {timeout} s")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        sock = self._sock
        view = memoryview(buffer)
        try:
            sent = sock.send(view)
        except BlockingIOError:
            sent = 0
        except OSError as e:
            raise WriteError(_describe(e)) from e
        if sent == len(view):
            return
        with CancelScope(deadline=_deadline(timeout)) as scope:
            while sent < len(view):
                try:
                    await manyio.wait_writable(sock)
                    sent += sock.send(view[sent:])
                except BlockingIOError:
                    continue
                except _STREAM_ERRORS as e:
                    raise WriteError(_describe(e)) from e
            return
        assert scope.cancelled_caught
        raise WriteTimeout(f"could not send the request within {timeout} s")

    async def aclose(self) -> None:
        self._stream.close()


class ManyioTLSStream(_Connection):
    """A TLS connection (to the origin, or through a proxy's tunnel)."""

    def __init__(self, tls: manyio.TLSStream, raw_socket: socket.socket) -> None:
        self._tls = self._transport = tls
        self._sock = raw_socket
        self._ssl_object = tls.ssl_object

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        tls = self._tls
        try:
            return tls.receive_nowait(max_bytes)
        except manyio.WouldBlock:
            pass
        except _STREAM_ERRORS as e:
            raise ReadError(_describe(e)) from e
        with CancelScope(deadline=_deadline(timeout)) as scope:
            try:
                return await tls.receive(max_bytes)
            except _STREAM_ERRORS as e:
                raise ReadError(_describe(e)) from e
        assert scope.cancelled_caught
        raise ReadTimeout(f"no response data within {timeout} s")

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with CancelScope(deadline=_deadline(timeout)) as scope:
            try:
                await self._tls.send_all(buffer)
            except _STREAM_ERRORS as e:
                raise WriteError(_describe(e)) from e
            return
        assert scope.cancelled_caught
        raise WriteTimeout(f"could not send the request within {timeout} s")

    async def aclose(self) -> None:
        # httpcore closes inside a shielded scope; a close_notify costs no round trip.
        with CancelScope(deadline=current_time() + 1.0):
            await self._tls.aclose()


class ManyioBackend(AsyncNetworkBackend):
    """Opens httpcore's connections with :mod:`manyio.net`.

    Example::

        pool = httpcore.AsyncConnectionPool(network_backend=manyio_httpx.ManyioBackend())
    """

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        connecting = connect_tcp(host, port, local_host=local_address)
        return await _connect(connecting, f"{host}:{port}", timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SOCKET_OPTION] | None = None,
    ) -> AsyncNetworkStream:
        return await _connect(connect_unix(path), path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await manyio.sleep(seconds)


async def _connect(
    connecting: Coroutine[Any, Any, manyio.net.SocketStream],
    address: str,
    timeout: float | None,
    socket_options: Iterable[SOCKET_OPTION] | None,
) -> ManyioStream:
    with CancelScope(deadline=_deadline(timeout)) as scope:
        try:
            stream = await connecting
        except OSError as e:
            raise ConnectError(_describe(e)) from e
        for option in socket_options or ():
            stream.socket.setsockopt(*option)
        return ManyioStream(stream)
    assert scope.cancelled_caught
    raise ConnectTimeout(f"could not connect to {address} within {timeout} s")


async def _handshake(
    transport: Any, ssl_context: ssl.SSLContext, server_hostname: str | None, timeout: float | None
) -> manyio.TLSStream:
    with CancelScope(deadline=_deadline(timeout)) as scope:
        try:
            return await manyio.TLSStream.wrap(
                transport,
                ssl_context=ssl_context,
                server_hostname=server_hostname,
                standard_compatible=False,  # servers often close without close_notify
            )
        except (ssl.SSLError, *_STREAM_ERRORS) as e:
            raise ConnectError(_describe(e)) from e
    assert scope.cancelled_caught
    raise ConnectTimeout(f"the TLS handshake did not finish within {timeout} s")


def _describe(e: BaseException) -> str:
    """The cause as httpx shows it: the TLS failure itself, not the stream error around it."""
    cause = e.__cause__
    if isinstance(e, (manyio.BrokenResourceError, manyio.ClosedResourceError)) and cause is not None:
        return str(cause) or str(e)
    return str(e) or type(e).__name__
