"""The manyio AnyIO backend: running, modes, detection, and libraries built on AnyIO."""

from __future__ import annotations

import math
import sys
import threading
import time

import anyio
import anyio.lowlevel
import manyio
import manyio_anyio
import pytest
import sniffio


def run(main, **options):  # type: ignore[no-untyped-def]
    return anyio.run(main, backend="manyio", backend_options=options)


def test_registered_on_import_and_through_compat() -> None:
    assert "manyio" in anyio.get_all_backends()
    assert "manyio" in anyio.get_available_backends()
    assert manyio.compat.patch("anyio") == "manyio"
    assert "anyio" in manyio.compat.available()
    assert not sys._is_gil_enabled()


def test_run_returns_the_result_and_names_the_main_task() -> None:
    async def main(x: int) -> tuple[int, str | None]:
        await anyio.sleep(0)
        return x * 2, anyio.get_current_task().name

    result, name = anyio.run(main, 21, backend="manyio")
    assert result == 42
    assert name is not None and name.endswith("main")


def test_unknown_option_is_a_type_error() -> None:
    async def main() -> None:
        pass

    with pytest.raises(TypeError, match="unknown manyio backend option"):
        run(main, thread=2)


def test_sniffio_says_manyio_in_tasks_only() -> None:
    seen: dict[str, str | None] = {}

    def in_thread() -> str | None:
        try:
            return sniffio.current_async_library()
        except sniffio.AsyncLibraryNotFoundError:
            return None

    async def main() -> None:
        seen["task"] = sniffio.current_async_library()
        seen["worker thread"] = await anyio.to_thread.run_sync(in_thread)

    run(main, threads=2)
    assert seen == {"task": "manyio", "worker thread": None}
    assert in_thread() is None


def test_default_mode_runs_one_task_at_a_time() -> None:
    # AnyIO's single-threaded pieces (memory streams, Condition) stay correct by default:
    # the run's tasks share a strand.
    running = 0
    most = 0
    lock = threading.Lock()

    async def worker() -> None:
        nonlocal running, most
        for _ in range(20):
            with lock:
                running += 1
                most = max(most, running)
            time.sleep(0.0005)  # hold the worker, as CPU work would
            with lock:
                running -= 1
            await anyio.sleep(0)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(worker)

    run(main, threads=2)
    assert most == 1


def test_parallel_mode_uses_every_worker() -> None:
    threads_seen: set[int] = set()
    both = threading.Barrier(2, timeout=10)

    async def worker() -> None:
        # Both tasks must be running at once for the barrier to open.
        both.wait()
        threads_seen.add(threading.get_ident())

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(worker)
            tg.start_soon(worker)

    run(main, threads=2, parallel=True)
    assert len(threads_seen) == 2


def test_memory_streams_between_tasks() -> None:
    async def main() -> list[int]:
        send, receive = anyio.create_memory_object_stream[int](4)
        got: list[int] = []

        async def producer() -> None:
            async with send:
                for i in range(1000):
                    await send.send(i)

        async def consumer() -> None:
            async with receive:
                async for item in receive:
                    got.append(item)

        async with anyio.create_task_group() as tg:
            tg.start_soon(producer)
            tg.start_soon(consumer)
        return got

    assert run(main, threads=2) == list(range(1000))


def test_cancel_scopes_deadlines_and_reasons() -> None:
    async def main() -> None:
        with anyio.move_on_after(0.05) as scope:
            await anyio.sleep(5)
        assert scope.cancelled_caught
        with pytest.raises(TimeoutError):
            with anyio.fail_after(0.01):
                await anyio.sleep_forever()
        with anyio.CancelScope() as scope:
            scope.cancel("enough")
            with pytest.raises(anyio.get_cancelled_exc_class(), match="enough"):
                await anyio.lowlevel.checkpoint()
        with pytest.raises(ValueError, match="NaN"):
            anyio.CancelScope(deadline=math.nan)
        assert anyio.current_effective_deadline() == math.inf

    run(main)


def test_task_group_errors_and_host_cancellation() -> None:
    async def boom() -> None:
        await anyio.sleep(0.01)
        raise KeyError("x")

    async def main() -> bool:
        finished = False
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(boom)
                try:
                    await anyio.sleep(10)
                finally:
                    finished = True
        except ExceptionGroup as group:
            assert group.subgroup(KeyError) is not None
        return finished

    assert run(main, threads=2) is True


def test_worker_threads_and_blocking_portal() -> None:
    def blocking(x: int) -> int:
        assert anyio.from_thread.run(anyio.sleep, 0) is None
        return anyio.from_thread.run_sync(lambda: x + 1)

    async def main() -> int:
        return await anyio.to_thread.run_sync(blocking, 1)

    assert run(main, threads=2) == 2
    with anyio.from_thread.start_blocking_portal("manyio", {"threads": 2}) as portal:
        assert portal.call(anyio.sleep, 0) is None
        assert portal.call(lambda: 5) == 5


def test_anyio_code_in_plain_manyio_tasks() -> None:
    # Libraries written on AnyIO work inside manyio.run too; RunVar is per runtime.
    var: anyio.lowlevel.RunVar[str] = anyio.lowlevel.RunVar("var", default="unset")

    async def setter(value: str) -> None:
        await anyio.sleep(0)
        var.set(value)

    async def main() -> tuple[str, str]:
        async with manyio.TaskGroup() as tg:
            tg.start_soon(setter, "from a manyio task")
        first = var.get()
        async with anyio.create_task_group() as tg:
            tg.start_soon(setter, "from an anyio task")
        return first, var.get()

    assert manyio.run(main, threads=2) == ("from a manyio task", "from an anyio task")

    async def fresh() -> str:
        return var.get()

    assert manyio.run(fresh) == "unset"  # a new runtime, new run variables


def test_tcp_echo_over_the_backend() -> None:
    async def main() -> bytes:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def serve(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                async for chunk in stream:
                    await stream.send(chunk.upper())

        async with listener, anyio.create_task_group() as tg:
            tg.start_soon(listener.serve, serve)
            async with await anyio.connect_tcp("127.0.0.1", port) as client:
                await client.send(b"hello")
                reply = await client.receive()
            tg.cancel_scope.cancel()
        return reply

    assert run(main, threads=2) == b"HELLO"


def test_backend_registered_module_is_the_backend() -> None:
    assert sys.modules["anyio._backends._manyio"].backend_class is manyio_anyio.ManyioBackend


@pytest.mark.parametrize("buffer", [0, 1, 64])
def test_memory_streams_are_safe_in_parallel_mode(buffer: int) -> None:
    # Producers and consumers on different workers at once: nothing lost, nothing doubled.
    producers, consumers, per_producer = 4, 4, 2000

    async def main() -> list[int]:
        send, receive = anyio.create_memory_object_stream[int](buffer)
        got: list[list[int]] = [[] for _ in range(consumers)]

        async def produce(first: int, sender: anyio.abc.ObjectSendStream[int]) -> None:
            async with sender:
                for i in range(first, first + per_producer):
                    await sender.send(i)

        async def consume(k: int, receiver: anyio.abc.ObjectReceiveStream[int]) -> None:
            async with receiver:
                async for item in receiver:
                    got[k].append(item)

        async with anyio.create_task_group() as tg:
            async with send, receive:
                for p in range(producers):
                    tg.start_soon(produce, p * per_producer, send.clone())
                for k in range(consumers):
                    tg.start_soon(consume, k, receive.clone())
        return sorted(x for part in got for x in part)

    assert run(main, threads=2, parallel=True) == list(range(producers * per_producer))
