"""``manyio.Queue``: asyncio.Queue's API, safe across worker threads."""

from __future__ import annotations

import asyncio

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_fifo_and_sizes() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue(maxsize=3)
        assert q.maxsize == 3
        assert q.empty()
        assert not q.full()
        for i in range(3):
            await q.put(i)
        assert q.qsize() == 3
        assert q.full()
        assert [await q.get() for _ in range(3)] == [0, 1, 2]
        assert q.empty()

    run(main)


def test_nowait_errors_are_asyncio_s() -> None:
    async def main() -> None:
        q: manyio.Queue[str] = manyio.Queue(1)
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()
        q.put_nowait("a")
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait("b")
        assert q.get_nowait() == "a"

    run(main)


def test_unbounded_queue_never_blocks_put() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue()
        for i in range(1000):
            q.put_nowait(i)
        assert not q.full()
        assert q.qsize() == 1000

    run(main)


def test_get_waits_for_put() -> None:
    async def main() -> None:
        q: manyio.Queue[str] = manyio.Queue()
        task = manyio.spawn(q.get())
        await manyio.sleep(0.01)
        assert not task.done()
        await q.put("hello")
        assert await task == "hello"

    run(main)


def test_put_waits_while_full() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue(1)
        await q.put(1)

        async def putter() -> str:
            await q.put(2)
            return "put"

        task = manyio.spawn(putter())
        await manyio.sleep(0.01)
        assert not task.done()
        assert await q.get() == 1
        assert await task == "put"
        assert await q.get() == 2

    run(main)


def test_task_done_and_join() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue()
        processed: list[int] = []
        await q.join()  # nothing put: returns at once

        async def worker() -> None:
            while True:
                item = await q.get()
                await manyio.sleep(0.001)
                processed.append(item)
                q.task_done()

        async with manyio.TaskGroup() as tg:
            for _ in range(3):
                tg.start_soon(worker)
            for i in range(30):
                await q.put(i)
            with manyio.fail_after(5):
                await q.join()
            assert sorted(processed) == list(range(30))
            tg.cancel_scope.cancel()

    run(main)


def test_task_done_too_many_times() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue()
        with pytest.raises(ValueError):
            q.task_done()
        q.put_nowait(1)
        q.get_nowait()
        q.task_done()
        with pytest.raises(ValueError):
            q.task_done()

    run(main)


def test_join_is_not_broken_by_a_rejected_put_nowait() -> None:
    # asyncio semantics: a put_nowait that raises QueueFull adds no unfinished task, so join()
    # must still return once every item put so far is marked done.
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue(1)
        q.put_nowait(1)
        q.task_done()  # the one item put is done (asyncio allows this before get)
        with pytest.raises(asyncio.QueueFull):
            q.put_nowait(2)
        with manyio.fail_after(2):
            await q.join()

    run(main)


def test_cancelled_getter_does_not_lose_an_item() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue()
        with manyio.move_on_after(0.01):
            await q.get()
        q.put_nowait(5)
        assert q.qsize() == 1
        assert q.get_nowait() == 5

    run(main)


def test_cancelled_putter_does_not_add_its_item() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue(1)
        q.put_nowait(1)
        with manyio.move_on_after(0.01):
            await q.put(2)
        assert q.get_nowait() == 1
        with pytest.raises(asyncio.QueueEmpty):
            q.get_nowait()

    run(main)


def test_shutdown() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue()
        q.put_nowait(1)

        async def getter() -> None:
            with pytest.raises(asyncio.QueueShutDown):
                await q.get()

        await q.get()
        task = manyio.spawn(getter())
        await manyio.sleep(0.02)
        assert not task.done()
        q.shutdown()
        await task
        with pytest.raises(asyncio.QueueShutDown):
            await q.put(2)
        with pytest.raises(asyncio.QueueShutDown):
            q.put_nowait(2)

    run(main)


def test_shutdown_wakes_blocked_putters() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue(1)
        q.put_nowait(1)

        async def putter() -> str:
            try:
                await q.put(2)
            except asyncio.QueueShutDown:
                return "shut down"
            return "put"  # pragma: no cover

        task = manyio.spawn(putter())
        await manyio.sleep(0.02)
        assert not task.done()
        q.shutdown()
        with manyio.fail_after(2):
            assert await task == "shut down"

    run(main)


def test_shutdown_lets_remaining_items_be_drained_unless_immediate() -> None:
    async def main() -> None:
        q: manyio.Queue[int] = manyio.Queue()
        q.put_nowait(1)
        q.put_nowait(2)
        q.shutdown()
        assert await q.get() == 1
        assert q.get_nowait() == 2
        with pytest.raises(asyncio.QueueShutDown):
            q.get_nowait()

        q2: manyio.Queue[int] = manyio.Queue()
        q2.put_nowait(1)
        q2.shutdown(immediate=True)
        assert q2.empty()
        with pytest.raises(asyncio.QueueShutDown):
            await q2.get()
        with manyio.fail_after(2):
            await q2.join()

    run(main)


def test_producers_and_consumers_across_threads() -> None:
    async def producer(q: manyio.Queue[int], base: int) -> None:
        for i in range(300):
            await q.put(base + i)

    async def consumer(q: manyio.Queue[int], out: list[int], n: int) -> None:
        for _ in range(n):
            out.append(await q.get())
            q.task_done()

    async def main() -> list[int]:
        q: manyio.Queue[int] = manyio.Queue(maxsize=4)
        outs: list[list[int]] = [[], [], []]
        async with manyio.TaskGroup() as tg:
            for p in range(3):
                tg.start_soon(producer, q, p * 10_000)
            for c in range(3):
                tg.start_soon(consumer, q, outs[c], 300)
        with manyio.fail_after(5):
            await q.join()
        return [v for out in outs for v in out]

    values = run(main)
    assert sorted(values) == [p * 10_000 + i for p in range(3) for i in range(300)]


async def test_lifo_queue_hands_out_the_newest_item_first() -> None:
    q: manyio.LifoQueue[int] = manyio.LifoQueue()
    for i in range(3):
        q.put_nowait(i)
    assert [q.get_nowait(), await q.get(), q.get_nowait()] == [2, 1, 0]
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
