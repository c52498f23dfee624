"""Blocking code: ``manyio.to_thread`` and ``manyio.from_thread``."""

from __future__ import annotations

import threading
import time

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_to_thread_returns_the_result_and_runs_elsewhere() -> None:
    def work(a: int, b: int) -> tuple[int, int, bool]:
        try:
            manyio.current_task()
        except RuntimeError:
            on_worker = False
        else:  # pragma: no cover - would be a bug
            on_worker = True
        return a + b, threading.get_ident(), on_worker

    async def main() -> None:
        total, ident, on_worker = await manyio.to_thread(work, 2, 3)
        assert total == 5
        assert ident != threading.get_ident()  # not the worker running this task
        assert not on_worker

    run(main)


def test_to_thread_propagates_exceptions() -> None:
    def fail() -> None:
        raise LookupError("from the thread")

    async def main() -> None:
        with pytest.raises(LookupError, match="from the thread"):
            await manyio.to_thread(fail)

    run(main)


def test_to_thread_does_not_block_the_runtime() -> None:
    async def main() -> None:
        release = threading.Event()
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while not release.is_set():
                ticks += 1
                await manyio.sleep(0.001)

        # One worker thread: if to_thread blocked it, the ticker could not run.
        task = manyio.spawn(ticker())

        def blocking() -> str:
            time.sleep(0.1)
            release.set()
            return "slept"

        assert await manyio.to_thread(blocking) == "slept"
        await task
        assert ticks > 5

    run(main, threads=1)


def test_to_thread_calls_run_in_parallel() -> None:
    barrier = threading.Barrier(4, timeout=10)

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            for _ in range(4):
                tg.start_soon(manyio.to_thread, barrier.wait)

    run(main, threads=1)


def test_cancelled_to_thread_waits_for_the_thread_then_raises_at_the_next_checkpoint() -> None:
    log: list[str] = []

    def slow() -> str:
        time.sleep(0.2)
        log.append("thread finished")
        return "result"

    async def main() -> None:
        with manyio.move_on_after(0.02) as scope:
            result = await manyio.to_thread(slow)
            log.append(f"got {result}")
            await manyio.checkpoint()
            log.append("unreachable")  # pragma: no cover
        assert scope.cancelled_caught

    run(main)
    assert log == ["thread finished", "got result"]


def test_abandon_on_cancel_returns_at_once() -> None:
    done = threading.Event()

    def slow() -> None:
        time.sleep(0.3)
        done.set()

    async def main() -> float:
        t0 = time.monotonic()
        with manyio.move_on_after(0.02) as scope:
            # A limiter of its own: the abandoned thread must not hold a default-limiter token
            # while later tests look at that limiter.
            await manyio.to_thread(slow, abandon_on_cancel=True, limiter=manyio.CapacityLimiter(1))
        assert scope.cancelled_caught
        elapsed = time.monotonic() - t0
        assert not done.is_set()
        return elapsed

    assert run(main) < 0.25
    assert done.wait(5)


def test_to_thread_respects_a_limiter() -> None:
    running = 0
    max_running = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, max_running
        with lock:
            running += 1
            max_running = max(max_running, running)
        time.sleep(0.02)
        with lock:
            running -= 1

    async def main() -> None:
        limiter = manyio.CapacityLimiter(2)
        async with manyio.TaskGroup() as tg:
            for _ in range(8):
                tg.start_soon(lambda: manyio.to_thread(work, limiter=limiter))
        assert limiter.borrowed_tokens == 0

    run(main)
    assert max_running == 2


def test_an_abandoned_thread_keeps_its_limiter_token_until_it_finishes() -> None:
    # The limiter bounds the threads in use. A thread the task stopped waiting for is still
    # running, so (as in trio) its token is returned only when it finishes.
    running = 0
    max_running = 0
    lock = threading.Lock()

    def work(duration: float) -> None:
        nonlocal running, max_running
        with lock:
            running += 1
            max_running = max(max_running, running)
        time.sleep(duration)
        with lock:
            running -= 1

    async def main() -> None:
        limiter = manyio.CapacityLimiter(1)
        with manyio.move_on_after(0.02):
            await manyio.to_thread(work, 0.2, limiter=limiter, abandon_on_cancel=True)
        await manyio.to_thread(work, 0.01, limiter=limiter)
        await manyio.sleep(0.3)  # let the abandoned thread finish
        assert limiter.borrowed_tokens == 0

    run(main)
    assert max_running == 1


def test_default_thread_limiter() -> None:
    limiter = manyio.current_default_thread_limiter()
    assert isinstance(limiter, manyio.CapacityLimiter)
    assert limiter is manyio.current_default_thread_limiter()
    assert limiter.total_tokens == 40

    async def main() -> None:
        await manyio.to_thread(time.sleep, 0)
        assert limiter.borrowed_tokens == 0

    run(main)


def test_from_thread_run_calls_back_into_the_runtime() -> None:
    async def on_runtime(x: int) -> tuple[int, bool]:
        await manyio.sleep(0.001)
        return x * 2, manyio.current_task() is not None

    def in_thread() -> tuple[int, bool]:
        return manyio.from_thread.run(on_runtime, 21)

    async def main() -> None:
        assert await manyio.to_thread(in_thread) == (42, True)

    run(main)


def test_from_thread_run_sync_runs_on_a_worker() -> None:
    def on_worker(a: str) -> tuple[str, int]:
        # current_task() only works on a worker thread, inside a task.
        return a.upper(), manyio.current_task().id

    def in_thread() -> tuple[tuple[str, int], int]:
        return manyio.from_thread.run_sync(on_worker, "abc"), threading.get_ident()

    async def main() -> None:
        (value, task_id), thread_ident = await manyio.to_thread(in_thread)
        assert value == "ABC"
        assert task_id != manyio.current_task().id
        assert thread_ident != threading.get_ident()

    run(main)


def test_from_thread_propagates_exceptions() -> None:
    async def fail() -> None:
        await manyio.checkpoint()
        raise ArithmeticError("on the runtime")

    def in_thread() -> str:
        try:
            manyio.from_thread.run(fail)
        except ArithmeticError as e:
            return f"caught {e}"
        return "not raised"  # pragma: no cover

    async def main() -> None:
        assert await manyio.to_thread(in_thread) == "caught on the runtime"

    run(main)


def test_from_thread_can_set_an_event_the_task_waits_on() -> None:
    async def main() -> None:
        event = manyio.Event()

        async def setter() -> None:
            event.set()

        def in_thread() -> None:
            manyio.from_thread.run(setter)

        async with manyio.TaskGroup() as tg:
            tg.start_soon(manyio.to_thread, in_thread)
            with manyio.fail_after(5):
                await event.wait()

    run(main)


def test_from_thread_outside_to_thread_raises() -> None:
    async def noop() -> None:
        pass

    with pytest.raises(RuntimeError, match="to_thread"):
        manyio.from_thread.run(noop)
    with pytest.raises(RuntimeError, match="to_thread"):
        manyio.from_thread.run_sync(print)

    async def main() -> None:
        with pytest.raises(RuntimeError, match="await"):
            manyio.from_thread.run_sync(print)

    run(main)
