"""httpx.AsyncClient, unmodified, on manyio: against Hypercorn (HTTP/1.1, HTTP/2 over TLS, a
Unix socket), an HTTP CONNECT proxy and misbehaving servers. Async tests run on a 2-thread
manyio runtime."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import httpcore
import httpx
import manyio
import manyio_httpx
import pytest
from manyio_httpx_test_server import body_for

if TYPE_CHECKING:
    from conftest import Proxy, Servers


def _pool(client: httpx.AsyncClient) -> httpcore.AsyncConnectionPool:
    return client._transport._pool  # type: ignore[attr-defined]


def _assert_pool_settled(client: httpx.AsyncClient) -> None:
    """No request waiting, no connection checked out."""
    pool = _pool(client)
    assert pool._requests == []
    for connection in pool.connections:
        assert connection.is_idle() or connection.is_closed(), connection


async def test_patch_is_registered_and_keeps_the_gil_off() -> None:
    assert "httpx" in manyio.compat.patch_all()
    assert manyio.compat.patch("httpx") == ["httpcore"]
    assert not sys._is_gil_enabled()


async def test_get_and_post(servers: Servers) -> None:
    async with httpx.AsyncClient(base_url=servers.http) as client:
        r = await client.get("/bytes/1000", params={"seed": 7})
        assert r.status_code == 200
        assert r.content == body_for(1000, 7)
        assert r.http_version == "HTTP/1.1"
        payload = random.randbytes(300_000)  # larger than a socket buffer: several writes
        r = await client.post("/echo", content=payload)
        assert r.content == payload
        assert r.headers["x-sha256"] == hashlib.sha256(payload).hexdigest()
        r = await client.post("/info", json={"a": 1}, headers={"x-test": "yes"})
        info = r.json()
        assert (info["method"], info["headers"]["x-test"]) == ("POST", "yes")
        assert (await client.get("/missing")).status_code == 404


async def test_streaming_request_and_response(servers: Servers) -> None:
    async def produce():
        for i in range(50):
            yield b"%05d" % i
            await manyio.sleep(0)

    async with httpx.AsyncClient(base_url=servers.http) as client:
        r = await client.post("/echo", content=produce())
        assert r.content == b"".join(b"%05d" % i for i in range(50))
        lines = []
        async with client.stream("GET", "/stream/40") as response:
            async for line in response.aiter_lines():
                lines.append(line)
        assert lines == [f"chunk {i}" for i in range(40)]
        async with client.stream("GET", "/bytes/1000000") as response:
            total = b"".join([chunk async for chunk in response.aiter_bytes(65536)])
        assert total == body_for(1_000_000, 0)
        # Leaving a streamed response early closes it; the pool stays usable.
        async with client.stream("GET", "/bytes/1000000") as response:
            async for _ in response.aiter_raw(1024):
                break
        assert (await client.get("/bytes/10")).content == body_for(10, 0)
        _assert_pool_settled(client)


async def test_five_hundred_requests_over_one_client_on_both_workers(servers: Servers) -> None:
    threads: set[int] = set()
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with httpx.AsyncClient(base_url=servers.http, limits=limits, timeout=30) as client:

        async def fetch(i: int) -> None:
            r = await client.get(f"/bytes/{1000 + i}", params={"seed": i})
            threads.add(threading.get_ident())
            assert r.content == body_for(1000 + i, i)

        async with manyio.TaskGroup() as tg:
            for i in range(500):
                tg.start_soon(fetch, i)
        assert len(threads) == 2
        assert 0 < len(_pool(client).connections) <= 20
        _assert_pool_settled(client)


async def test_http2_over_tls_many_streams_on_one_connection(servers: Servers) -> None:
    ctx = servers.ssl_context()
    async with httpx.AsyncClient(base_url=servers.https, http2=True, verify=ctx, timeout=30) as client:
        r = await client.get("/info")
        assert r.http_version == "HTTP/2"
        assert r.json()["http_version"] == "2"

        async def fetch(i: int) -> None:
            r = await client.get(f"/bytes/{500 + i}", params={"seed": i})
            assert r.http_version == "HTTP/2"
            assert r.content == body_for(500 + i, i)
            r = await client.post("/echo", content=b"x" * i)
            assert r.content == b"x" * i

        async with manyio.TaskGroup() as tg:
            for i in range(300):
                tg.start_soon(fetch, i)
        # Multiplexed: one TLS connection carried all 600 requests.
        assert len(_pool(client).connections) == 1
        async with client.stream("GET", "/stream/30") as response:
            assert [line async for line in response.aiter_lines()] == [f"chunk {i}" for i in range(30)]
        _assert_pool_settled(client)


async def test_http2_cancelled_streams_leave_the_connection_usable(servers: Servers) -> None:
    ctx = servers.ssl_context()
    async with httpx.AsyncClient(base_url=servers.https, http2=True, verify=ctx) as client:
        assert (await client.get("/info")).http_version == "HTTP/2"

        async def slow() -> None:
            await client.get("/slow/5")

        with manyio.move_on_after(0.3):
            async with manyio.TaskGroup() as tg:
                for _ in range(50):
                    tg.start_soon(slow)
        results = []
        async with manyio.TaskGroup() as tg:
            for i in range(20):
                tg.start_soon(lambda i=i: _append(results, client, f"/bytes/{i + 1}"))
        assert sorted(len(body) for body in results) == list(range(1, 21))
        _assert_pool_settled(client)


async def _append(results: list[bytes], client: httpx.AsyncClient, url: str) -> None:
    results.append((await client.get(url)).content)


async def test_http1_over_tls_and_alpn_choice(servers: Servers) -> None:
    async with httpx.AsyncClient(verify=servers.ssl_context()) as client:
        r = await client.get(f"{servers.https}/info")
        assert r.http_version == "HTTP/1.1"
        assert r.json()["scheme"] == "https"
        stream = r.extensions["network_stream"]
        assert stream.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
        assert stream.get_extra_info("server_addr")[0] == "127.0.0.1"


async def test_tls_verification_fails_for_an_unknown_ca(servers: Servers) -> None:
    async with httpx.AsyncClient() as client:  # httpx's default: certifi's CA bundle
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(f"{servers.https}/info")


async def test_client_certificates(servers: Servers) -> None:
    async with httpx.AsyncClient(verify=servers.ssl_context(client_cert=True)) as client:
        assert (await client.get(f"{servers.mtls}/bytes/5")).content == body_for(5, 0)
    async with httpx.AsyncClient(verify=servers.ssl_context()) as client:
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            await client.get(f"{servers.mtls}/bytes/5")


async def test_unix_socket(servers: Servers) -> None:
    transport = httpx.AsyncHTTPTransport(uds=servers.unix_path)
    async with httpx.AsyncClient(transport=transport) as client:
        r = await client.get("http://server/bytes/64", params={"seed": 3})
        assert r.content == body_for(64, 3)


async def test_public_transport_with_http2(servers: Servers) -> None:
    transport = manyio_httpx.AsyncTransport(http2=True, verify=servers.ssl_context())
    assert isinstance(_pool_of(transport)._network_backend, manyio_httpx.ManyioBackend)
    async with httpx.AsyncClient(transport=transport, base_url=servers.https) as client:
        r = await client.get("/info")
        assert r.http_version == "HTTP/2"
        assert isinstance(r.extensions["network_stream"], manyio_httpx.ManyioTLSStream)


def _pool_of(transport: httpx.AsyncHTTPTransport) -> httpcore.AsyncConnectionPool:
    return transport._pool  # type: ignore[attr-defined]


async def test_https_through_a_connect_proxy(servers: Servers, connect_proxy: Proxy) -> None:
    async with httpx.AsyncClient(proxy=connect_proxy.url, verify=servers.ssl_context()) as client:
        r = await client.get(f"{servers.https}/bytes/100", params={"seed": 9})
        assert r.content == body_for(100, 9)
    port = servers.https.rsplit(":", 1)[1]
    assert f"localhost:{port}" in connect_proxy.tunnels


async def test_unreachable_server_is_a_connect_error_naming_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.ConnectError, match=f"127.0.0.1.*{port}"):
                await client.get(f"http://127.0.0.1:{port}/")


async def test_server_closing_mid_response_is_a_remote_protocol_error(raw_server: Callable) -> None:
    def truncated(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    url = raw_server(truncated)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)


async def test_slow_endpoint_read_timeout_on_time(servers: Servers) -> None:
    async with httpx.AsyncClient(base_url=servers.http) as client:
        start = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get("/slow/3", timeout=httpx.Timeout(5, read=0.4))
        elapsed = time.monotonic() - start
        assert 0.4 <= elapsed < 1.0, elapsed  # the read timeout, well before the 5 s total
        assert (await client.get("/bytes/3")).content == body_for(3, 0)


async def test_connect_timeout_and_write_timeout(raw_server: Callable) -> None:
    # On loopback the kernel completes TCP handshakes itself, so the connect timeout is tested
    # on a TLS handshake that never gets an answer (httpx counts it as part of connecting).
    def silent(conn: socket.socket) -> None:
        time.sleep(2)

    listener = socket.create_server(("127.0.0.1", 0))
    try:
        port = listener.getsockname()[1]
        async with httpx.AsyncClient(verify=ssl.create_default_context()) as client:
            start = time.monotonic()
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(f"https://127.0.0.1:{port}/", timeout=httpx.Timeout(5, connect=0.3))
            assert 0.3 <= time.monotonic() - start < 1.0  # well before the silent server gives up
    finally:
        listener.close()
    # A server that reads nothing: the request body fills both socket buffers.
    url = raw_server(silent)
    async with httpx.AsyncClient() as client:
        with pytest.raises(httpx.WriteTimeout):
            await client.post(url, content=b"x" * 50_000_000, timeout=httpx.Timeout(5, write=0.3))


async def test_pool_exhaustion_is_a_pool_timeout(servers: Servers) -> None:
    limits = httpx.Limits(max_connections=1)
    async with httpx.AsyncClient(base_url=servers.http, limits=limits) as client:
        async with client.stream("GET", "/slow/1"):
            start = time.monotonic()
            with pytest.raises(httpx.PoolTimeout):
                await client.get("/bytes/1", timeout=httpx.Timeout(5, pool=0.3))
            assert 0.3 <= time.monotonic() - start < 1.0  # well before the held connection frees
        assert (await client.get("/bytes/2")).content == body_for(2, 0)
        _assert_pool_settled(client)


async def test_cancelling_a_hundred_in_flight_requests_leaves_the_pool_usable(servers: Servers) -> None:
    limits = httpx.Limits(max_connections=30)
    async with httpx.AsyncClient(base_url=servers.http, limits=limits, timeout=30) as client:
        started: list[int] = []  # list.append is atomic; += on a shared int is not

        async def request() -> None:
            started.append(1)
            await client.get("/slow/5")

        with manyio.move_on_after(0.5) as scope:
            async with manyio.TaskGroup() as tg:
                for _ in range(100):
                    tg.start_soon(request)
        assert scope.cancelled_caught and len(started) == 100
        _assert_pool_settled(client)
        # Random cancellations while requests run, then every result checked.
        done: list[int] = []

        async def fetch(i: int) -> None:
            with manyio.move_on_after(random.choice([0.001, 0.01, 0.05, 10])):
                r = await client.get(f"/bytes/{i + 1}", params={"seed": i})
                assert r.content == body_for(i + 1, i)
                done.append(i)

        async with manyio.TaskGroup() as tg:
            for i in range(300):
                tg.start_soon(fetch, i)
        assert done
        _assert_pool_settled(client)
        async with manyio.TaskGroup() as tg:
            for i in range(50):
                tg.start_soon(fetch, i)
        assert len(_pool(client).connections) <= 30
        _assert_pool_settled(client)


async def test_asyncio_programs_keep_httpcores_own_behaviour(servers: Servers) -> None:
    def in_asyncio() -> bytes:
        async def main() -> bytes:
            async with httpx.AsyncClient() as client:
                r = await client.get(f"{servers.http}/bytes/77")
                assert type(r.extensions["network_stream"]).__module__.startswith("httpcore")
                return r.content

        return asyncio.run(main())

    assert await manyio.to_thread(in_asyncio) == body_for(77, 0)


def test_the_sync_client_is_untouched(servers: Servers) -> None:
    with httpx.Client(base_url=servers.http) as client:
        assert json.loads(client.get("/info").content)["http_version"] == "1.1"


async def test_the_pool_hands_an_idle_connection_to_one_request_at_a_time(servers: Servers) -> None:
    # httpcore 1.0.9 handed one idle HTTP/1.1 connection to every queued request in a pass;
    # all but one then failed with ConnectionNotAvailable and queued again.
    from httpcore._async.http11 import AsyncHTTP11Connection

    refused: list[int] = []
    original = AsyncHTTP11Connection.handle_async_request

    async def counting(self: AsyncHTTP11Connection, request: httpcore.Request) -> httpcore.Response:
        try:
            return await original(self, request)
        except httpcore.ConnectionNotAvailable:
            refused.append(1)
            raise

    AsyncHTTP11Connection.handle_async_request = counting  # type: ignore[method-assign]
    try:
        limits = httpx.Limits(max_connections=4)
        async with httpx.AsyncClient(base_url=servers.http, limits=limits, timeout=30) as client:
            async with manyio.TaskGroup() as tg:
                for i in range(200):
                    tg.start_soon(_append, [], client, f"/bytes/{i + 1}")
            assert len(_pool(client).connections) == 4
            _assert_pool_settled(client)
    finally:
        AsyncHTTP11Connection.handle_async_request = original  # type: ignore[method-assign]
    assert refused == []
