"""``manyio.sockets``: async operations on standard ``socket.socket`` objects (loopback only)."""

from __future__ import annotations

import array
import errno
import hashlib
import os
import socket

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def tcp_listener() -> socket.socket:
    return socket.create_server(("127.0.0.1", 0), backlog=128)


async def tcp_pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    """A connected (client, server) pair of non-blocking TCP sockets."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await manyio.sockets.connect(client, listener.getsockname())
    server, address = await manyio.sockets.accept(listener)
    assert address == client.getsockname()
    return client, server


def test_send_and_recv_over_a_socketpair_set_the_sockets_non_blocking() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b, manyio.fail_after(5):
            assert a.gettimeout() is None
            assert await manyio.sockets.send(a, b"hello") == 5
            assert a.gettimeout() == 0.0
            assert await manyio.sockets.recv(b, 100) == b"hello"
            assert b.gettimeout() == 0.0
            a.shutdown(socket.SHUT_WR)
            assert await manyio.sockets.recv(b, 100) == b""  # end of stream

    run(main)


def test_recv_waits_for_data_sent_by_another_task() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b, manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                receiver = tg.spawn(manyio.sockets.recv(b, 100))
                tg.start_soon(manyio.sockets.sendall, a, b"later")
            assert receiver.result() == b"later"

    run(main)


def test_recv_into_fills_the_buffer() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b, manyio.fail_after(5):
            await manyio.sockets.sendall(a, b"0123456789")
            buf = bytearray(16)
            n = await manyio.sockets.recv_into(b, buf, 4)
            assert (n, bytes(buf[:n])) == (4, b"0123")
            view = memoryview(buf)[4:]
            n = await manyio.sockets.recv_into(b, view)
            assert (n, bytes(buf[: 4 + n])) == (6, b"0123456789")

    run(main)


def test_sendto_and_recvfrom_over_udp_loopback() -> None:
    async def main() -> None:
        a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with a, b, manyio.fail_after(5):
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.1", 0))
            async with manyio.TaskGroup() as tg:
                receiver = tg.spawn(manyio.sockets.recvfrom(b, 1024))
                assert await manyio.sockets.sendto(a, b"datagram", b.getsockname()) == 8
            assert receiver.result() == (b"datagram", a.getsockname())

    run(main)


def test_sendall_of_many_megabytes_to_a_slow_reader_is_intact(monkeypatch) -> None:
    size = 16 * 1024 * 1024
    waits = 0
    real_wait_writable = manyio.sockets.wait_writable

    def counting_wait_writable(sock):  # type: ignore[no-untyped-def]
        nonlocal waits
        waits += 1
        return real_wait_writable(sock)

    monkeypatch.setattr(manyio.sockets, "wait_writable", counting_wait_writable)

    async def main() -> None:
        payload = os.urandom(size)
        with tcp_listener() as listener, manyio.fail_after(30):
            client, server = await tcp_pair(listener)
            server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            with client, server:

                async def slow_reader() -> tuple[int, str]:
                    digest = hashlib.sha256()
                    total = reads = 0
                    while chunk := await manyio.sockets.recv(server, 16 * 1024):
                        digest.update(chunk)
                        total += len(chunk)
                        reads += 1
                        if reads % 64 == 0:
                            await manyio.sleep(0.001)
                    return total, digest.hexdigest()

                async with manyio.TaskGroup() as tg:
                    reader = tg.spawn(slow_reader())
                    await manyio.sockets.sendall(client, payload)
                    client.shutdown(socket.SHUT_WR)
            assert reader.result() == (size, hashlib.sha256(payload).hexdigest())

    run(main)
    assert waits > 0, "sendall never had to wait: there was no backpressure to test"


def test_sendall_accepts_any_buffer_and_empty_data() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b, manyio.fail_after(5):
            numbers = array.array("i", range(1000))
            await manyio.sockets.sendall(a, numbers)
            await manyio.sockets.sendall(a, memoryview(b"tail"))
            await manyio.sockets.sendall(a, b"")
            a.shutdown(socket.SHUT_WR)
            received = bytearray()
            while chunk := await manyio.sockets.recv(b, 65536):
                received += chunk
            assert bytes(received) == numbers.tobytes() + b"tail"

    run(main)


def test_accept_returns_a_non_blocking_connection_and_the_peer_address() -> None:
    async def main() -> None:
        with tcp_listener() as listener, manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                accepted = tg.spawn(manyio.sockets.accept(listener))
                client = socket.socket()
                await manyio.sockets.connect(client, listener.getsockname())
            conn, address = accepted.result()
            with client, conn:
                assert conn.gettimeout() == 0.0
                assert address == client.getsockname()
                assert conn.getpeername() == client.getsockname()
                await manyio.sockets.sendall(client, b"over tcp")
                assert await manyio.sockets.recv(conn, 100) == b"over tcp"

    run(main)


def test_connect_refused_raises_oserror_naming_the_address() -> None:
    async def main() -> None:
        with tcp_listener() as listener:
            address = listener.getsockname()
        # The port is closed now.
        sock = socket.socket()
        with sock, manyio.fail_after(5):
            with pytest.raises(OSError) as info:
                await manyio.sockets.connect(sock, address)
        assert isinstance(info.value, ConnectionRefusedError)
        assert info.value.errno == errno.ECONNREFUSED
        assert repr(address) in str(info.value)

    run(main)


def test_connect_to_a_missing_unix_path_names_it(tmp_path) -> None:
    async def main() -> None:
        path = str(tmp_path / "nobody-here")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        with sock, manyio.fail_after(5):
            with pytest.raises(OSError) as info:
                await manyio.sockets.connect(sock, path)
        assert info.value.errno == errno.ENOENT
        assert path in str(info.value)

    run(main)


def test_connect_cancelled_right_after_starting_leaves_the_listener_usable() -> None:
    async def main() -> None:
        with tcp_listener() as listener, manyio.fail_after(5):
            for _ in range(20):
                sock = socket.socket()
                with manyio.CancelScope() as scope:
                    scope.cancel()
                    await manyio.sockets.connect(sock, listener.getsockname())
                assert scope.cancelled_caught
                sock.close()
            # Connections the cancelled attempts may have completed wait in the backlog; skip them.
            client = socket.socket()
            await manyio.sockets.connect(client, listener.getsockname())
            while True:
                server, address = await manyio.sockets.accept(listener)
                if address == client.getsockname():
                    break
                server.close()
            with client, server:
                await manyio.sockets.sendall(client, b"still fine")
                assert await manyio.sockets.recv(server, 100) == b"still fine"

    run(main)


def test_a_deadline_cancels_a_blocked_recv_and_the_socket_still_works() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            with manyio.move_on_after(0.05) as scope:
                await manyio.sockets.recv(b, 100)
            assert scope.cancelled_caught
            with manyio.fail_after(5):
                await manyio.sockets.sendall(a, b"after the deadline")
                assert await manyio.sockets.recv(b, 100) == b"after the deadline"

    run(main)


def test_a_deadline_cancels_a_blocked_sendall() -> None:
    async def main() -> None:
        a, b = socket.socketpair()
        with a, b:
            with manyio.move_on_after(0.1) as scope:
                await manyio.sockets.sendall(a, b"x" * (64 * 1024 * 1024))  # b never reads
            assert scope.cancelled_caught

    run(main)


def test_recv_in_a_cancelled_scope_does_not_consume_data() -> None:
    # An operation that raises Cancelled did not happen: the bytes must still be there.
    async def main() -> bytes:
        a, b = socket.socketpair()
        with a, b:
            await manyio.sockets.sendall(a, b"precious")
            with manyio.CancelScope() as scope:
                scope.cancel()
                await manyio.sockets.recv(b, 100)
            assert scope.cancelled_caught
            with manyio.move_on_after(2):
                return await manyio.sockets.recv(b, 100)
            return b"<lost: recv raised Cancelled after taking the data>"

    assert run(main) == b"precious"


def test_sendall_in_a_cancelled_scope_sends_nothing() -> None:
    async def main() -> bytes:
        a, b = socket.socketpair()
        with a, b:
            with manyio.CancelScope() as scope:
                scope.cancel()
                await manyio.sockets.sendall(a, b"should not be sent")
            assert scope.cancelled_caught
            a.shutdown(socket.SHUT_WR)
            with manyio.fail_after(5):
                return await manyio.sockets.recv(b, 100)

    assert run(main) == b""
