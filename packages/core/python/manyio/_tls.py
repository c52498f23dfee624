"""TLS over any manyio byte stream, with Python's :mod:`ssl` (``SSLContext`` + ``MemoryBIO``).

Full duplex and safe across worker threads: one task may send while another receives. The
``SSLObject`` is only touched under a real mutex, never across an await; TLS records leave in
the order OpenSSL produced them because the outgoing buffer is drained only by the holder of
the send lock; and only one task at a time reads from the transport.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol, TypeVar

from ._core import checkpoint
from ._exceptions import BrokenResourceError, BusyResourceError, ClosedResourceError, WouldBlock
from ._sync import Lock

__all__ = ["ByteStream", "TLSStream"]

T = TypeVar("T")


class ByteStream(Protocol):
    async def send_all(self, data: bytes | bytearray | memoryview) -> None: ...
    async def receive(self, max_bytes: int = ...) -> bytes: ...
    async def aclose(self) -> None: ...


class TLSStream:
    """A TLS connection over ``transport``. Create one with :meth:`wrap`.

    Example::

        stream = await manyio.net.connect_tcp("example.org", 443)
        tls = await manyio.TLSStream.wrap(stream, server_hostname="example.org")
        await tls.send_all(b"GET / HTTP/1.0\\r\\nHost: example.org\\r\\n\\r\\n")
    """

    def __init__(
        self,
        transport: ByteStream,
        ssl_object: ssl.SSLObject,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        *,
        standard_compatible: bool,
    ) -> None:
        self.transport = transport
        self._ssl = ssl_object
        self._incoming = incoming
        self._outgoing = outgoing
        self._standard_compatible = standard_compatible
        self._mutex = threading.Lock()
        self._send_lock = Lock()
        self._recv_lock = Lock()
        self._closed = False
        self._handshaken = False
        self._receiving = False
        self._sending = False

    @classmethod
    async def wrap(
        cls,
        transport: ByteStream,
        *,
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        server_side: bool = False,
        standard_compatible: bool = True,
    ) -> TLSStream:
        """Runs the handshake over ``transport`` and returns the TLS stream.

        Without ``ssl_context`` a default context verifies the peer (as a client, against the
        system CA store and ``server_hostname``). With ``standard_compatible=False`` a peer
        that closes without a TLS close_notify reads as end of stream instead of an error
        (what most HTTPS clients need).
        """
        if ssl_context is None:
            purpose = ssl.Purpose.CLIENT_AUTH if server_side else ssl.Purpose.SERVER_AUTH
            ssl_context = ssl.create_default_context(purpose)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        ssl_object = ssl_context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )
        stream = cls(transport, ssl_object, incoming, outgoing, standard_compatible=standard_compatible)
        try:
            await stream.do_handshake()
        except BaseException:
            await _close_quietly(transport)
            raise
        return stream

    # --- the engine: call OpenSSL, ship what it wrote, feed it what it wants to read ---

    async def _flush(self) -> None:
        # Only take the send lock when there is something to send: a reader must never wait
        # behind a sender blocked on a full socket (with the peer in the same state, neither
        # side would drain the other). The lock holder sends until the buffer is empty.
        with self._mutex:
            if not self._outgoing.pending:
                return
        async with self._send_lock:
            while True:
                with self._mutex:
                    data = self._outgoing.read()
                if not data:
                    return
                try:
                    await self.transport.send_all(data)
                except BrokenResourceError, ClosedResourceError:
                    raise
                except OSError as e:
                    raise BrokenResourceError(str(e)) from e

    async def _feed(self) -> None:
        async with self._recv_lock:
            # Another task may have fed OpenSSL while we waited for the lock.
            with self._mutex:
                if self._incoming.pending:
                    return
            try:
                data = await self.transport.receive()
            except OSError as e:
                raise BrokenResourceError(str(e)) from e
            self._take_in(data)

    def _take_in(self, data: bytes) -> None:
        """Hands what the transport read to OpenSSL (``b""``: the transport's end of stream)."""
        with self._mutex:
            if data:
                self._incoming.write(data)
            else:
                self._incoming.write_eof()

    async def _retry(self, op: Callable[[], T], *, reading: bool = False) -> T:
        while True:
            want_read = False
            error: ssl.SSLError | None = None
            with self._mutex:
                try:
                    result = op()
                except ssl.SSLWantReadError:
                    want_read = True
                except ssl.SSLZeroReturnError:
                    raise
                except ssl.SSLError as e:
                    error = e
            if error is not None:
                # Send the alert OpenSSL wrote, so the peer learns why (best effort).
                try:
                    await self._flush()
                except Exception:
                    pass
                raise BrokenResourceError(f"TLS error: {error}") from error
            if not (reading and self._sending):
                # A reader leaves the flushing to a sender at work: what is pending may be the
                # sender's bulk data, and a reader blocked on a full socket stops draining the
                # peer, which then stops reading (both sides stuck). The sender sends it all.
                await self._flush()
            if not want_read:
                return result
            await self._feed()

    async def do_handshake(self) -> None:
        """Runs the handshake (``wrap`` does it for you)."""
        if self._handshaken:
            return
        await self._retry(self._ssl.do_handshake)
        self._handshaken = True

    # --- the stream API ---

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedResourceError("this TLS stream was closed")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypts and sends all of ``data``."""
        self._check_open()
        if self._sending:
            raise BusyResourceError("another task is already sending on this TLS stream")
        self._sending = True
        try:
            # Chunks are bytes, not views of the caller's buffer: on 3.14t, views of one buffer
            # made and freed on different threads can corrupt its export count (CPython
            # gh-155606), and this task may resume on another worker after each await.
            data = data if type(data) is bytes else bytes(data)
            offset = 0
            while offset < len(data):
                chunk = data[offset : offset + 65536]
                offset += await self._retry(lambda c=chunk: self._ssl.write(c))
            if not data:
                await checkpoint()
        finally:
            self._sending = False

    send = send_all

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` decrypted bytes; ``b""`` after the peer's close_notify."""
        self._check_open()
        if self._receiving:
            raise BusyResourceError("another task is already receiving from this TLS stream")
        self._receiving = True
        try:
            return await self._retry(lambda: self._ssl.read(max_bytes), reading=True)
        except ssl.SSLZeroReturnError:
            return b""
        except BrokenResourceError as e:
            if not self._standard_compatible and isinstance(e.__cause__, ssl.SSLEOFError):
                return b""
            raise
        finally:
            self._receiving = False

    def receive_nowait(self, max_bytes: int = 65536) -> bytes:
        """Decrypted bytes already at hand, without waiting: raises :class:`WouldBlock` when
        the records received so far hold no application data (a TLS 1.3 session ticket, say).
        Needs a transport with ``receive_nowait``; anything OpenSSL wants to send back is
        shipped by the next :meth:`send_all` or :meth:`receive`."""
        self._check_open()
        if self._receiving:
            raise BusyResourceError("another task is already receiving from this TLS stream")
        self._receiving = True
        try:
            while True:
                with self._mutex:
                    try:
                        return self._ssl.read(max_bytes)
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLZeroReturnError:
                        return b""
                    except ssl.SSLEOFError as e:
                        if not self._standard_compatible:
                            return b""
                        raise BrokenResourceError(f"TLS error: {e}") from e
                    except ssl.SSLError as e:
                        raise BrokenResourceError(f"TLS error: {e}") from e
                try:
                    data = self.transport.receive_nowait()  # type: ignore[attr-defined]
                except BusyResourceError:
                    raise WouldBlock from None  # another task is feeding OpenSSL right now
                except OSError as e:
                    raise BrokenResourceError(str(e)) from e
                self._take_in(data)
        finally:
            self._receiving = False

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        while chunk := await self.receive():
            yield chunk

    async def unwrap(self) -> tuple[ByteStream, bytes]:
        """Ends TLS (close_notify both ways) and returns the transport and any bytes already
        read past the end of TLS."""
        self._check_open()
        try:
            await self._retry(self._ssl.unwrap)
        except ssl.SSLZeroReturnError:
            pass
        self._closed = True
        with self._mutex:
            leftover = self._incoming.read()
        return self.transport, leftover

    async def aclose(self) -> None:
        """Sends close_notify (best effort, never blocking on the peer) and closes the transport."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._handshaken:
                with self._mutex:
                    try:
                        self._ssl.unwrap()
                    except ssl.SSLError:
                        pass
                    data = self._outgoing.read()
                if data:
                    await self.transport.send_all(data)
        except OSError, BrokenResourceError, ClosedResourceError:
            pass
        finally:
            await self.transport.aclose()

    async def __aenter__(self) -> TLSStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # --- what the connection negotiated ---

    @property
    def ssl_object(self) -> ssl.SSLObject:
        """The :class:`ssl.SSLObject` of the connection."""
        return self._ssl

    def selected_alpn_protocol(self) -> str | None:
        """The protocol ALPN negotiated, or None."""
        return self._ssl.selected_alpn_protocol()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, as :meth:`ssl.SSLSocket.getpeercert` gives it."""
        return self._ssl.getpeercert(binary_form)

    def cipher(self) -> tuple[str, str, int] | None:
        """(name, protocol, secret bits) of the cipher in use."""
        return self._ssl.cipher()

    def version(self) -> str | None:
        """The TLS version negotiated, e.g. ``"TLSv1.3"``."""
        return self._ssl.version()

    @property
    def server_hostname(self) -> str | None:
        """The host name the peer's certificate was checked against (client side)."""
        return self._ssl.server_hostname


async def _close_quietly(stream: ByteStream) -> None:
    try:
        await stream.aclose()
    except Exception:
        pass
