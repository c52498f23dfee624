"""``manyio.net`` over Unix stream sockets, UDP and Unix datagram sockets (loopback only)."""

from __future__ import annotations

import errno
import os
import socket
import stat

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
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


HAS_IPV6 = _ipv6_loopback()


async def echo(stream: manyio.net.SocketStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def receive_exactly(stream: manyio.net.SocketStream, n: int) -> bytes:
    data = bytearray()
    while len(data) < n:
        chunk = await stream.receive(n - len(data))
        assert chunk, f"EOF after {len(data)} of {n} bytes"
        data += chunk
    return bytes(data)


# --- Unix stream sockets -----------------------------------------------------------------------


def test_unix_echo_through_serve(tmp_path) -> None:
    path = str(tmp_path / "echo.sock")

    async def main() -> None:
        listener = await manyio.net.create_unix_listener(path)
        assert listener.local_address == path
        async with listener:
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    tg.start_soon(manyio.net.serve, listener, echo)
                    async with await manyio.net.connect_unix(path) as stream:
                        assert stream.socket.family == socket.AF_UNIX
                        assert stream.remote_address == path
                        for size in (1, 1000, 500_000):
                            payload = os.urandom(size)
                            # Send while receiving: the echo would otherwise fill both buffers.
                            async with manyio.TaskGroup() as io:
                                io.start_soon(stream.send_all, payload)
                                assert await receive_exactly(stream, size) == payload
                        await stream.send_eof()
                        assert await stream.receive() == b""
                    tg.cancel_scope.cancel()

    run(main)


def test_connect_unix_accepts_a_path_object(tmp_path) -> None:
    path = tmp_path / "pathlike.sock"

    async def main() -> None:
        listener = await manyio.net.create_unix_listener(path)
        async with listener:
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    accepted = tg.spawn(listener.accept())
                    client = await manyio.net.connect_unix(path)
                async with client, accepted.result() as server:
                    await server.send_all(b"hi")
                    assert await receive_exactly(client, 2) == b"hi"

    run(main)


def test_unix_listener_mode_sets_the_permissions(tmp_path) -> None:
    path = str(tmp_path / "private.sock")

    async def main() -> None:
        listener = await manyio.net.create_unix_listener(path, mode=0o600)
        async with listener:
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o600

    run(main)


def test_connect_unix_to_a_missing_path_names_it(tmp_path) -> None:
    path = str(tmp_path / "missing.sock")

    async def main() -> None:
        with manyio.fail_after(5):
            with pytest.raises(OSError) as info:
                await manyio.net.connect_unix(path)
        assert info.value.errno == errno.ENOENT
        assert path in str(info.value)

    run(main)


def test_connect_unix_to_a_listener_with_a_full_backlog(tmp_path) -> None:
    # A Unix connect() on a full backlog fails with EAGAIN (not EINPROGRESS): there is no
    # handshake to wait for. connect_unix may refuse (OSError) or wait for room, but it must not
    # hand back a stream that is not connected.
    path = str(tmp_path / "full.sock")

    async def main() -> None:
        listener = await manyio.net.create_unix_listener(path, backlog=0)
        fillers: list[socket.socket] = []
        accepted: list[manyio.net.SocketStream] = []
        try:
            for _ in range(64):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect(path)
                except BlockingIOError:
                    s.close()
                    break
                fillers.append(s)
            else:
                raise AssertionError("the backlog never filled")
            attempting = manyio.Event()

            async def make_room() -> None:
                await attempting.wait()
                await manyio.sleep(0.1)  # give connect_unix time to meet the full backlog
                while True:
                    accepted.append(await listener.accept())

            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    tg.start_soon(make_room)
                    attempting.set()
                    try:
                        stream = await manyio.net.connect_unix(path)
                    except OSError as e:
                        assert path in str(e)
                    else:
                        async with stream:
                            try:
                                peer = stream.remote_address
                            except OSError as e:
                                pytest.fail(f"connect_unix returned a stream that is not connected: {e!r}")
                            assert peer == path
                            await stream.send_all(b"made it")
                    tg.cancel_scope.cancel()
        finally:
            for s in fillers:
                s.close()
            for a in accepted:
                await a.aclose()
            await listener.aclose()

    run(main)


def test_connect_unix_cancelled_while_the_backlog_stays_full(tmp_path) -> None:
    path = str(tmp_path / "stuck.sock")

    async def main() -> None:
        listener = await manyio.net.create_unix_listener(path, backlog=0)
        fillers: list[socket.socket] = []
        try:
            while True:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.connect(path)
                except BlockingIOError:
                    s.close()
                    break
                fillers.append(s)
            before = len(os.listdir("/proc/self/fd"))
            try:
                with manyio.move_on_after(0.2) as scope:
                    await manyio.net.connect_unix(path)
            except OSError as e:
                assert path in str(e)  # refusing at once is fine too
            else:
                assert scope.cancelled_caught, "connect_unix got through a full backlog"
            assert len(os.listdir("/proc/self/fd")) == before  # its socket was closed
        finally:
            for s in fillers:
                s.close()
            await listener.aclose()

    run(main)


def test_unix_stream_close_and_reset_semantics(tmp_path, wait_until) -> None:
    path = str(tmp_path / "close.sock")

    async def main() -> None:
        listener = await manyio.net.create_unix_listener(path)
        async with listener:
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    accepted = tg.spawn(listener.accept())
                    client = await manyio.net.connect_unix(path)
                server = accepted.result()
                # The reactor watches the client already, as after any earlier wait. (A first
                # wait racing notify_closing is covered in test_reactor.py.)
                with manyio.move_on_after(0):
                    await manyio.wait_readable(client.socket)
                entering = False

                async def receiver() -> str:
                    nonlocal entering
                    entering = True
                    try:
                        await client.receive()
                    except manyio.ClosedResourceError:
                        return "closed"
                    return "received"

                async with manyio.TaskGroup() as tg:
                    task = tg.spawn(receiver())
                    await wait_until(lambda: entering)
                    await client.aclose()
                assert task.result() == "closed"
                # The server side sees the end of the stream, and then its sends break.
                assert await server.receive() == b""
                with pytest.raises(manyio.BrokenResourceError):
                    for _ in range(1000):
                        await server.send_all(b"x" * 1000)
                await server.aclose()

    run(main)


# --- UDP ---------------------------------------------------------------------------------------


def test_udp_unconnected_sendto_and_receive_from() -> None:
    async def main() -> None:
        a = await manyio.net.create_udp_socket(local_host="127.0.0.1")
        b = await manyio.net.create_udp_socket()  # AF_UNSPEC, no host: 127.0.0.1
        async with a, b:
            assert b.local_address[0] == "127.0.0.1"
            assert a.socket.type == socket.SOCK_DGRAM
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    receiver = tg.spawn(b.receive_from())
                    await a.sendto(b"first", b.local_address)
                assert receiver.result() == (b"first", a.local_address)
                # Datagram boundaries are kept.
                for size in (1, 10, 1000, 8000):
                    await a.sendto(bytes([size % 256]) * size, b.local_address)
                for size in (1, 10, 1000, 8000):
                    assert await b.receive_from() == (bytes([size % 256]) * size, a.local_address)
                await b.sendto(b"back", a.local_address)
                assert await a.receive() == b"back"

    run(main)


def test_udp_connected_send_and_receive() -> None:
    async def main() -> None:
        server = await manyio.net.create_udp_socket(local_host="127.0.0.1")
        port = server.local_address[1]
        client = await manyio.net.create_udp_socket(remote_host="127.0.0.1", remote_port=port)
        async with server, client:
            assert client.remote_address == ("127.0.0.1", port)
            with manyio.fail_after(5):
                await client.send(b"ping")
                data, address = await server.receive_from()
                assert (data, address[1]) == (b"ping", client.local_address[1])
                await server.sendto(b"pong", address)
                assert await client.receive() == b"pong"

    run(main)


def test_udp_over_ipv6_loopback_when_available() -> None:
    async def main() -> None:
        if not HAS_IPV6:
            with pytest.raises(OSError):
                await manyio.net.create_udp_socket(socket.AF_INET6, local_host="::1")
            return
        server = await manyio.net.create_udp_socket(socket.AF_INET6, local_host="::1")
        async with server:
            assert server.local_address[0] == "::1"
            port = server.local_address[1]
            client = await manyio.net.create_udp_socket(remote_host="::1", remote_port=port)
            async with client:
                assert client.socket.family == socket.AF_INET6
                with manyio.fail_after(5):
                    await client.send(b"v6")
                    data, address = await server.receive_from()
                    assert data == b"v6"
                    await server.sendto(b"6v", address)
                    assert await client.receive() == b"6v"

    run(main)


def test_udp_receive_deadline_and_close_while_waiting(wait_until) -> None:
    async def main() -> None:
        a = await manyio.net.create_udp_socket(local_host="127.0.0.1")
        b = await manyio.net.create_udp_socket(local_host="127.0.0.1")
        async with b:
            with manyio.move_on_after(0.05) as scope:
                await a.receive_from()
            assert scope.cancelled_caught
            with manyio.fail_after(5):
                await b.sendto(b"after deadline", a.local_address)
                assert (await a.receive_from())[0] == b"after deadline"
                entering = False

                async def receiver() -> str:
                    nonlocal entering
                    entering = True
                    try:
                        await a.receive()
                    except manyio.ClosedResourceError:
                        return "closed"
                    return "received"

                async with manyio.TaskGroup() as tg:
                    task = tg.spawn(receiver())
                    await wait_until(lambda: entering)
                    await a.aclose()
                assert task.result() == "closed"
            for op in (a.receive(), a.receive_from(), a.send(b"x"), a.sendto(b"x", b.local_address)):
                with pytest.raises(manyio.ClosedResourceError):
                    await op

    run(main)


def test_udp_operation_that_a_close_overtakes_raises_closed_resource_error() -> None:
    async def main() -> None:
        a = await manyio.net.create_udp_socket(local_host="127.0.0.1")
        b = await manyio.net.create_udp_socket(local_host="127.0.0.1")
        async with b:
            target = b.local_address
            a.close()
            # As if a task on another worker closed it after this operation's open check.
            a._closed = False
            for op in (a.receive(), a.receive_from(), a.send(b"x"), a.sendto(b"x", target)):
                with pytest.raises(manyio.ClosedResourceError):
                    await op

    run(main)


# --- Unix datagram sockets ---------------------------------------------------------------------


def test_unix_datagram_sockets_bound_and_connected(tmp_path) -> None:
    pa, pb, pc = (str(tmp_path / name) for name in ("a.dgram", "b.dgram", "c.dgram"))

    async def main() -> None:
        a = await manyio.net.create_unix_datagram_socket(pa)
        b = await manyio.net.create_unix_datagram_socket(pb)
        async with a, b:
            assert a.local_address == pa
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    receiver = tg.spawn(b.receive_from())
                    await a.sendto(b"to b", pb)
                assert receiver.result() == (b"to b", pa)
                # Connected to b, bound to c.
                c = await manyio.net.create_unix_datagram_socket(pc, remote_path=pb)
                async with c:
                    assert c.remote_address == pb
                    await c.send(b"from c")
                    assert await b.receive_from() == (b"from c", pc)
                    await b.sendto(b"to c", pc)
                    assert await c.receive() == b"to c"
                # Connected but not bound: the sender has no name.
                d = await manyio.net.create_unix_datagram_socket(remote_path=pb)
                async with d:
                    for i in range(5):
                        await d.send(bytes([i]) * (i + 1))
                    for i in range(5):
                        data, address = await b.receive_from()
                        assert data == bytes([i]) * (i + 1)
                        assert not address

    run(main)
