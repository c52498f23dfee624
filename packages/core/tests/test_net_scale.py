"""Many connections at once, with every byte checked, and running out of file descriptors.

The fd-exhaustion scenarios lower ``RLIMIT_NOFILE`` in a child interpreter so the test process
keeps its own limit.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap
import threading

import manyio
import pytest

pytestmark = pytest.mark.timeout(120)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


@pytest.fixture
def fd_limit():  # type: ignore[no-untyped-def]
    """``fd_limit(n)`` raises the soft RLIMIT_NOFILE to at least ``n`` (up to the hard limit) for
    the duration of the test."""
    saved = resource.getrlimit(resource.RLIMIT_NOFILE)

    def ensure(n: int) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < n:
            if hard != resource.RLIM_INFINITY and hard < n:
                pytest.skip(f"needs {n} file descriptors; the hard RLIMIT_NOFILE is {hard}")
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))

    yield ensure
    resource.setrlimit(resource.RLIMIT_NOFILE, saved)


def payload_for(i: int, size: int) -> bytes:
    stamp = b"<%06d>" % i
    return (stamp * (size // len(stamp) + 1))[:size]


async def echo(stream: manyio.net.SocketStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def echo_many(n: int, size: int, listener: manyio.net.SocketListener, connect) -> int:  # type: ignore[no-untyped-def]
    """``n`` clients connect, wait until all ``n`` server handlers are running at once, then
    each echoes ``size`` unique bytes and checks them. Returns how many handlers ran."""
    lock = threading.Lock()
    handlers = 0
    everyone_connected = manyio.Event()
    verified = 0

    async def handler(stream: manyio.net.SocketStream) -> None:
        nonlocal handlers
        with lock:
            handlers += 1
            if handlers == n:
                everyone_connected.set()
        await echo(stream)

    async def client(i: int) -> None:
        nonlocal verified
        payload = payload_for(i, size)
        async with await connect() as stream:
            await everyone_connected.wait()  # n connections are open at both ends now
            await stream.send_all(payload)
            await stream.send_eof()
            received = bytearray()
            async for chunk in stream:
                received += chunk
            assert received == payload, f"client {i}: {len(received)} bytes, content differs"
        with lock:
            verified += 1

    async with manyio.TaskGroup() as tg:
        tg.start_soon(manyio.net.serve, listener, handler)
        async with manyio.TaskGroup() as clients:
            for i in range(n):
                clients.start_soon(client, i)
        tg.cancel_scope.cancel()
    assert verified == n
    return handlers


def test_2000_concurrent_tcp_connections_echo_intact(fd_limit) -> None:
    n, size = 2000, 4096
    fd_limit(2 * n + 256)

    async def main() -> int:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(60):
                return await echo_many(
                    n, size, listener, lambda: manyio.net.connect_tcp("127.0.0.1", listener.port)
                )

    assert run(main) == n


def test_many_unix_connections_echo_intact(fd_limit, tmp_path) -> None:
    n, size = 1000, 8192
    fd_limit(2 * n + 256)
    path = str(tmp_path / "echo.sock")

    async def main() -> int:
        listener = await manyio.net.create_unix_listener(path)
        async with listener:
            with manyio.fail_after(60):
                return await echo_many(n, size, listener, lambda: manyio.net.connect_unix(path))

    assert run(main) == n


def test_large_transfers_over_many_connections_both_ways(fd_limit) -> None:
    # Fewer connections, more data each: both directions are in flight at once, so send_all
    # and receive interleave on every stream under backpressure.
    n, size = 50, 1024 * 1024
    fd_limit(2 * n + 256)

    async def main() -> int:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with listener:
            with manyio.fail_after(60):
                return await echo_many(
                    n, size, listener, lambda: manyio.net.connect_tcp("127.0.0.1", listener.port)
                )

    assert run(main) == n


def run_script(script: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


_EXHAUST = """
    import errno, logging, os, resource, socket
    import manyio

    accept_errors = []

    class Capture(logging.Handler):
        def emit(self, record):
            accept_errors.append(record.getMessage())

    logging.getLogger("manyio.net").addHandler(Capture())


    def exhaust(spare):
        # Lowers the soft limit just above what is open, then fills every free slot but `spare`.
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 16, hard))
        fillers = []
        while True:
            try:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as e:
                assert e.errno == errno.EMFILE, e
                break
        for _ in range(spare):
            os.close(fillers.pop())
        return fillers


    async def wait_for(predicate, what):
        with manyio.fail_after(10):
            while not predicate():
                await manyio.sleep(0.01)
"""


def test_serve_keeps_serving_after_running_out_of_fds() -> None:
    script = (
        _EXHAUST
        + """
    async def main():
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        address = ("127.0.0.1", listener.port)
        served = []

        async def handler(stream):
            # Echo until the client closes: a connection holds its server fd until then.
            async for chunk in stream:
                served.append(chunk)
                await stream.send_all(chunk.upper())

        # Client sockets exist before the limit bites (connect() needs no new fd).
        clients = [socket.socket() for _ in range(3)]
        async with manyio.TaskGroup() as tg:
            tg.start_soon(manyio.net.serve, listener, handler)
            fillers = exhaust(spare=2)
            # Two connections use the two spare fds on the server side.
            for i, c in enumerate(clients[:2]):
                await manyio.sockets.connect(c, address)
                await manyio.sockets.sendall(c, b"client %d" % i)
                with manyio.fail_after(10):
                    assert await manyio.sockets.recv(c, 100) == b"CLIENT %d" % i
            # No fd left: the third connection completes in the kernel, accept() gets EMFILE.
            await manyio.sockets.connect(clients[2], address)
            await manyio.sockets.sendall(clients[2], b"client 2")
            await wait_for(lambda: accept_errors, "an accept() error to be logged")
            assert "Too many open files" in accept_errors[0], accept_errors
            # Closing a served connection frees fds; the waiting connection is then served.
            clients[0].close()
            with manyio.fail_after(10):
                assert await manyio.sockets.recv(clients[2], 100) == b"CLIENT 2"
            await manyio.sockets.sendall(clients[1], b"still here")
            with manyio.fail_after(10):
                assert await manyio.sockets.recv(clients[1], 100) == b"STILL HERE"
            assert sorted(served) == [b"client 0", b"client 1", b"client 2", b"still here"]
            tg.cancel_scope.cancel()
        for c in clients:
            c.close()
        for fd in fillers:
            os.close(fd)
        print("OK", len(accept_errors))

    manyio.run(main, threads=2)
    """
    )
    result = run_script(script)
    assert result.stdout.startswith("OK"), result.stdout


def test_connecting_without_free_fds_raises_oserror(tmp_path) -> None:
    path = str(tmp_path / "target.sock")
    script = (
        _EXHAUST
        + f"""
    PATH = {path!r}

    async def main():
        tcp = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        unix = await manyio.net.create_unix_listener(PATH)
        fillers = exhaust(spare=0)
        try:
            with manyio.fail_after(10):
                try:
                    await manyio.net.connect_tcp("127.0.0.1", tcp.port)
                except OSError as e:
                    assert e.errno == errno.EMFILE, e
                    assert f"127.0.0.1:{{tcp.port}}" in str(e), e
                else:
                    raise AssertionError("connect_tcp succeeded without a free fd")
                try:
                    await manyio.net.connect_unix(PATH)
                except OSError as e:
                    assert e.errno == errno.EMFILE, e
                else:
                    raise AssertionError("connect_unix succeeded without a free fd")
        finally:
            for fd in fillers:
                os.close(fd)
        # With fds back, connecting works again.
        with manyio.fail_after(10):
            async with await manyio.net.connect_tcp("127.0.0.1", tcp.port):
                pass
            async with await manyio.net.connect_unix(PATH):
                pass
        await tcp.aclose()
        await unix.aclose()
        print("OK")

    manyio.run(main, threads=2)
    """
    )
    result = run_script(script)
    assert result.stdout.startswith("OK"), result.stdout
