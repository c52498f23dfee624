"""The reactor: ``wait_readable``, ``wait_writable`` and ``notify_closing`` on raw descriptors.

A wait may in principle return without the descriptor being ready (an event collected by one
worker can be dispatched after the next wait registered), so the tests read with a
non-blocking call and go back to waiting on ``BlockingIOError``, the way ``manyio.sockets``
does. What they check is that every wait ends: by readiness, by ``notify_closing``, or by
cancellation, and that nothing is left behind that would break the next wait.
"""

from __future__ import annotations

import errno
import os
import socket
import threading

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def nonblocking_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def fill(sock: socket.socket) -> int:
    """Writes into a non-blocking socket until its buffers are full; returns the bytes written."""
    chunk = b"f" * 65536
    total = 0
    while True:
        try:
            total += sock.send(chunk)
        except BlockingIOError:
            return total


def drain(sock: socket.socket) -> int:
    """Reads everything a non-blocking socket has now; returns the bytes read."""
    total = 0
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return total
        if not data:
            return total
        total += len(data)


async def read_some(sock: socket.socket, n: int = 65536) -> bytes:
    """Waits with ``wait_readable`` and reads (retrying a wake-up that found nothing)."""
    while True:
        await manyio.wait_readable(sock)
        try:
            return sock.recv(n)
        except BlockingIOError:
            continue


# --- readiness -------------------------------------------------------------------------------


def test_wait_readable_returns_at_once_when_data_is_waiting() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b:
            b.send(b"ready")
            with manyio.fail_after(5):
                await manyio.wait_readable(a)
            assert a.recv(16) == b"ready"
            # An int works as well as an object with fileno().
            b.send(b"again")
            with manyio.fail_after(5):
                await manyio.wait_readable(a.fileno())
            assert a.recv(16) == b"again"

    run(main)


def test_wait_writable_on_a_fresh_socket_returns_at_once() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b:
            with manyio.fail_after(5):
                await manyio.wait_writable(a)
                await manyio.wait_writable(b.fileno())

    run(main)


async def ping_pong(x: socket.socket, y: socket.socket, rounds: int) -> None:
    """Two tasks bounce a counter over ``x``/``y``; each blocks in wait_readable until the other
    sends, so nearly every wait is woken by an epoll event rather than found ready."""

    async def side(me: socket.socket, serves_first: bool) -> None:
        if serves_first:
            me.send(b"\x00")
        for i in range(rounds):
            data = await read_some(me, 16)
            assert data == bytes([i % 256]), (serves_first, i, data)
            if not serves_first:
                me.send(bytes([i % 256]))
            elif i + 1 < rounds:
                me.send(bytes([(i + 1) % 256]))

    async with manyio.TaskGroup() as tg:
        tg.start_soon(side, x, True)
        tg.start_soon(side, y, False)


def test_ping_pong_between_two_tasks_wakes_each_waiter() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b, manyio.fail_after(20):
            await ping_pong(a, b, 1000)

    run(main)


def test_a_plain_thread_sending_wakes_the_waiting_task() -> None:
    rounds = 50

    async def main() -> None:
        a, b = nonblocking_pair()
        armed = threading.Event()
        stop = threading.Event()

        def sender() -> None:
            for i in range(rounds):
                while not armed.wait(0.05):
                    if stop.is_set():
                        return
                armed.clear()
                b.send(bytes([i]))

        thread = threading.Thread(target=sender)
        thread.start()
        try:
            with a, b, manyio.fail_after(10):
                for i in range(rounds):
                    armed.set()  # the thread sends only once the task is (about to be) waiting
                    assert await read_some(a, 16) == bytes([i])
        finally:
            stop.set()
            thread.join(5)
        assert not thread.is_alive()

    run(main)


async def write_one(sock: socket.socket, data: bytes = b"!") -> int:
    """Waits with ``wait_writable`` and sends (retrying a wake-up that found no room)."""
    while True:
        await manyio.wait_writable(sock)
        try:
            return sock.send(data)
        except BlockingIOError:
            continue


def test_a_reader_and_a_writer_on_one_fd_do_not_conflict() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b, manyio.fail_after(5):
            fill(a)
            async with manyio.TaskGroup() as tg:
                writer = tg.spawn(write_one(a))  # blocked: the send buffer is full
                reader = tg.spawn(read_some(a))  # the other direction of the same fd
                b.send(b"to a")
                assert await reader == b"to a"
                assert not writer.done()
                while not writer.done():
                    await manyio.wait_readable(b)
                    drain(b)
            assert writer.result() == 1

    run(main)


def test_wait_writable_blocks_on_a_full_socket_until_the_peer_reads() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b, manyio.fail_after(5):
            written = fill(a)
            assert written > 0
            draining = False

            async def writer() -> bool:
                await write_one(a)
                return draining

            async with manyio.TaskGroup() as tg:
                task = tg.spawn(writer())
                # Nothing can be written while the buffer is full: the writer stays blocked.
                await manyio.sleep(0.1)
                assert not task.done()
                draining = True
                while not task.done():
                    await manyio.wait_readable(b)
                    drain(b)
            assert task.result() is True  # it woke only once the peer started reading

    run(main)


def test_a_pipe_read_end_wakes_on_data_and_on_eof(wait_until) -> None:
    async def main() -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        chunks: list[bytes] = []

        async def read_pipe() -> None:
            while True:
                await manyio.wait_readable(r)
                try:
                    data = os.read(r, 1024)
                except BlockingIOError:
                    continue
                if not data:
                    return
                chunks.append(data)

        try:
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    tg.start_soon(read_pipe)
                    os.write(w, b"one")
                    await wait_until(lambda: chunks == [b"one"])
                    os.write(w, b"two")
                    await wait_until(lambda: chunks == [b"one", b"two"])
                    # The reader is back in wait_readable: closing the write end wakes it (EOF).
                    os.close(w)
                    w = -1
            assert chunks == [b"one", b"two"]
        finally:
            manyio.notify_closing(r)
            os.close(r)
            if w >= 0:
                os.close(w)

    run(main)


def test_a_full_pipe_write_end_wakes_when_the_reader_drains_it() -> None:
    async def main() -> None:
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        try:
            written = 0
            while True:
                try:
                    written += os.write(w, b"p" * 65536)
                except BlockingIOError:
                    break
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:

                    async def write_more() -> int:
                        while True:
                            await manyio.wait_writable(w)
                            try:
                                return os.write(w, b"q" * 10)
                            except BlockingIOError:
                                continue

                    writer = tg.spawn(write_more())
                    read = 0
                    while read < written:
                        await manyio.wait_readable(r)
                        try:
                            read += len(os.read(r, 1 << 20))
                        except BlockingIOError:
                            continue
                assert writer.result() == 10
        finally:
            for fd in (r, w):
                manyio.notify_closing(fd)
                os.close(fd)

    run(main)


def test_a_regular_file_is_always_ready(tmp_path) -> None:
    async def main() -> None:
        path = tmp_path / "data.bin"
        path.write_bytes(b"contents")
        fd = os.open(path, os.O_RDWR)
        try:
            with manyio.fail_after(5):
                for _ in range(100):
                    await manyio.wait_readable(fd)
                    await manyio.wait_writable(fd)
            assert os.read(fd, 100) == b"contents"
            with open(path, "rb") as f:  # an object with fileno()
                with manyio.fail_after(5):
                    await manyio.wait_readable(f)
        finally:
            manyio.notify_closing(fd)
            os.close(fd)

    run(main)


# --- one waiter per direction ------------------------------------------------------------------


def test_second_reader_of_one_fd_gets_busy_resource_error(wait_until) -> None:
    async def main() -> list[str]:
        a, b = nonblocking_pair()
        outcomes: list[str] = []

        async def reader() -> None:
            try:
                await manyio.wait_readable(a)
            except manyio.BusyResourceError as e:
                assert "read" in str(e)
                outcomes.append("busy")
            else:
                outcomes.append("readable")

        with a, b, manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                # Whichever of the two registers second gets the error; the first stays
                # parked until data arrives.
                tg.start_soon(reader)
                tg.start_soon(reader)
                await wait_until(lambda: outcomes == ["busy"])
                b.send(b"x")
        return sorted(outcomes)

    assert run(main) == ["busy", "readable"]


def test_second_writer_of_one_fd_gets_busy_resource_error(wait_until) -> None:
    async def main() -> list[str]:
        a, b = nonblocking_pair()
        outcomes: list[str] = []

        async def writer() -> None:
            try:
                await write_one(a)  # sends a byte once woken, so the drain loop below sees it
            except manyio.BusyResourceError as e:
                assert "write" in str(e)
                outcomes.append("busy")
            else:
                outcomes.append("writable")

        with a, b, manyio.fail_after(5):
            fill(a)
            async with manyio.TaskGroup() as tg:
                tg.start_soon(writer)
                tg.start_soon(writer)
                await wait_until(lambda: outcomes == ["busy"])
                while "writable" not in outcomes:
                    await manyio.wait_readable(b)
                    drain(b)
        return sorted(outcomes)

    assert run(main) == ["busy", "writable"]


def test_after_a_wait_completes_the_fd_can_be_waited_on_again() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b, manyio.fail_after(5):
            for i in range(200):
                b.send(bytes([i % 256]))
                assert await read_some(a, 16) == bytes([i % 256])

    run(main)


# --- notify_closing ----------------------------------------------------------------------------


def test_notify_closing_wakes_readers_and_writers_with_closed_resource_error() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        b.send(b"r")
        assert await read_some(a) == b"r"  # the fd is known to the reactor
        fill(a)

        async def wait(fn) -> str:  # type: ignore[no-untyped-def]
            try:
                await fn(a)
            except manyio.ClosedResourceError:
                return "closed"
            return "ready"

        with manyio.fail_after(5):
            async with manyio.TaskGroup() as tg:
                reader = tg.spawn(wait(manyio.wait_readable))
                writer = tg.spawn(wait(manyio.wait_writable))
                # Whether each task is parked already or only about to wait, it gets the error:
                # waits that start after notify_closing fail too.
                manyio.notify_closing(a)
        a.close()
        b.close()
        assert (reader.result(), writer.result()) == ("closed", "closed")

    run(main)


def test_a_wait_started_after_notify_closing_raises_closed_resource_error() -> None:
    # notify_closing means "about to close": a wait that starts afterwards (racing the close)
    # fails at once instead of sleeping on a descriptor that is going away.
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b, manyio.fail_after(5):
            b.send(b"1")
            assert await read_some(a) == b"1"  # registered with the reactor
            manyio.notify_closing(a)  # nobody waiting: nothing to wake, no error
            manyio.notify_closing(a)  # twice is fine
            b.send(b"2")
            with pytest.raises(manyio.ClosedResourceError):
                await manyio.wait_readable(a)
            with pytest.raises(manyio.ClosedResourceError):
                await manyio.wait_writable(a)

    run(main)


def test_a_first_wait_after_notify_closing_raises_closed_resource_error() -> None:
    # The same, for a descriptor nobody had waited on before notify_closing: e.g. a task's
    # first receive() on a new stream racing another task's aclose(). It must not register
    # the fd afresh and sleep on a descriptor that is about to be closed.
    async def main() -> str:
        a, b = nonblocking_pair()
        with a, b:
            manyio.notify_closing(a)
            try:
                with manyio.fail_after(1):
                    await manyio.wait_readable(a)
            except manyio.ClosedResourceError:
                return "closed"
            except TimeoutError:
                return "slept on a descriptor notify_closing had announced as closing"
            return "readable"

    assert run(main) == "closed"


def test_notify_closing_from_a_plain_thread_wakes_the_waiter() -> None:
    async def main() -> str:
        a, b = nonblocking_pair()
        b.send(b"r")
        assert await read_some(a) == b"r"  # the fd is known to the reactor
        entering = threading.Event()

        async def waiter() -> str:
            entering.set()
            try:
                with manyio.fail_after(3):
                    await manyio.wait_readable(a)
            except manyio.ClosedResourceError:
                return "closed"
            except TimeoutError:
                return "still waiting 3 s after notify_closing"
            return "readable"

        def notify() -> None:
            entering.wait(5)
            manyio.notify_closing(a)  # not a worker thread

        with a, b:
            async with manyio.TaskGroup() as tg:
                task = tg.spawn(waiter())
                await manyio.to_thread(notify)
            return task.result()

    assert run(main) == "closed"


def test_closed_socket_wait_raises_oserror() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        manyio.notify_closing(a)
        a.close()
        b.close()
        with pytest.raises(OSError) as info:
            await manyio.wait_readable(a)  # fileno() is -1 now
        assert info.value.errno == errno.EBADF
        with pytest.raises(OSError) as info:
            await manyio.wait_writable(-1)
        assert info.value.errno == errno.EBADF

    run(main)


def _pair_reusing(fd: int) -> tuple[socket.socket, socket.socket]:
    """A socketpair one of whose ends has the number ``fd`` (reused after a close)."""
    spares = []
    try:
        for _ in range(64):
            a, b = socket.socketpair()
            if a.fileno() == fd:
                return a, b
            if b.fileno() == fd:
                return b, a
            spares.append((a, b))
        raise AssertionError(f"fd {fd} was not reused")
    finally:
        for x, y in spares:
            x.close()
            y.close()


@pytest.mark.parametrize("notify", [True, False], ids=["notify_closing", "plain_close"])
def test_a_reused_fd_number_starts_clean(notify: bool) -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        old = a.fileno()
        with manyio.fail_after(5):
            # Leave the fd registered in every way: a completed wait and a cancelled one.
            b.send(b"x")
            assert await read_some(a) == b"x"
            with manyio.move_on_after(0.02):
                await manyio.wait_readable(a)
            if notify:
                manyio.notify_closing(a)
            a.close()
            b.close()
            c, d = _pair_reusing(old)
            with c, d:
                c.setblocking(False)
                d.setblocking(False)
                assert c.fileno() == old
                await ping_pong(c, d, 50)
                # The write direction of the new socket works too.
                fill(c)
                async with manyio.TaskGroup() as tg:
                    writer = tg.spawn(write_one(c))
                    while not writer.done():
                        await manyio.wait_readable(d)
                        drain(d)

    run(main)


# --- cancellation ------------------------------------------------------------------------------


def test_a_deadline_abandons_the_wait_and_a_later_wait_works() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b:
            with manyio.move_on_after(0.05) as scope:
                await manyio.wait_readable(a)
            assert scope.cancelled_caught
            with pytest.raises(TimeoutError):
                with manyio.fail_after(0.05):
                    await manyio.wait_readable(a)
            # Another task can wait on it now: the abandoned waiters are gone (no BusyResourceError).
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    reader = tg.spawn(read_some(a))
                    b.send(b"after")
                assert reader.result() == b"after"

    run(main)


def test_cancelling_a_blocked_writer_frees_the_direction() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b:
            fill(a)
            with manyio.move_on_after(0.05) as scope:
                await manyio.wait_writable(a)
            assert scope.cancelled_caught
            with manyio.fail_after(5):
                async with manyio.TaskGroup() as tg:
                    task = tg.spawn(write_one(a))
                    while not task.done():
                        await manyio.wait_readable(b)
                        drain(b)

    run(main)


def test_cancelling_the_waiting_task_from_another_task(wait_until) -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b, manyio.fail_after(5):
            scope = manyio.CancelScope()
            entered = manyio.Event()

            async def waiter() -> bool:
                with scope:
                    entered.set()
                    await manyio.wait_readable(a)
                return scope.cancelled_caught

            async with manyio.TaskGroup() as tg:
                task = tg.spawn(waiter())
                await entered.wait()
                scope.cancel()
            assert task.result() is True
            b.send(b"y")
            assert await read_some(a) == b"y"

    run(main)


def test_a_wait_in_a_cancelled_scope_raises_even_when_ready() -> None:
    async def main() -> None:
        a, b = nonblocking_pair()
        with a, b:
            b.send(b"z")
            with manyio.CancelScope() as scope:
                scope.cancel()
                await manyio.wait_readable(a)
                pytest.fail("a wait is a checkpoint")  # pragma: no cover
            assert scope.cancelled_caught
            with manyio.fail_after(5):
                assert await read_some(a) == b"z"

    run(main)


def test_many_tasks_each_waiting_on_its_own_fd() -> None:
    n = 300

    async def main() -> None:
        pairs = [nonblocking_pair() for _ in range(n)]
        try:
            with manyio.fail_after(10):
                async with manyio.TaskGroup() as tg:
                    readers = [tg.spawn(read_some(a)) for a, _ in pairs]
                    for i, (_, b) in enumerate(pairs):
                        b.send(str(i).encode())
                assert [r.result() for r in readers] == [str(i).encode() for i in range(n)]
        finally:
            for a, b in pairs:
                a.close()
                b.close()

    run(main)


def test_waiting_outside_a_runtime_raises_runtime_error() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(RuntimeError):
            manyio.wait_readable(a)
        with pytest.raises(RuntimeError):
            manyio.wait_writable(a)


def test_try_recv_reports_nothing_data_and_end_of_stream_without_raising() -> None:
    a, b = socket.socketpair()  # blocking sockets: try_recv must not block on them either
    with a, b:
        assert manyio._core.try_recv(a, 10) is None
        b.sendall(b"hello world")
        assert manyio._core.try_recv(a.fileno(), 5) == b"hello"
        assert manyio._core.try_recv(a, 1 << 20) == b" world"
        assert manyio._core.try_recv(a, 10) is None
        b.close()
        assert manyio._core.try_recv(a, 10) == b""
    with pytest.raises(OSError) as info:
        manyio._core.try_recv(a.fileno(), 10)  # closed: -1
    assert info.value.errno == errno.EBADF
