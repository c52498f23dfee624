"""``manyio.net`` over TCP: listeners, ``connect_tcp``, ``serve`` and ``SocketStream``.

Loopback only (127.0.0.1 and, when the machine has it, ::1).
"""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import time
from typing import Any

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_loopback()
LOOPBACK = {socket.AF_INET: "127.0.0.1", socket.AF_INET6: "::1"}


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def saturated_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A 127.0.0.1 listener whose backlog is full: a new connect() stays in progress."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(64):
        c = socket.socket()
        c.setblocking(False)
        fillers.append(c)
        try:
            c.connect(listener.getsockname())
        except BlockingIOError:
            pass
        poller = select.poll()
        poller.register(c, select.POLLOUT)
        if not poller.poll(100):  # still connecting: the kernel dropped the SYN
            return listener, fillers
    for c in fillers:
        c.close()
    listener.close()
    raise AssertionError("could not fill the listen backlog")


def fake_resolver(addresses: list[tuple[Any, ...]]):  # type: ignore[no-untyped-def]
    """A stand-in for ``manyio.net.getaddrinfo`` returning ``addresses`` in that order."""

    async def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # type: ignore[no-untyped-def]
        return [
            (
                socket.AF_INET6 if ":" in addr[0] else socket.AF_INET,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                addr,
            )
            for addr in addresses
        ]

    return getaddrinfo


async def echo(stream: manyio.net.SocketStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def stream_pair(
    listener: manyio.net.SocketListener, host: str = "127.0.0.1"
) -> tuple[manyio.net.SocketStream, manyio.net.SocketStream]:
    """(client, server) streams connected through ``listener``."""
    async with manyio.TaskGroup() as tg:
        accepted = tg.spawn(listener.accept())
        client = await manyio.net.connect_tcp(host, listener.port)
    return client, accepted.result()


async def receive_exactly(stream: manyio.net.SocketStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


async def watched(sock: socket.socket) -> None:
    """Has the reactor watch ``sock`` already, as it does after any earlier wait. (A first wait
    that races notify_closing is covered separately in test_reactor.py.)"""
    with manyio.move_on_after(0):
        await manyio.wait_readable(sock)


def reset_on_close(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# --- listeners and connecting ------------------------------------------------------------------


def test_echo_through_serve_and_connect_tcp() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        assert listener.port != 0
        assert listener.port == listener.socket.getsockname()[1]
        assert listener.local_address == ("127.0.0.1", listener.port)
        with manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                tg.start_soon(manyio.net.serve, listener, echo)
                async with await manyio.net.connect_tcp("127.0.0.1", listener.port) as stream:
                    for size in (1, 100, 1_000_000):
                        payload = os.urandom(size)
                        # Send while receiving: the echo would otherwise fill both buffers.
                        async with manyio.TaskGroup() as io:
                            io.start_soon(stream.send_all, payload)
                            assert await receive_exactly(stream, size) == payload
                tg.cancel_scope.cancel()
        await listener.aclose()

    run(main)


def test_listener_without_a_host_accepts_ipv4_and_ipv6_when_available() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener(None, 0)
        sock = listener.socket
        if HAS_IPV6:
            assert sock.family == socket.AF_INET6
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 0
            hosts = ["127.0.0.1", "::1"]
        else:
            assert sock.family == socket.AF_INET
            assert sock.getsockname()[0] == "0.0.0.0"
            hosts = ["127.0.0.1"]
        with manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                tg.start_soon(manyio.net.serve, listener, echo)
                for host in hosts:
                    async with await manyio.net.connect_tcp(host, listener.port) as stream:
                        assert stream.remote_address[:2] == (host, listener.port)
                        await stream.send_all(host.encode())
                        assert await receive_exactly(stream, len(host)) == host.encode()
                tg.cancel_scope.cancel()
        await listener.aclose()

    run(main)


def test_listener_on_one_address_accepts_only_that_family() -> None:
    async def main() -> None:
        v4 = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with v4:
            assert v4.socket.family == socket.AF_INET
        if not HAS_IPV6:
            with pytest.raises(OSError):
                await manyio.net.create_tcp_listener("::1", 0)
            return
        v6 = await manyio.net.create_tcp_listener("::1", 0)
        async with v6:
            assert v6.socket.family == socket.AF_INET6
            assert v6.socket.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
            with manyio.fail_after(5):
                client, server = await stream_pair(v6, "::1")
                async with client, server:
                    assert client.remote_address[:2] == ("::1", v6.port)
                with pytest.raises(OSError):
                    await manyio.net.connect_tcp("127.0.0.1", v6.port)

    run(main)


def test_connect_tcp_to_a_closed_port_names_host_and_port() -> None:
    async def main() -> None:
        port = closed_port()
        for host in ("127.0.0.1", "localhost"):
            with manyio.fail_after(5):
                with pytest.raises(OSError) as info:
                    await manyio.net.connect_tcp(host, port)
            assert f"{host}:{port}" in str(info.value)
            assert isinstance(info.value, ConnectionRefusedError), info.value
            assert info.value.errno == errno.ECONNREFUSED

    run(main)


def test_connect_tcp_localhost_reaches_a_listener_on_each_resolved_family() -> None:
    # Whatever "localhost" resolves to here (127.0.0.1, ::1 or both): a listener on just one of
    # those addresses is reached. With both, the other family's address is refused first or
    # raced (happy eyeballs), and the connection still lands on the listener.
    async def main() -> None:
        infos = await manyio.net.getaddrinfo("localhost", 0, type=socket.SOCK_STREAM)
        families = {info[0] for info in infos if info[0] in LOOPBACK}
        assert families, infos
        if not HAS_IPV6:
            families.discard(socket.AF_INET6)
        assert families
        for family in sorted(families):
            host = LOOPBACK[family]
            listener = await manyio.net.create_tcp_listener(host, 0)
            async with listener:
                with manyio.fail_after(5):
                    async with manyio.TaskGroup() as tg:
                        tg.start_soon(manyio.net.serve, listener, echo)
                        async with await manyio.net.connect_tcp("localhost", listener.port) as stream:
                            assert stream.remote_address[:2] == (host, listener.port)
                            await stream.send_all(b"via localhost")
                            assert await receive_exactly(stream, 13) == b"via localhost"
                        tg.cancel_scope.cancel()

    run(main)


def test_happy_eyeballs_falls_back_at_once_past_a_refused_address(monkeypatch) -> None:
    # The listener is on one loopback address only; the resolver lists the other first. With
    # IPv6 that is the real mixed-family case (::1 refused, 127.0.0.1 listening, and the reverse);
    # without it, a closed port on 127.0.0.1 stands in for the missing family.
    async def attempt(listen_host: str, dead: tuple[Any, ...]) -> None:
        listener = await manyio.net.create_tcp_listener(listen_host, 0)
        async with listener:
            live = (listen_host, listener.port)
            monkeypatch.setattr(manyio.net, "getaddrinfo", fake_resolver([dead, live]))
            async with manyio.TaskGroup() as tg:
                accepted = tg.spawn(listener.accept())
                t0 = time.monotonic()
                with manyio.fail_after(5):
                    stream = await manyio.net.connect_tcp(
                        "dual.example", listener.port, happy_eyeballs_delay=10
                    )
                # A refused attempt starts the next one immediately, not after the delay.
                assert time.monotonic() - t0 < 5
            async with stream, accepted.result() as server:
                assert stream.remote_address[:2] == live
                await stream.send_all(b"ok")
                assert await receive_exactly(server, 2) == b"ok"

    async def main() -> None:
        if HAS_IPV6:
            port = closed_port()
            await attempt("127.0.0.1", ("::1", port, 0, 0))
            await attempt("::1", ("127.0.0.1", port))
        else:
            await attempt("127.0.0.1", ("127.0.0.1", closed_port()))

    run(main)


def test_happy_eyeballs_races_the_next_address_when_the_first_hangs(monkeypatch) -> None:
    async def main() -> None:
        stuck, fillers = saturated_listener()
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        try:
            monkeypatch.setattr(
                manyio.net,
                "getaddrinfo",
                fake_resolver([stuck.getsockname(), ("127.0.0.1", listener.port)]),
            )
            before = open_fds()
            async with manyio.TaskGroup() as tg:
                accepted = tg.spawn(listener.accept())
                t0 = time.monotonic()
                with manyio.fail_after(5):
                    stream = await manyio.net.connect_tcp("slow.example", 1, happy_eyeballs_delay=0.1)
                elapsed = time.monotonic() - t0
            assert 0.09 <= elapsed < 5
            async with stream, accepted.result() as server:
                assert stream.remote_address == ("127.0.0.1", listener.port)
                await server.send_all(b"won")
                assert await receive_exactly(stream, 3) == b"won"
            # The hanging attempt was cancelled and its socket closed.
            assert open_fds() == before
        finally:
            await listener.aclose()
            for c in fillers:
                c.close()
            stuck.close()

    run(main)


# --- SocketStream ------------------------------------------------------------------------------


def test_socket_stream_send_receive_eof_and_close() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                assert repr(client).startswith("<manyio.SocketStream fd=")
                await client.send(b"0123456789")  # send is send_all
                assert await receive_exactly(server, 3) == b"012"
                assert len(await server.receive(1)) == 1
                assert await receive_exactly(server, 6) == b"456789"
                with pytest.raises(ValueError):
                    await server.receive(0)
                # Half close: the server reads EOF and can still answer.
                await client.send_eof()
                assert await server.receive() == b""
                assert await server.receive() == b""
                await server.send_all(b"reply after eof")
                assert await receive_exactly(client, 15) == b"reply after eof"
                await server.aclose()
                assert await client.receive() == b""
                await client.aclose()
                await client.aclose()  # idempotent
                assert repr(client) == "<manyio.SocketStream closed>"
                for op in (client.receive(), client.send_all(b"x"), client.send_eof()):
                    with pytest.raises(manyio.ClosedResourceError):
                        await op

    run(main)


def test_socket_stream_async_iteration_ends_at_eof() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                async with client, server:
                    payload = os.urandom(300_000)

                    async def produce() -> None:
                        for i in range(0, len(payload), 7000):
                            await client.send_all(payload[i : i + 7000])
                        await client.send_eof()

                    async with manyio.TaskGroup() as tg:
                        tg.start_soon(produce)
                        chunks = [chunk async for chunk in server]
                    assert all(chunks)
                    assert b"".join(chunks) == payload

    run(main)


def test_socket_stream_options_addresses_and_socket() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                async with client, server:
                    assert isinstance(client.socket, socket.socket)
                    assert client.socket.fileno() == client.fileno()
                    assert client.socket.gettimeout() == 0.0
                    assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
                    assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 0)
                    assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 0
                    linger = client.getsockopt(socket.SOL_SOCKET, socket.SO_LINGER, 8)
                    assert isinstance(linger, bytes) and len(linger) == 8
                    assert client.remote_address == ("127.0.0.1", listener.port)
                    assert client.remote_address == server.local_address
                    assert client.local_address == server.remote_address

    run(main)


def test_serve_runs_one_task_per_connection_and_closes_the_stream_after() -> None:
    n = 20

    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        inside = 0
        all_inside = manyio.Event()
        tasks: set[int] = set()
        lock = manyio.Lock()

        async def handler(stream: manyio.net.SocketStream) -> None:
            nonlocal inside
            async with lock:
                tasks.add(manyio.current_task().id)
                inside += 1
                if inside == n:
                    all_inside.set()
            # Every handler is running at the same time: each has its own task.
            await all_inside.wait()
            await stream.send_all(b"bye")
            # Returning closes the stream.

        async def client() -> None:
            async with await manyio.net.connect_tcp("127.0.0.1", listener.port) as s:
                assert await receive_exactly(s, 3) == b"bye"
                assert await s.receive() == b""

        async with listener:
            with manyio.fail_after(10):
                async with manyio.TaskGroup() as tg:
                    tg.start_soon(manyio.net.serve, listener, handler)
                    async with manyio.TaskGroup() as clients:
                        for _ in range(n):
                            clients.start_soon(client)
                    tg.cancel_scope.cancel()
        assert len(tasks) == n

    run(main)


def test_serve_can_put_handlers_in_a_given_task_group() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as handlers:
                    async with manyio.TaskGroup() as tg:
                        tg.start_soon(lambda: manyio.net.serve(listener, echo, task_group=handlers))
                        async with await manyio.net.connect_tcp("127.0.0.1", listener.port) as s:
                            await s.send_all(b"ping")
                            assert await receive_exactly(s, 4) == b"ping"
                        tg.cancel_scope.cancel()
                    handlers.cancel_scope.cancel()

    run(main)


# --- concurrent use, closing, broken peers -----------------------------------------------------


def test_two_tasks_receiving_on_one_stream_get_busy_resource_error(wait_until) -> None:
    async def main() -> list[str]:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        outcomes: list[str] = []
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                async with client, server:

                    async def receiver() -> None:
                        try:
                            data = await server.receive()
                        except manyio.BusyResourceError:
                            outcomes.append("busy")
                        else:
                            outcomes.append(data.decode())

                    async with manyio.TaskGroup() as tg:
                        tg.start_soon(receiver)
                        tg.start_soon(receiver)
                        await wait_until(lambda: outcomes == ["busy"])
                        await client.send_all(b"data")
                    # The stream is usable again by one task at a time.
                    await client.send_all(b"more")
                    assert await receive_exactly(server, 4) == b"more"
        return sorted(outcomes)

    assert run(main) == ["busy", "data"]


def test_two_tasks_sending_on_one_stream_get_busy_resource_error(wait_until) -> None:
    async def main() -> list[str]:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        outcomes: list[str] = []
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                async with server:

                    async def sender() -> None:
                        try:
                            await client.send_all(b"s" * (64 * 1024 * 1024))  # far more than buffers hold
                        except manyio.BusyResourceError:
                            outcomes.append("busy")
                        except manyio.ClosedResourceError:
                            outcomes.append("closed")

                    async with manyio.TaskGroup() as tg:
                        tg.start_soon(sender)
                        tg.start_soon(sender)
                        await wait_until(lambda: outcomes == ["busy"])
                        # The other sender is blocked for good (the server never reads); closing the
                        # stream releases it with ClosedResourceError.
                        await client.aclose()
        return sorted(outcomes)

    assert run(main) == ["busy", "closed"]


def test_closing_a_stream_wakes_the_task_blocked_in_receive(wait_until) -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                await watched(server.socket)
                entering = False

                async def receiver() -> str:
                    nonlocal entering
                    entering = True
                    try:
                        await server.receive()
                    except manyio.ClosedResourceError:
                        return "closed"
                    return "received"

                async with client:
                    async with manyio.TaskGroup() as tg:
                        task = tg.spawn(receiver())
                        await wait_until(lambda: entering)
                        await server.aclose()
                    assert task.result() == "closed"

    run(main)


def test_closing_a_stream_from_a_thread_wakes_the_task_blocked_in_receive(wait_until) -> None:
    # close() is synchronous and documented to wake blocked tasks; called from a to_thread
    # thread (not a worker) it must do so too, not leave the receiver parked forever.
    async def main() -> str:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(10):
                client, server = await stream_pair(listener)
                await watched(server.socket)
                entering = False

                async def receiver() -> str:
                    nonlocal entering
                    entering = True
                    try:
                        with manyio.fail_after(3):
                            await server.receive()
                    except manyio.ClosedResourceError:
                        return "closed"
                    except TimeoutError:
                        return "still blocked 3 s after close()"
                    return "received"

                async with client:
                    async with manyio.TaskGroup() as tg:
                        task = tg.spawn(receiver())
                        await wait_until(lambda: entering)
                        await manyio.to_thread(server.close)
                    return task.result()

    assert run(main) == "closed"


def test_closing_a_listener_wakes_the_task_blocked_in_accept(wait_until) -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        await watched(listener.socket)
        entering = False

        async def acceptor() -> str:
            nonlocal entering
            entering = True
            try:
                await listener.accept()
            except manyio.ClosedResourceError:
                return "closed"
            return "accepted"

        with manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                task = tg.spawn(acceptor())
                await wait_until(lambda: entering)
                await listener.aclose()
            assert task.result() == "closed"
            with pytest.raises(manyio.ClosedResourceError):
                await listener.accept()

    run(main)


def test_peer_reset_breaks_receive() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                reset_on_close(server.socket)
                await server.aclose()
                with pytest.raises(manyio.BrokenResourceError):
                    await client.receive()
                await client.aclose()

    run(main)


def test_peer_reset_breaks_a_blocked_receive(wait_until) -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                entering = False

                async def receiver() -> str:
                    nonlocal entering
                    entering = True
                    try:
                        await client.receive()
                    except manyio.BrokenResourceError:
                        return "broken"
                    return "received"

                async with client:
                    async with manyio.TaskGroup() as tg:
                        task = tg.spawn(receiver())
                        await wait_until(lambda: entering)
                        reset_on_close(server.socket)
                        await server.aclose()
                    assert task.result() == "broken"

    run(main)


def test_peer_reset_breaks_send() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                reset_on_close(server.socket)
                await server.aclose()
                with pytest.raises(manyio.BrokenResourceError):
                    for _ in range(1000):  # the reset may arrive after the first sends
                        await client.send_all(b"x" * 1000)
                await client.aclose()

    run(main)


def test_sending_after_the_peer_closed_eventually_breaks() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                await server.aclose()
                assert await client.receive() == b""
                with pytest.raises(manyio.BrokenResourceError):
                    for _ in range(1000):
                        await client.send_all(b"x" * 1000)
                        await manyio.sleep(0.001)
                await client.aclose()

    run(main)


# --- cancellation and deadlines ----------------------------------------------------------------


def test_connect_tcp_cancelled_by_a_deadline_while_the_handshake_hangs() -> None:
    async def main() -> None:
        stuck, fillers = saturated_listener()
        try:
            before = open_fds()
            t0 = time.monotonic()
            with manyio.move_on_after(0.2) as scope:
                await manyio.net.connect_tcp(*stuck.getsockname())
                pytest.fail("connected through a full backlog")  # pragma: no cover
            assert scope.cancelled_caught
            assert time.monotonic() - t0 < 3
            assert open_fds() == before  # the half-open socket was closed
            with pytest.raises(TimeoutError):
                with manyio.fail_after(0.1):
                    await manyio.net.connect_tcp(*stuck.getsockname())
            assert open_fds() == before
        finally:
            for c in fillers:
                c.close()
            stuck.close()

    run(main)


def test_connect_tcp_cancelled_right_after_starting() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            before = open_fds()
            for _ in range(20):
                with manyio.CancelScope() as scope:
                    scope.cancel()
                    await manyio.net.connect_tcp("127.0.0.1", listener.port)
                assert scope.cancelled_caught
            assert open_fds() == before
            with manyio.fail_after(5):
                # The cancelled attempts may have left closed connections in the backlog.
                client = await manyio.net.connect_tcp("127.0.0.1", listener.port)
                while True:
                    server = await listener.accept()
                    if server.remote_address == client.local_address:
                        break
                    await server.aclose()
                async with client, server:
                    await client.send_all(b"fine")
                    assert await receive_exactly(server, 4) == b"fine"

    run(main)


def test_connect_tcp_cancelled_as_the_connection_completes_closes_the_socket(monkeypatch) -> None:
    # The caller's deadline expires just as the handshake completes (simulated by cancelling
    # its scope from inside manyio.sockets.connect, which connect_tcp uses): connect_tcp raises
    # Cancelled, so it must close the socket it will never hand out.
    sockets_made: list[socket.socket] = []
    real_connect = manyio.sockets.connect

    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            outer = manyio.CancelScope()

            async def connect_then_deadline(sock: socket.socket, address: Any) -> None:
                sockets_made.append(sock)
                await real_connect(sock, address)
                outer.cancel()

            monkeypatch.setattr(manyio.sockets, "connect", connect_then_deadline)
            with manyio.fail_after(5):
                with outer:
                    await manyio.net.connect_tcp("127.0.0.1", listener.port)
                    pytest.fail("connect_tcp returned in a cancelled scope")  # pragma: no cover
            assert outer.cancelled_caught

    run(main)
    assert len(sockets_made) == 1
    leaked = [repr(s) for s in sockets_made if s.fileno() != -1]
    for s in sockets_made:
        s.close()
    assert not leaked, "connect_tcp was cancelled after connecting and left the socket open"


def test_send_all_to_a_peer_that_never_reads_is_cancelled_by_a_deadline() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                async with server:
                    t0 = time.monotonic()
                    with manyio.move_on_after(0.2) as scope:
                        await client.send_all(b"z" * (64 * 1024 * 1024))
                    assert scope.cancelled_caught
                    assert time.monotonic() - t0 < 3
                    # The send direction is free again (no stuck BusyResourceError), and the stream
                    # can still be closed.
                    with manyio.move_on_after(0.05):
                        await client.send_all(b"z" * (64 * 1024 * 1024))
                    await client.aclose()
                    with pytest.raises(manyio.ClosedResourceError):
                        await client.send_all(b"after close")
                    # The server sees the stream end after the bytes that made it through.
                    total = 0
                    while chunk := await server.receive():
                        total += len(chunk)
                    assert total > 0

    run(main)


def test_receive_cancelled_by_a_deadline_leaves_the_stream_usable() -> None:
    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(5):
                client, server = await stream_pair(listener)
                async with client, server:
                    for _ in range(3):
                        with manyio.move_on_after(0.05) as scope:
                            await server.receive()
                        assert scope.cancelled_caught
                        await client.send_all(b"after deadline")
                        assert await receive_exactly(server, 14) == b"after deadline"

    run(main)


def test_receive_in_a_cancelled_scope_does_not_lose_data() -> None:
    # A call that raises Cancelled must not have consumed anything.
    async def main() -> bytes:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            client, server = await stream_pair(listener)
            async with client, server:
                await client.send_all(b"keep me")
                await manyio.wait_readable(server.socket)  # the bytes are in the server's buffer
                with manyio.CancelScope() as scope:
                    scope.cancel()
                    await server.receive()
                assert scope.cancelled_caught
                with manyio.move_on_after(2):
                    return await server.receive()
                return b"<lost: receive raised Cancelled after taking the data>"

    assert run(main) == b"keep me"


def test_accept_in_a_cancelled_scope_does_not_lose_the_connection() -> None:
    async def main() -> bytes:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            client = await manyio.net.connect_tcp("127.0.0.1", listener.port)
            async with client:
                await client.send_all(b"hello")
                with manyio.CancelScope() as scope:
                    scope.cancel()
                    await listener.accept()
                assert scope.cancelled_caught
                with manyio.move_on_after(2):
                    async with await listener.accept() as server:
                        return await server.receive()
                return b"<lost: accept raised Cancelled after taking the connection>"

    assert run(main) == b"hello"


# --- name resolution ---------------------------------------------------------------------------


def test_getaddrinfo_and_getnameinfo_for_localhost() -> None:
    async def main() -> None:
        infos = await manyio.net.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        assert infos
        assert {tuple(i) for i in infos} == {
            tuple(i) for i in socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
        }
        assert {i[4][0] for i in infos} <= {"127.0.0.1", "::1"}
        numeric = await manyio.net.getaddrinfo("127.0.0.1", "80", type=socket.SOCK_STREAM)
        assert [i[4] for i in numeric] == [("127.0.0.1", 80)]
        if HAS_IPV6:
            numeric6 = await manyio.net.getaddrinfo("::1", 80, type=socket.SOCK_STREAM)
            assert [i[4][:2] for i in numeric6] == [("::1", 80)]
        assert await manyio.net.getnameinfo(
            ("127.0.0.1", 80), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV
        ) == ("127.0.0.1", "80")
        assert await manyio.net.getnameinfo(("127.0.0.1", 80)) == socket.getnameinfo(("127.0.0.1", 80), 0)

    run(main)
