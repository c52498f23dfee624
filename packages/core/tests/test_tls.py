"""TLS: ``manyio.TLSStream`` over manyio sockets, and interop with the stdlib ``ssl`` module.

Certificates come from ``trustme``: a throwaway CA, a server certificate for ``localhost`` and
``127.0.0.1``, and a client certificate for the mutual-TLS tests.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import manyio
import pytest
import trustme

pytestmark = pytest.mark.timeout(60)

THREADS = 2
HOST = "127.0.0.1"


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


# --- certificates and contexts ---


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert("localhost", HOST)


@pytest.fixture
def server_ctx(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(ctx)
    return ctx


@pytest.fixture
def client_ctx(ca: trustme.CA) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


# --- a manyio TLS server on a random port ---

Handler = Callable[[manyio.TLSStream], Awaitable[Any]]


async def serve_tls(
    tg: manyio.TaskGroup,
    ctx: ssl.SSLContext,
    handler: Handler,
    *,
    errors: list[BaseException] | None = None,
    standard_compatible: bool = True,
) -> int:
    """Serves TLS connections with ``handler`` in ``tg``; returns the port. Handshake errors go to
    ``errors`` (when given) instead of failing the group."""
    listener = await manyio.net.create_tcp_listener(HOST, 0)

    async def on_connection(stream: manyio.net.SocketStream) -> None:
        try:
            tls = await manyio.TLSStream.wrap(
                stream, ssl_context=ctx, server_side=True, standard_compatible=standard_compatible
            )
        except manyio.BrokenResourceError as e:
            if errors is None:
                raise
            errors.append(e)
            return
        async with tls:
            await handler(tls)

    async def serve() -> None:
        async with listener:
            await manyio.net.serve(listener, on_connection)

    tg.start_soon(serve)
    return listener.port


async def echo(tls: manyio.TLSStream) -> None:
    async for chunk in tls:
        await tls.send_all(chunk)


async def receive_exactly(stream: Any, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = await stream.receive()
        if not chunk:
            raise AssertionError(f"stream ended after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


class SpyTransport:
    """Forwards to a real stream, and sets ``receiving`` once a receive is waiting on it."""

    def __init__(self, inner: manyio.net.SocketStream) -> None:
        self.inner = inner
        self.receiving = manyio.Event()
        self.sending = manyio.Event()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.sending.set()
        await self.inner.send_all(data)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        self.receiving.set()
        return await self.inner.receive(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- basics ---


def test_echo_between_manyio_client_and_server(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo)
            tls = await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx)
            assert isinstance(tls, manyio.TLSStream)
            async with tls:
                assert tls.server_hostname == HOST
                version = tls.version()
                assert version is not None and version.startswith("TLSv1.")
                cipher = tls.cipher()
                assert cipher is not None and cipher[0]
                peer = tls.getpeercert()
                assert ("DNS", "localhost") in peer["subjectAltName"]
                assert isinstance(tls.getpeercert(binary_form=True), bytes)
                assert isinstance(tls.ssl_object, ssl.SSLObject)
                assert tls.selected_alpn_protocol() is None
                for message in (b"hello", b"x" * 100_000, bytearray(b"from a bytearray")):
                    await tls.send_all(message)
                    assert await receive_exactly(tls, len(message)) == message
                await tls.send(memoryview(b"via send"))
                assert await receive_exactly(tls, 8) == b"via send"
                await tls.send_all(b"")  # a no-op, not an error
            # Closed: further use is an error, closing again is not.
            with pytest.raises(manyio.ClosedResourceError):
                await tls.send_all(b"late")
            with pytest.raises(manyio.ClosedResourceError):
                await tls.receive()
            await tls.aclose()
            tg.cancel_scope.cancel()

    run(main)


def test_server_reads_end_of_stream_after_close_notify(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    # This client never reads, so TLS 1.3 session tickets would sit unread in its socket and its
    # close would be a TCP RST, not a FIN (see trio#819, openssl#7948): no tickets here.
    server_ctx.num_tickets = 0

    async def main() -> None:
        received: list[bytes] = []
        done = manyio.Event()

        async def collect(tls: manyio.TLSStream) -> None:
            async for chunk in tls:
                received.append(chunk)
            # The async iteration ended cleanly: the client's close_notify reads as b"".
            assert await tls.receive() == b""
            done.set()

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, collect)
            tls = await manyio.net.connect_tcp(
                HOST, port, ssl_context=client_ctx, server_hostname="localhost"
            )
            for i in range(50):
                await tls.send_all(b"%d," % i)
            await tls.aclose()
            with manyio.fail_after(5):
                await done.wait()
            tg.cancel_scope.cancel()
        assert b"".join(received) == b"".join(b"%d," % i for i in range(50))

    run(main)


def test_sni_reaches_the_server_and_selects_the_certificate(
    ca: trustme.CA, client_ctx: ssl.SSLContext
) -> None:
    default_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("default.example").configure_cert(default_ctx)
    other_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("other.example").configure_cert(other_ctx)
    seen: list[str | None] = []

    def sni_callback(ssl_obj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.append(server_name)
        if server_name == "other.example":
            ssl_obj.context = other_ctx

    default_ctx.sni_callback = sni_callback

    async def main() -> None:
        names: list[str] = []

        async def report(tls: manyio.TLSStream) -> None:
            await tls.send_all((seen[-1] or "-").encode())  # the name the callback saw

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, default_ctx, report)
            for hostname in ("other.example", "default.example"):
                async with await manyio.net.connect_tcp(
                    HOST, port, ssl_context=client_ctx, server_hostname=hostname
                ) as tls:
                    assert tls.server_hostname == hostname
                    sans = [v for k, v in tls.getpeercert()["subjectAltName"] if k == "DNS"]
                    assert sans == [hostname]  # the certificate the callback picked
                    names.append((await receive_exactly(tls, len(hostname))).decode())
            tg.cancel_scope.cancel()
        assert names == ["other.example", "default.example"]

    run(main)
    assert seen == ["other.example", "default.example"]


@pytest.mark.parametrize(
    ("client_protocols", "expected"),
    [
        (["h2", "http/1.1"], "h2"),
        (["http/1.1"], "http/1.1"),
        (["http/1.1", "h2"], "h2"),  # the server's preference wins
        (None, None),
    ],
)
def test_alpn_negotiation(
    server_ctx: ssl.SSLContext,
    client_ctx: ssl.SSLContext,
    client_protocols: list[str] | None,
    expected: str | None,
) -> None:
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    if client_protocols is not None:
        client_ctx.set_alpn_protocols(client_protocols)

    async def main() -> None:
        server_side: list[str | None] = []

        async def record(tls: manyio.TLSStream) -> None:
            server_side.append(tls.selected_alpn_protocol())
            await tls.send_all(b"ok")

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, record)
            async with await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx) as tls:
                assert tls.selected_alpn_protocol() == expected
                assert await receive_exactly(tls, 2) == b"ok"
            tg.cancel_scope.cancel()
        assert server_side == [expected]

    run(main)


# --- verification ---


def test_untrusted_certificate_is_rejected_by_default(server_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        server_errors: list[BaseException] = []
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo, errors=server_errors)
            # TLSStream.wrap with no context verifies against the system store: trustme's CA is
            # not in it.
            stream = await manyio.net.connect_tcp(HOST, port)
            with pytest.raises(manyio.BrokenResourceError, match="CERTIFICATE_VERIFY_FAILED") as info:
                await manyio.TLSStream.wrap(stream, server_hostname="localhost")
            assert isinstance(info.value.__cause__, ssl.SSLCertVerificationError)
            assert stream.socket.fileno() == -1  # the failed wrap closed the transport
            # connect_tcp(tls=True) does the same.
            with pytest.raises(manyio.BrokenResourceError, match="CERTIFICATE_VERIFY_FAILED"):
                await manyio.net.connect_tcp(HOST, port, tls=True, server_hostname="localhost")
            await _wait_for(lambda: len(server_errors) == 2)
            tg.cancel_scope.cancel()
        assert all(isinstance(e, manyio.BrokenResourceError) for e in server_errors)

    run(main)


def test_hostname_mismatch_is_rejected(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        server_errors: list[BaseException] = []
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo, errors=server_errors)
            with pytest.raises(manyio.BrokenResourceError, match="CERTIFICATE_VERIFY_FAILED") as info:
                await manyio.net.connect_tcp(
                    HOST, port, ssl_context=client_ctx, server_hostname="evil.example"
                )
            assert "mismatch" in str(info.value).lower()
            # The same CA and certificate with the right name work.
            async with await manyio.net.connect_tcp(
                HOST, port, ssl_context=client_ctx, server_hostname="localhost"
            ) as tls:
                await tls.send_all(b"fine")
                assert await receive_exactly(tls, 4) == b"fine"
            await _wait_for(lambda: len(server_errors) == 1)
            tg.cancel_scope.cancel()

    run(main)


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    with manyio.fail_after(timeout):
        while not predicate():
            await manyio.sleep(0.005)


def test_client_certificates(
    ca: trustme.CA, server_cert: trustme.LeafCert, client_ctx: ssl.SSLContext
) -> None:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_ctx)
    with_cert = ssl.create_default_context()
    ca.configure_trust(with_cert)
    ca.issue_cert("client.example").configure_cert(with_cert)

    async def main() -> None:
        server_errors: list[BaseException] = []
        peers: list[Any] = []

        async def whoami(tls: manyio.TLSStream) -> None:
            peers.append(tls.getpeercert())
            await tls.send_all(b"welcome")

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, whoami, errors=server_errors)
            async with await manyio.net.connect_tcp(
                HOST, port, ssl_context=with_cert, server_hostname="localhost"
            ) as tls:
                assert await receive_exactly(tls, 7) == b"welcome"
            assert ("DNS", "client.example") in peers[0]["subjectAltName"]

            # Without a certificate the server refuses the handshake. With TLS 1.3 the client may
            # finish its side first; it then learns of the refusal on its first read.
            with pytest.raises(manyio.BrokenResourceError):
                tls = await manyio.net.connect_tcp(
                    HOST, port, ssl_context=client_ctx, server_hostname="localhost"
                )
                with manyio.fail_after(5):
                    await tls.receive()
            await _wait_for(lambda: len(server_errors) == 1)
            tg.cancel_scope.cancel()
        assert len(peers) == 1
        assert "certificate" in str(server_errors[0]).lower()

    run(main)


def test_rejected_client_learns_why_from_the_alert(
    ca: trustme.CA, server_cert: trustme.LeafCert, client_ctx: ssl.SSLContext
) -> None:
    # RFC 8446 section 6.2: a party that hits a fatal error should send the alert before closing.
    # Without it the client only sees a TCP EOF, and with standard_compatible=False (what HTTPS
    # clients use) that EOF would even read as a clean end of stream.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_ctx)

    async def main() -> None:
        server_errors: list[BaseException] = []
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo, errors=server_errors)
            raw = await manyio.net.connect_tcp(HOST, port)
            tls = await manyio.TLSStream.wrap(
                raw, ssl_context=client_ctx, server_hostname="localhost", standard_compatible=False
            )
            with manyio.fail_after(5):
                with pytest.raises(manyio.BrokenResourceError, match="CERTIFICATE_REQUIRED"):
                    await tls.receive()
            await tls.aclose()
            await _wait_for(lambda: len(server_errors) == 1)
            tg.cancel_scope.cancel()
        assert "PEER_DID_NOT_RETURN_A_CERTIFICATE" in str(server_errors[0])

    run(main)


def test_server_learns_why_the_client_rejected_it(server_ctx: ssl.SSLContext) -> None:
    # The client does not trust the server's CA: the server should get the client's alert.
    async def main() -> None:
        server_errors: list[BaseException] = []
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo, errors=server_errors)
            with pytest.raises(manyio.BrokenResourceError, match="CERTIFICATE_VERIFY_FAILED"):
                await manyio.net.connect_tcp(HOST, port, tls=True, server_hostname="localhost")
            await _wait_for(lambda: len(server_errors) == 1)
            tg.cancel_scope.cancel()
        assert "UNKNOWN_CA" in str(server_errors[0])

    run(main)


# --- concurrency ---


def test_full_duplex_large_payloads_across_threads(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    # Each side sends 32 MiB while receiving 32 MiB from the other on the same TLSStream, from
    # two tasks that the runtime may place on either worker: far more than the loopback socket
    # buffers hold, so each side's sender is blocked on a full transport while its receiver must
    # keep reading. (A single-task-per-side version of this would deadlock.)
    size = 16 * 1024 * 1024
    to_server = os.urandom(size)
    to_client = os.urandom(size)

    async def duplex(tls: manyio.TLSStream, payload: bytes) -> bytes:
        got: list[bytes] = []

        async def sender() -> None:
            for offset in range(0, len(payload), 100_000):
                await tls.send_all(payload[offset : offset + 100_000])

        async def receiver() -> None:
            total = 0
            while total < size:
                chunk = await tls.receive()
                assert chunk, "stream ended early"
                got.append(chunk)
                total += len(chunk)

        async with manyio.TaskGroup() as tg:
            tg.start_soon(sender)
            tg.start_soon(receiver)
        return b"".join(got)

    async def main() -> None:
        server_got: list[bytes] = []

        async def server(tls: manyio.TLSStream) -> None:
            server_got.append(await duplex(tls, to_client))

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, server)
            with manyio.fail_after(30):
                async with await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx) as tls:
                    client_got = await duplex(tls, to_server)
                await _wait_for(lambda: bool(server_got))
            tg.cancel_scope.cancel()
        assert hashlib.sha256(client_got).digest() == hashlib.sha256(to_client).digest()
        assert hashlib.sha256(server_got[0]).digest() == hashlib.sha256(to_server).digest()

    run(main)


def test_echo_large_payload_with_separate_sender_and_receiver(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    # The echo server only reads while it can write back, so once the buffers fill the client's
    # sender is blocked on the transport while its receiver must keep draining.
    payload = os.urandom(16 * 1024 * 1024 + 17)

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo)
            with manyio.fail_after(30):
                async with await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx) as tls:
                    async with manyio.TaskGroup() as inner:
                        inner.start_soon(tls.send_all, payload)
                        echoed = await receive_exactly(tls, len(payload))
            tg.cancel_scope.cancel()
        assert echoed == payload

    run(main)


def test_many_concurrent_connections(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    clients = 100

    async def main() -> None:
        results: dict[int, bool] = {}

        async def client(port: int, n: int) -> None:
            payload = hashlib.sha256(b"%d" % n).digest() * (200 + n)
            async with await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx) as tls:
                await tls.send_all(payload)
                results[n] = await receive_exactly(tls, len(payload)) == payload

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo)
            with manyio.fail_after(30):
                async with manyio.TaskGroup() as group:
                    for n in range(clients):
                        group.start_soon(client, port, n)
            tg.cancel_scope.cancel()
        assert results == dict.fromkeys(range(clients), True)

    run(main)


def test_concurrent_receive_is_busy(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        release = manyio.Event()

        async def quiet(tls: manyio.TLSStream) -> None:
            await release.wait()
            await tls.send_all(b"late")

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, quiet)
            spy = SpyTransport(await manyio.net.connect_tcp(HOST, port))
            tls = await manyio.TLSStream.wrap(spy, ssl_context=client_ctx, server_hostname="localhost")
            spy.receiving = manyio.Event()  # only watch reads from now on: the handshake read too
            first = manyio.spawn(tls.receive())
            with manyio.fail_after(5):
                await spy.receiving.wait()
            with pytest.raises(manyio.BusyResourceError):
                await tls.receive()
            # The first receive is unaffected and still gets the data.
            release.set()
            assert await receive_exactly(_Prefixed(await first, tls), 4) == b"late"
            await tls.aclose()
            tg.cancel_scope.cancel()

    run(main)


class _Prefixed:
    """A receive source that returns ``prefix`` first, then reads from ``stream``."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self.prefix = prefix
        self.stream = stream

    async def receive(self) -> bytes:
        if self.prefix:
            data, self.prefix = self.prefix, b""
            return data
        return await self.stream.receive()


def test_concurrent_send_is_busy(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    server_ctx.num_tickets = 0  # the client never reads: see test_server_reads_end_of_stream...

    async def main() -> None:
        release = manyio.Event()

        async def slow_reader(tls: manyio.TLSStream) -> None:
            await release.wait()
            async for _ in tls:
                pass

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, slow_reader)
            tls = await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx)
            # Far more than the socket buffers hold while the server is not reading.
            sender = manyio.spawn(tls.send_all(b"z" * (64 * 1024 * 1024)))
            await manyio.sleep(0.2)
            assert not sender.done()
            with pytest.raises(manyio.BusyResourceError):
                await tls.send_all(b"second")
            release.set()
            with manyio.fail_after(30):
                await sender
            await tls.aclose()
            tg.cancel_scope.cancel()

    run(main)


# --- closing, unwrapping, EOF ---


def test_unwrap_then_plaintext(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        server_plain: list[bytes] = []

        async def server(tls: manyio.TLSStream) -> None:
            assert await receive_exactly(tls, 9) == b"hello tls"
            await tls.send_all(b"ack")
            assert await tls.receive() == b""  # the client's close_notify
            transport, leftover = await tls.unwrap()
            with pytest.raises(manyio.ClosedResourceError):
                await tls.send_all(b"after unwrap")
            data = leftover + await receive_exactly(transport, 10 - len(leftover))
            server_plain.append(data)
            await transport.send_all(b"plain pong")

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, server)
            raw = await manyio.net.connect_tcp(HOST, port)
            tls = await manyio.TLSStream.wrap(raw, ssl_context=client_ctx, server_hostname="localhost")
            await tls.send_all(b"hello tls")
            assert await receive_exactly(tls, 3) == b"ack"
            with manyio.fail_after(5):
                transport, leftover = await tls.unwrap()
            assert transport is raw
            assert leftover == b""
            with pytest.raises(manyio.ClosedResourceError):
                await tls.receive()
            await transport.send_all(b"plain ping")
            with manyio.fail_after(5):
                assert await receive_exactly(transport, 10) == b"plain pong"
            await transport.aclose()
            tg.cancel_scope.cancel()
        assert server_plain == [b"plain ping"]

    run(main)


class HoldingTransport:
    """Forwards to a real stream, except that while ``hold`` is true writes are kept back, to
    be sent later in one piece with :meth:`release`."""

    def __init__(self, inner: manyio.net.SocketStream) -> None:
        self.inner = inner
        self.hold = False
        self.held = bytearray()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.hold:
            self.held += data
        else:
            await self.inner.send_all(data)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        return await self.inner.receive(max_bytes)

    async def release(self, extra: bytes) -> None:
        await self.inner.send_all(bytes(self.held) + extra)

    async def aclose(self) -> None:
        await self.inner.aclose()


def test_unwrap_keeps_plaintext_read_past_close_notify(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    # The server's close_notify and the first plaintext bytes leave in a single write, so the
    # client's unwrap() reads past the end of TLS: those bytes come back as ``leftover``.
    plaintext = b"PLAINTEXT-AFTER-TLS"

    async def main() -> None:
        listener = await manyio.net.create_tcp_listener(HOST, 0)

        async def server(stream: manyio.net.SocketStream) -> None:
            holding = HoldingTransport(stream)
            tls = await manyio.TLSStream.wrap(holding, ssl_context=server_ctx, server_side=True)
            assert await tls.receive() == b""  # the client's close_notify
            holding.hold = True
            transport, leftover = await tls.unwrap()
            assert transport is holding and leftover == b""
            assert holding.held  # our close_notify, kept back
            await holding.release(plaintext)

        async with manyio.TaskGroup() as tg:
            tg.start_soon(manyio.net.serve, listener, server)
            tls = await manyio.net.connect_tcp(HOST, listener.port, ssl_context=client_ctx)
            with manyio.fail_after(5):
                transport, leftover = await tls.unwrap()
                assert plaintext.startswith(leftover)
                rest = (
                    await receive_exactly(transport, len(plaintext) - len(leftover))
                    if leftover != plaintext
                    else b""
                )
            assert leftover + rest == plaintext
            await transport.aclose()
            tg.cancel_scope.cancel()
        await listener.aclose()

    run(main)


@pytest.mark.parametrize("standard_compatible", [True, False])
def test_ragged_eof(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, standard_compatible: bool
) -> None:
    async def main() -> None:
        async def rude(tls: manyio.TLSStream) -> None:
            await tls.send_all(b"partial")
            await tls.transport.aclose()  # TCP close, no close_notify

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, rude)
            raw = await manyio.net.connect_tcp(HOST, port)
            tls = await manyio.TLSStream.wrap(
                raw,
                ssl_context=client_ctx,
                server_hostname="localhost",
                standard_compatible=standard_compatible,
            )
            with manyio.fail_after(5):
                assert await receive_exactly(tls, 7) == b"partial"
                if standard_compatible:
                    with pytest.raises(manyio.BrokenResourceError) as info:
                        await tls.receive()
                    assert isinstance(info.value.__cause__, ssl.SSLEOFError)
                else:
                    assert await tls.receive() == b""
            await tls.aclose()
            tg.cancel_scope.cancel()

    run(main)


def test_server_ragged_eof_with_standard_compatible_false(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    server_ctx.num_tickets = 0  # unread tickets would turn the client's close into an RST

    async def main() -> None:
        outcome: list[object] = []

        async def server(tls: manyio.TLSStream) -> None:
            assert await receive_exactly(tls, 3) == b"bye"
            outcome.append(await tls.receive())

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, server, standard_compatible=False)
            tls = await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx)
            await tls.send_all(b"bye")
            await tls.transport.aclose()
            await _wait_for(lambda: bool(outcome))
            tg.cancel_scope.cancel()
        assert outcome == [b""]

    run(main)


# --- cancellation ---


def test_handshake_cancelled_by_deadline(client_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener(HOST, 0)
        seen_by_server: list[bytes] = []
        server_saw_eof = manyio.Event()

        async def mute(stream: manyio.net.SocketStream) -> None:
            # Accepts, never answers; reads until the client goes away.
            async for chunk in stream:
                seen_by_server.append(chunk)
            server_saw_eof.set()

        async with manyio.TaskGroup() as tg:
            tg.start_soon(manyio.net.serve, listener, mute)
            stream = await manyio.net.connect_tcp(HOST, listener.port)
            start = time.monotonic()
            with manyio.move_on_after(0.2) as scope:
                await manyio.TLSStream.wrap(stream, ssl_context=client_ctx, server_hostname="localhost")
            assert scope.cancelled_caught
            assert time.monotonic() - start < 3
            assert stream.socket.fileno() == -1  # the cancelled wrap closed its transport

            # The same through connect_tcp, whose socket we never see: the server sees EOF.
            server_saw_eof.clear()
            with manyio.move_on_after(0.2) as scope2:
                await manyio.net.connect_tcp(HOST, listener.port, ssl_context=client_ctx)
            assert scope2.cancelled_caught
            with manyio.fail_after(5):
                await server_saw_eof.wait()
            tg.cancel_scope.cancel()
        await listener.aclose()
        # The server did get ClientHellos (TLS handshake records start with 0x16).
        assert seen_by_server and seen_by_server[0][:1] == b"\x16"

    run(main)


def test_receive_cancelled_then_stream_still_usable(
    server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext
) -> None:
    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo)
            async with await manyio.net.connect_tcp(HOST, port, ssl_context=client_ctx) as tls:
                with manyio.move_on_after(0.1) as scope:
                    await tls.receive()
                assert scope.cancelled_caught
                await tls.send_all(b"still here")
                with manyio.fail_after(5):
                    assert await receive_exactly(tls, 10) == b"still here"
            tg.cancel_scope.cancel()

    run(main)


def test_aclose_wakes_a_blocked_receiver(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        async def silent(tls: manyio.TLSStream) -> None:
            await manyio.sleep(30)

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, silent)
            spy = SpyTransport(await manyio.net.connect_tcp(HOST, port))
            tls = await manyio.TLSStream.wrap(spy, ssl_context=client_ctx, server_hostname="localhost")
            spy.receiving = manyio.Event()
            blocked = manyio.spawn(tls.receive())
            with manyio.fail_after(5):
                await spy.receiving.wait()
                await tls.aclose()
                with pytest.raises(manyio.ClosedResourceError):
                    await blocked
            tg.cancel_scope.cancel()

    run(main)


# --- interop with the stdlib ssl module (blocking, in plain threads) ---


def test_manyio_client_against_stdlib_server(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    server_ctx.set_alpn_protocols(["http/1.1"])
    client_ctx.set_alpn_protocols(["http/1.1"])
    listener = socket.create_server((HOST, 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    server_result: dict[str, Any] = {}

    def stdlib_server() -> None:
        try:
            conn, _ = listener.accept()
            conn.settimeout(10)
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                server_result["alpn"] = tls.selected_alpn_protocol()
                data = b""
                while not data.endswith(b"\n"):
                    data += tls.recv(65536)
                tls.sendall(data.upper() * 1000)
                plain = tls.unwrap()  # close_notify both ways
                server_result["request"] = data
                plain.close()
        except BaseException as e:  # pragma: no cover - reported below
            server_result["error"] = e
        finally:
            listener.close()

    thread = threading.Thread(target=stdlib_server)
    thread.start()

    async def main() -> bytes:
        with manyio.fail_after(10):
            async with await manyio.net.connect_tcp(
                HOST, port, ssl_context=client_ctx, server_hostname="localhost"
            ) as tls:
                assert tls.selected_alpn_protocol() == "http/1.1"
                await tls.send_all(b"hello stdlib\n")
                chunks = [chunk async for chunk in tls]  # ends at the server's close_notify
        return b"".join(chunks)

    try:
        assert run(main) == b"HELLO STDLIB\n" * 1000
    finally:
        thread.join(10)
    assert "error" not in server_result, server_result.get("error")
    assert server_result == {"alpn": "http/1.1", "request": b"hello stdlib\n"}


def test_stdlib_client_against_manyio_server(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    payload = os.urandom(1024 * 1024)

    def stdlib_client(port: int) -> bytes:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            with client_ctx.wrap_socket(sock, server_hostname="localhost") as tls:
                assert tls.version() is not None
                tls.sendall(payload)
                got = bytearray()
                while len(got) < len(payload):
                    chunk = tls.recv(65536)
                    assert chunk
                    got += chunk
                tls.unwrap()  # close_notify both ways
        return bytes(got)

    async def main() -> None:
        clean_close: list[bool] = []

        async def echo_then_note(tls: manyio.TLSStream) -> None:
            await echo(tls)
            clean_close.append(True)

        async with manyio.TaskGroup() as tg:
            port = await serve_tls(tg, server_ctx, echo_then_note)
            with manyio.fail_after(20):
                results = []
                async with manyio.TaskGroup() as clients:
                    for _ in range(3):
                        clients.start_soon(_append_result, results, stdlib_client, port)
                await _wait_for(lambda: len(clean_close) == 3)
            tg.cancel_scope.cancel()
        assert results == [payload] * 3

    run(main)


async def _append_result(results: list[Any], fn: Callable[..., Any], *args: Any) -> None:
    results.append(await manyio.to_thread(fn, *args))
