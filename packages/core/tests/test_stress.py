"""Stress tests: many tasks on two worker threads, exact results, no leaks, no hangs.

Each test repeats its scenario a few times; together they stay well under ten seconds on a
two-core machine.
"""

from __future__ import annotations

import random
import threading
import time

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2
REPEAT = 3


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_event_ping_pong_100k() -> None:
    rounds = 50_000  # two events per round: 100k set/wait pairs

    async def main() -> tuple[int, int]:
        ping, pong = manyio.Event(), manyio.Event()
        pings = pongs = 0

        async def pinger() -> None:
            nonlocal pings
            for _ in range(rounds):
                ping.set()
                await pong.wait()
                pong.clear()
                pings += 1

        async def ponger() -> None:
            nonlocal pongs
            for _ in range(rounds):
                await ping.wait()
                ping.clear()
                pongs += 1
                pong.set()

        async with manyio.TaskGroup() as tg:
            tg.start_soon(ponger)
            tg.start_soon(pinger)
        return pings, pongs

    for _ in range(REPEAT):
        assert run(main) == (rounds, rounds)


def test_one_shot_event_chain_across_threads() -> None:
    # Every hop uses a fresh Event, so each one is a real park and a real wake-up.
    hops = 20_000
    ring = 4

    async def main() -> list[int]:
        events = [manyio.Event() for _ in range(hops + 1)]
        counts = [0] * ring

        async def runner(k: int) -> None:
            for i in range(k, hops, ring):
                await events[i].wait()
                counts[k] += 1
                events[i + 1].set()

        async with manyio.TaskGroup() as tg:
            for k in range(ring):
                tg.start_soon(runner, k)
            events[0].set()
            await events[hops].wait()
        return counts

    for _ in range(REPEAT):
        assert run(main) == [hops // ring] * ring


def test_ten_thousand_tasks_increment_under_a_lock() -> None:
    n = 10_000

    async def main() -> int:
        lock = manyio.Lock()
        counter = 0

        async def increment() -> None:
            nonlocal counter
            async with lock:
                value = counter
                await manyio.checkpoint()  # lets others run: without the lock updates are lost
                counter = value + 1

        async with manyio.TaskGroup() as tg:
            for _ in range(n):
                tg.start_soon(increment)
        assert not lock.locked()
        return counter

    for _ in range(REPEAT):
        assert run(main) == n


def test_mpmc_channel_checksum() -> None:
    producers, consumers, per_producer = 6, 4, 5_000

    async def main() -> tuple[int, int, int]:
        send, receive = manyio.channel(16)
        totals: list[tuple[int, int, int]] = []

        async def producer(s: manyio.SendChannel[int], base: int) -> None:
            async with s:
                for i in range(per_producer):
                    await s.send(base + i)

        async def consumer(r: manyio.ReceiveChannel[int]) -> None:
            count = total = xor = 0
            async with r:
                async for v in r:
                    count += 1
                    total += v
                    xor ^= v * 2654435761 % 2**32
            totals.append((count, total, xor))

        async with manyio.TaskGroup() as tg:
            for p in range(producers):
                tg.start_soon(producer, send.clone(), p * 1_000_000)
            for _ in range(consumers):
                tg.start_soon(consumer, receive.clone())
            send.close()
            receive.close()
        count = sum(t[0] for t in totals)
        total = sum(t[1] for t in totals)
        xor = 0
        for t in totals:
            xor ^= t[2]
        return count, total, xor

    values = [p * 1_000_000 + i for p in range(producers) for i in range(per_producer)]
    expected_xor = 0
    for v in values:
        expected_xor ^= v * 2654435761 % 2**32
    for _ in range(REPEAT):
        assert run(main) == (len(values), sum(values), expected_xor)


def test_channel_values_are_never_lost_to_cancelled_receivers() -> None:
    n = 3_000

    async def main() -> tuple[list[int], int]:
        send, receive = manyio.channel(0)
        got: list[int] = []
        timeouts = 0

        async def impatient_receiver() -> None:
            nonlocal timeouts
            while True:
                with manyio.move_on_after(0.0005) as scope:
                    try:
                        got.append(await receive.receive())
                    except manyio.EndOfChannel:
                        return
                if scope.cancelled_caught:
                    timeouts += 1

        async def sender() -> None:
            async with send:
                for i in range(n):
                    await send.send(i)
                    if i % 97 == 0:
                        await manyio.sleep(0.001)

        async with manyio.TaskGroup() as tg:
            for _ in range(3):
                tg.start_soon(impatient_receiver)
            tg.start_soon(sender)
        return got, timeouts

    for _ in range(REPEAT):
        got, timeouts = run(main)
        assert sorted(got) == list(range(n))
        assert timeouts > 0  # the scenario really raced cancellations against deliveries


def test_queue_producers_consumers_with_join() -> None:
    async def main() -> int:
        q: manyio.Queue[int] = manyio.Queue(maxsize=8)
        total = []

        async def producer(base: int) -> None:
            for i in range(2_000):
                await q.put(base + i)

        async def consumer() -> None:
            while True:
                v = await q.get()
                total.append(v)
                q.task_done()

        async with manyio.TaskGroup() as tg:
            for _ in range(3):
                tg.start_soon(consumer)
            async with manyio.TaskGroup() as producers:
                for p in range(4):
                    producers.start_soon(producer, p * 10_000)
            with manyio.fail_after(10):
                await q.join()
            tg.cancel_scope.cancel()
        return sum(total)

    expected = sum(p * 10_000 + i for p in range(4) for i in range(2_000))
    for _ in range(REPEAT):
        assert run(main) == expected


@pytest.mark.timeout(60)
def test_random_cancellation_at_checkpoints() -> None:
    """Many tasks doing random work under random scopes, cancelled at random.

    Every task's finally block must run, shared primitives must end up in their initial
    state, and nothing may be left behind: no tasks, no timers.
    """

    async def main(seed: int) -> dict[str, int]:
        rng = random.Random(seed)
        lock = manyio.Lock()
        sem = manyio.Semaphore(3)
        send, receive = manyio.channel(4)
        started: list[int] = []
        finalized: list[int] = []
        scopes: list[manyio.CancelScope] = []
        spawned: list[manyio.Task] = []
        rng_lock = threading.Lock()

        def rand() -> float:
            with rng_lock:
                return rng.random()

        async def victim(i: int) -> None:
            started.append(i)
            try:
                for _ in range(int(rand() * 30) + 1):
                    op = rand()
                    if op < 0.2:
                        await manyio.checkpoint()
                    elif op < 0.35:
                        await manyio.sleep(rand() * 0.002)
                    elif op < 0.5:
                        with manyio.move_on_after(rand() * 0.002):
                            await manyio.sleep(rand() * 0.004)
                    elif op < 0.6:
                        scope = manyio.CancelScope()
                        scopes.append(scope)
                        with scope:
                            await manyio.sleep(rand() * 0.003)
                            await manyio.checkpoint()
                    elif op < 0.7:
                        async with lock:
                            await manyio.checkpoint()
                    elif op < 0.8:
                        async with sem:
                            await manyio.sleep(rand() * 0.001)
                    elif op < 0.9:
                        with manyio.move_on_after(rand() * 0.002):
                            if rand() < 0.5:
                                await send.send(i)
                            else:
                                await receive.receive()
                    else:
                        with manyio.CancelScope(shield=True):
                            await manyio.sleep(rand() * 0.001)
                        await manyio.checkpoint()
            finally:
                finalized.append(i)

        async def chaos(stop: manyio.Event) -> None:
            while not stop.is_set():
                await manyio.sleep(rand() * 0.002)
                r = rand()
                if r < 0.4 and spawned:
                    spawned[int(rand() * len(spawned))].cancel()
                elif r < 0.8 and scopes:
                    scopes[int(rand() * len(scopes))].cancel()
                else:
                    await manyio.checkpoint()

        stop = manyio.Event()
        n = 0
        async with manyio.TaskGroup() as outer:
            outer.start_soon(chaos, stop)
            for _round in range(4):
                async with manyio.TaskGroup() as tg:
                    for _ in range(60):
                        tg.start_soon(victim, n)
                        n += 1
                    for _ in range(30):
                        spawned.append(manyio.spawn(victim(n)))
                        n += 1
                    if rand() < 0.5:
                        await manyio.sleep(rand() * 0.005)
                        tg.cancel_scope.cancel()
                for t in spawned:
                    try:
                        await t
                    except manyio.Cancelled:
                        pass
            stop.set()
        # Drain the channel buffer so nothing keeps values around.
        while True:
            try:
                receive.receive_nowait()
            except manyio.WouldBlock:
                break

        me = manyio.current_task()
        assert manyio.all_tasks() == [me]
        stats = manyio.stats()
        assert stats["live_tasks"] == 1
        assert stats["timers"] == 0
        assert not lock.locked()
        assert lock.statistics()["tasks_waiting"] == 0
        assert sem.value == 3
        assert sem.statistics()["tasks_waiting"] == 0
        assert send.statistics()["tasks_waiting_send"] == 0
        assert send.statistics()["tasks_waiting_receive"] == 0
        return {
            "started": len(started),
            "finalized": len(finalized),
            "unique_finalized": len(set(finalized)),
            "cancelled": sum(t.cancelled() for t in spawned),
            "n": n,
        }

    t0 = time.monotonic()
    for seed in range(REPEAT):
        result = run(lambda seed=seed: main(seed))
        assert result["finalized"] == result["started"]
        assert result["unique_finalized"] == result["started"]
        assert result["started"] <= result["n"]
    assert time.monotonic() - t0 < 30


@pytest.mark.timeout(60)
def test_cancel_storm_against_lock_and_semaphore_waiters() -> None:
    """Waiters are cancelled while permits are handed over: no permit may be lost or doubled."""

    async def main(seed: int) -> tuple[int, int]:
        rng = random.Random(seed)
        lock = manyio.Lock()
        sem = manyio.Semaphore(2)
        holders = 0
        max_holders = 0
        inside_lock = 0
        violations = 0
        guard = threading.Lock()

        async def user() -> None:
            nonlocal holders, max_holders, inside_lock, violations
            for _ in range(20):
                with manyio.move_on_after(rng.random() * 0.001):
                    async with sem:
                        with guard:
                            holders += 1
                            max_holders = max(max_holders, holders)
                        try:
                            async with lock:
                                with guard:
                                    inside_lock += 1
                                    if inside_lock != 1:
                                        violations += 1
                                try:
                                    await manyio.checkpoint()
                                finally:
                                    with guard:
                                        inside_lock -= 1
                        finally:
                            with guard:
                                holders -= 1

        async with manyio.TaskGroup() as tg:
            for _ in range(50):
                tg.start_soon(user)
        assert not lock.locked()
        assert sem.value == 2
        assert lock.statistics()["tasks_waiting"] == 0
        assert sem.statistics()["tasks_waiting"] == 0
        return max_holders, violations

    for seed in range(REPEAT):
        max_holders, violations = run(lambda seed=seed: main(seed))
        assert max_holders <= 2
        assert violations == 0


@pytest.mark.timeout(60)
def test_nested_task_group_trees_with_random_failures() -> None:
    """A tree of nested task groups; random leaves fail. Errors come out as nested groups,
    every finally runs, and nothing is left behind."""

    async def main(seed: int) -> tuple[int, int, int]:
        rng = random.Random(seed)
        failing = {i for i in range(256) if rng.random() < 0.03} or {17}
        finalized: list[int] = []
        raised: list[int] = []

        async def leaf(i: int) -> None:
            try:
                for _ in range(3):
                    await manyio.sleep(0.0005 * (i % 4))
                if i in failing:
                    raised.append(i)
                    raise ValueError(i)
            finally:
                finalized.append(i)

        async def node(depth: int, index: int) -> None:
            async with manyio.TaskGroup() as tg:
                for k in range(4):
                    if depth == 3:
                        tg.start_soon(leaf, index * 4 + k)
                    else:
                        tg.start_soon(node, depth + 1, index * 4 + k)

        def leaves(exc: BaseException) -> list[int]:
            if isinstance(exc, BaseExceptionGroup):
                return [v for e in exc.exceptions for v in leaves(e)]
            assert isinstance(exc, ValueError)
            return [exc.args[0]]

        try:
            await node(0, 0)
        except BaseExceptionGroup as eg:
            reported = leaves(eg)
        else:  # pragma: no cover - at least one leaf always fails
            reported = []
        assert sorted(reported) == sorted(raised)
        assert manyio.all_tasks() == [manyio.current_task()]
        assert manyio.stats()["timers"] == 0
        return len(finalized), len(set(finalized)), len(reported)

    for seed in range(REPEAT):
        started, unique, reported = run(lambda seed=seed: main(seed))
        assert started == unique == 256
        assert reported >= 1


@pytest.mark.timeout(60)
def test_to_thread_storm_with_cancellation() -> None:
    async def main(seed: int) -> tuple[int, int]:
        rng = random.Random(seed)
        limiter = manyio.CapacityLimiter(4)
        finished = []
        results = []

        def work(i: int) -> int:
            time.sleep(rng.random() * 0.002)
            finished.append(i)
            return i

        async def caller(i: int) -> None:
            with manyio.move_on_after(rng.random() * 0.004):
                results.append(
                    await manyio.to_thread(work, i, limiter=limiter, abandon_on_cancel=rng.random() < 0.3)
                )

        async with manyio.TaskGroup() as tg:
            for i in range(200):
                tg.start_soon(caller, i)
        # Abandoned threads may still run (and hold their tokens) for a moment.
        deadline = time.monotonic() + 5
        while limiter.borrowed_tokens and time.monotonic() < deadline:
            await manyio.sleep(0.005)
        assert limiter.borrowed_tokens == 0
        assert set(results) <= set(finished)
        return len(results), len(set(results))

    for seed in range(REPEAT):
        n, unique = run(lambda seed=seed: main(seed))
        assert n == unique


def test_spawn_and_await_many_short_tasks() -> None:
    async def leaf(i: int) -> int:
        await manyio.checkpoint()
        return i

    async def main() -> int:
        total = 0
        for _ in range(10):
            tasks = [manyio.spawn(leaf(i)) for i in range(1_000)]
            for t in tasks:
                total += await t
        assert manyio.stats()["live_tasks"] == 1
        return total

    for _ in range(REPEAT):
        assert run(main) == 10 * sum(range(1_000))


def test_runtime_shutdown_with_many_live_tasks() -> None:
    finalized: list[int] = []

    async def forever(i: int) -> None:
        try:
            while True:
                await manyio.sleep(0.001 * (i % 3))
        finally:
            finalized.append(i)

    async def main() -> None:
        for i in range(500):
            manyio.spawn(forever(i))
        await manyio.sleep(0.02)

    for _ in range(REPEAT):
        finalized.clear()
        run(main)
        assert sorted(finalized) == list(range(500))
