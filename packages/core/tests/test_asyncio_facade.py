"""The asyncio facade: asyncio code running in strands, and the bridges between the worlds."""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
import sys
import threading
import time
from typing import Any

import manyio
import manyio.asyncio
import pytest
import trustme

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def test_run_gives_main_a_facade_loop_and_its_result() -> None:
    async def main() -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        await asyncio.sleep(0.01)
        return loop, task

    loop, task = manyio.asyncio.run(main(), threads=THREADS)
    assert isinstance(loop, manyio.asyncio.EventLoop)
    assert isinstance(task, asyncio.Task)
    assert loop.is_closed()


def test_stock_asyncio_tools_work_unchanged() -> None:
    async def slow(x: int) -> int:
        await asyncio.sleep(0.02)
        return x

    async def main() -> list[Any]:
        out: list[Any] = []
        out.append(await asyncio.gather(*(slow(i) for i in range(20))))
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await asyncio.sleep(5)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(asyncio.sleep(5), 0.02)
        out.append(await asyncio.wait_for(slow(7), 5))
        out.append(await asyncio.shield(slow(8)))

        event, lock, queue = asyncio.Event(), asyncio.Lock(), asyncio.Queue[int]()
        counter = 0

        async def worker() -> None:
            nonlocal counter
            await event.wait()
            for _ in range(50):
                async with lock:
                    value = counter
                    await asyncio.sleep(0)
                    counter = value + 1
            await queue.put(1)

        async with asyncio.TaskGroup() as tg:
            for _ in range(4):
                tg.create_task(worker())
            loop = asyncio.get_running_loop()
            loop.call_later(0.01, event.set)
        out.append(counter)
        out.append(sum([queue.get_nowait() for _ in range(queue.qsize())]))
        return out

    assert manyio.asyncio.run(main(), threads=THREADS) == [list(range(20)), 7, 8, 200, 4]


def test_call_later_runs_in_order_and_can_be_cancelled() -> None:
    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        seen: list[int] = []
        done = loop.create_future()
        for delay, value in [(0.03, 3), (0.01, 1), (0.02, 2)]:
            loop.call_later(delay, seen.append, value)
        loop.call_later(0.015, seen.append, 99).cancel()
        loop.call_at(loop.time() + 0.04, done.set_result, None)
        await done
        return seen

    assert manyio.asyncio.run(main(), threads=THREADS) == [1, 2, 3]


def test_streams_echo_over_tcp() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()
        await writer.wait_closed()

    async def client(port: int, i: int) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        payload = b"".join(b"line %d of client %d\n" % (n, i) for n in range(100))
        writer.write(payload)
        await writer.drain()
        got = await reader.readexactly(len(payload))
        writer.close()
        await writer.wait_closed()
        assert got == payload.upper()
        return got

    async def main() -> int:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with server:
            results = await asyncio.gather(*(client(port, i) for i in range(20)))
        return len(results)

    assert manyio.asyncio.run(main(), threads=THREADS) == 20


def test_tls_streams(tmp_path: Any) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.readline())
        await writer.drain()
        writer.close()

    async def main() -> tuple[bytes, str]:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=client_ctx, server_hostname="127.0.0.1"
            )
            writer.write(b"secret\n")
            line = await reader.readline()
            version = writer.get_extra_info("ssl_object").version()
            writer.close()
            await writer.wait_closed()
        return line, version

    line, version = manyio.asyncio.run(main(), threads=THREADS)
    assert line == b"secret\n"
    assert version.startswith("TLS")


def test_executor_dns_subprocess_and_threadsafe_calls() -> None:
    async def main() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        in_thread = await loop.run_in_executor(None, threading.current_thread)
        infos = await loop.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "print('hi')", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        fut = loop.create_future()
        threading.Timer(0.01, loop.call_soon_threadsafe, (fut.set_result, "from a thread")).start()
        return in_thread is not threading.current_thread(), infos[0][4], out, await fut

    in_other, addr, out, from_thread = manyio.asyncio.run(main(), threads=THREADS)
    assert in_other
    assert addr == ("127.0.0.1", 80)
    assert out.strip() == b"hi"
    assert from_thread == "from a thread"


def test_callback_errors_reach_the_exception_handler() -> None:
    async def main() -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        seen: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: seen.append(ctx))

        def boom() -> None:
            raise ValueError("from a callback")

        loop.call_soon(boom)
        await asyncio.sleep(0.01)
        return seen

    (ctx,) = manyio.asyncio.run(main(), threads=THREADS)
    assert isinstance(ctx["exception"], ValueError)


def test_classic_mode_with_asyncio_run_and_run_until_complete() -> None:
    async def main() -> str:
        assert isinstance(asyncio.get_running_loop(), manyio.asyncio.EventLoop)
        await asyncio.sleep(0.01)
        return "ok"

    assert asyncio.run(main(), loop_factory=manyio.asyncio.EventLoop) == "ok"

    loop = manyio.asyncio.new_event_loop()
    try:
        ran: list[str] = []
        loop.call_soon(ran.append, "queued before the run")
        assert ran == []  # classic loops run callbacks only while running
        assert loop.run_until_complete(main()) == "ok"
        assert ran == ["queued before the run"]
        assert loop.run_until_complete(main()) == "ok"  # and again
    finally:
        loop.close()


def test_blocking_a_worker_with_run_until_complete_is_refused() -> None:
    async def main() -> None:
        loop = manyio.asyncio.new_event_loop()
        try:
            coro = asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="block a manyio worker"):
                loop.run_until_complete(coro)
            coro.close()
        finally:
            loop.close()

    manyio.run(main, threads=THREADS)


def test_manyio_tasks_await_asyncio_tasks_and_futures() -> None:
    async def in_asyncio(x: int) -> int:
        await asyncio.sleep(0.01)
        return x * 2

    async def main() -> list[int]:
        strand = manyio.Strand()
        loop = manyio.asyncio.loop_for(strand)
        task = await strand.run(_create, loop, in_asyncio(21))
        fut = loop.create_future()
        loop.call_soon_threadsafe(loop.call_later, 0.01, fut.set_result, 5)
        results = [await task, await fut, await manyio.asyncio.run_in_strand(in_asyncio(4), strand=strand)]
        await manyio.asyncio._run.shutdown(loop)
        return results

    assert manyio.run(main, threads=THREADS) == [42, 5, 8]


async def _create(loop: asyncio.AbstractEventLoop, coro: Any) -> asyncio.Task[Any]:
    return loop.create_task(coro)


def test_cancelling_the_manyio_caller_cancels_the_asyncio_task_and_waits_for_it() -> None:
    cleaned = threading.Event()

    async def in_asyncio() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.02)  # cleanup that takes a while
            cleaned.set()

    async def main() -> bool:
        with manyio.move_on_after(0.05) as scope:
            await manyio.asyncio.run_in_strand(in_asyncio())
        # The caller waited for the cancelled asyncio task's finally before moving on.
        return scope.cancelled_caught and cleaned.is_set()

    assert manyio.run(main, threads=THREADS)


def test_cancelling_the_asyncio_task_raises_in_the_manyio_caller() -> None:
    async def main() -> None:
        strand = manyio.Strand()
        loop = manyio.asyncio.loop_for(strand)
        task = await strand.run(_create, loop, asyncio.sleep(10))
        loop.call_soon_threadsafe(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        await manyio.asyncio._run.shutdown(loop)

    manyio.run(main, threads=THREADS)


def test_manyio_tasks_of_a_strand_see_its_loop() -> None:
    async def main() -> bool:
        strand = manyio.Strand()
        loop = manyio.asyncio.loop_for(strand)

        async def look() -> Any:
            return asyncio.get_running_loop()

        seen = await strand.run(look)
        with pytest.raises(RuntimeError):
            asyncio.get_running_loop()  # a free task has no asyncio loop
        await manyio.asyncio._run.shutdown(loop)
        return seen is loop

    assert manyio.run(main, threads=THREADS)


def test_strands_are_exclusive_under_stress() -> None:
    """Many strands on 2 threads, asyncio tasks mutating an unsynchronised list per strand:
    no step of a strand may ever overlap another step of the same strand."""
    overlaps = 0
    guard = threading.Lock()

    async def strand_body(n_tasks: int) -> list[int]:
        shared: list[int] = []
        inside = [0]

        async def step(i: int) -> None:
            nonlocal overlaps
            for j in range(30):
                inside[0] += 1
                if inside[0] != 1:
                    with guard:
                        overlaps += 1
                shared.append(i * 1000 + j)
                x = sum(range(200))  # widen the window
                del x
                inside[0] -= 1
                await asyncio.sleep(0)

        await asyncio.gather(*(step(i) for i in range(n_tasks)))
        return shared

    async def main() -> list[int]:
        results: list[list[int]] = []
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(manyio.asyncio.run_in_strand(strand_body(8))) for _ in range(32)]
        results = [t.result() for t in tasks]
        return [len(r) for r in results]

    lengths = manyio.run(main, threads=THREADS)
    assert lengths == [8 * 30] * 32
    assert overlaps == 0


def test_context_variables_flow_into_asyncio_tasks() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")

    async def read() -> str:
        return var.get()

    async def main() -> str:
        var.set("from manyio")
        return await manyio.asyncio.run_in_strand(read())

    assert manyio.run(main, threads=THREADS) == "from manyio"


def test_an_idle_live_loop_holds_no_task() -> None:
    async def main() -> int:
        strand = manyio.Strand()
        loop = manyio.asyncio.loop_for(strand)
        await manyio.asyncio.run_in_strand(asyncio.sleep(0.01), strand=strand)
        deadline = time.monotonic() + 5
        while loop._driving and time.monotonic() < deadline:
            await manyio.sleep(0.005)
        idle = not loop._driving
        # ...and it starts again on demand.
        value = await manyio.asyncio.run_in_strand(_echo(3), strand=strand)
        await manyio.asyncio._run.shutdown(loop)
        return value if idle else -1

    assert manyio.run(main, threads=THREADS) == 3


async def _echo(x: int) -> int:
    await asyncio.sleep(0)
    return x


def test_asyncio_code_awaits_manyio_awaitables_through_from_manyio() -> None:
    cleaned = threading.Event()

    async def manyio_side() -> None:
        try:
            await manyio.sleep(10)
        finally:
            cleaned.set()

    async def failing() -> None:
        await manyio.checkpoint()
        raise KeyError("from manyio")

    async def main() -> list[Any]:
        event = manyio.Event()
        asyncio.get_running_loop().call_later(0.01, event.set)
        await manyio.asyncio.from_manyio(event.wait())
        lock = manyio.Lock()
        async with asyncio.TaskGroup() as tg:
            for _ in range(5):
                tg.create_task(manyio.asyncio.from_manyio(_hold(lock)))
        with pytest.raises(KeyError):
            await manyio.asyncio.from_manyio(failing())
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.02):
                await manyio.asyncio.from_manyio(manyio_side())
        return [event.is_set(), cleaned.is_set()]

    assert manyio.asyncio.run(main(), threads=THREADS) == [True, True]


async def _hold(lock: manyio.Lock) -> None:
    async with lock:
        await manyio.sleep(0.001)
