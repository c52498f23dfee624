"""Tasks: ``manyio.spawn``, the ``Task`` handle, introspection, checkpoints and sleeping."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


# --- spawn and the Task handle ---------------------------------------------------------------


def test_spawn_and_await_a_task() -> None:
    async def child(x: int) -> int:
        await manyio.sleep(0.001)
        return x + 1

    async def main() -> tuple[int, bool, int, object]:
        task = manyio.spawn(child(41))
        assert isinstance(task, manyio.Task)
        value = await task
        return value, task.done(), task.result(), task.exception()

    assert run(main) == (42, True, 42, None)


def test_task_name_and_id() -> None:
    async def child() -> str:
        await manyio.checkpoint()
        return manyio.current_task().name

    async def main() -> None:
        named = manyio.spawn(child(), name="worker-7")
        anonymous = manyio.spawn(child())
        assert named.name == "worker-7"
        assert await named == "worker-7"
        assert anonymous.name == f"Task-{anonymous.id}"
        assert await anonymous == anonymous.name
        assert isinstance(named.id, int)
        assert named.id != anonymous.id
        named.name = "renamed"
        assert named.name == "renamed"

    run(main)


def test_task_ids_are_unique() -> None:
    async def main() -> None:
        tasks = [manyio.spawn(manyio.sleep(0)) for _ in range(200)]
        for t in tasks:
            await t
        assert len({t.id for t in tasks}) == 200

    run(main)


def test_current_task_is_the_spawned_task_and_parent_id_is_the_spawner() -> None:
    async def child() -> tuple[manyio.Task, int | None]:
        await manyio.checkpoint()
        me = manyio.current_task()
        return me, me.parent_id

    async def main() -> None:
        me = manyio.current_task()
        assert me.parent_id is None  # the root task was started from a plain thread
        task = manyio.spawn(child())
        child_task, parent = await task
        assert child_task is task
        assert parent == me.id
        assert task.parent_id == me.id

    run(main)


def test_result_and_exception_before_the_task_finished_raise_invalid_state() -> None:
    async def main() -> None:
        gate = manyio.Event()
        task = manyio.spawn(gate.wait())
        assert not task.done()
        with pytest.raises(asyncio.InvalidStateError):
            task.result()
        with pytest.raises(asyncio.InvalidStateError):
            task.exception()
        gate.set()
        await task
        assert task.done()
        assert task.result() is None

    run(main)


def test_a_failed_task_raises_its_exception_when_awaited() -> None:
    class Oops(Exception):
        pass

    async def child() -> None:
        await manyio.checkpoint()
        raise Oops("child failed")

    async def main() -> None:
        task = manyio.spawn(child())
        with pytest.raises(Oops) as info:
            await task
        assert task.done()
        assert not task.cancelled()
        assert task.exception() is info.value
        with pytest.raises(Oops):
            task.result()

    run(main)


def test_several_tasks_can_await_the_same_task() -> None:
    async def slow() -> str:
        await manyio.sleep(0.02)
        return "shared"

    async def waiter(task: manyio.Task) -> str:
        return await task

    async def main() -> None:
        task = manyio.spawn(slow())
        waiters = [manyio.spawn(waiter(task)) for _ in range(10)]
        assert [await w for w in waiters] == ["shared"] * 10
        assert await task == "shared"  # and again once finished

    run(main)


def test_awaiting_a_finished_task_checks_for_cancellation_without_yielding() -> None:
    # As with a finished asyncio future, the value comes back at once: on one worker, a task
    # that runs whenever the scheduler gets a turn never runs meanwhile. Inside a cancelled
    # scope the await raises, and the outcome stays there for later.
    async def child() -> str:
        return "done"

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await manyio.checkpoint()

    async def main() -> None:
        task = manyio.spawn(child())
        assert await task == "done"
        other = manyio.spawn(ticker())
        await manyio.checkpoint()
        before = ticks
        assert before > 0
        for _ in range(100):
            assert await task == "done"
        assert ticks == before
        with manyio.CancelScope() as scope:
            scope.cancel("stop")
            with pytest.raises(manyio.Cancelled, match="stop"):
                await task
        assert task.result() == "done"
        other.cancel()

    run(main, threads=1)


def test_get_coro_while_running_and_after() -> None:
    async def main() -> None:
        gate = manyio.Event()
        coro = gate.wait()
        task = manyio.spawn(_await(coro))
        assert task.get_coro() is not None
        gate.set()
        await task
        assert task.get_coro() is None

    run(main)


async def _await(awaitable):  # type: ignore[no-untyped-def]
    return await awaitable


def test_task_repr_shows_name_and_state() -> None:
    async def fail() -> None:
        raise ValueError

    async def main() -> None:
        gate = manyio.Event()
        running = manyio.spawn(gate.wait(), name="waiting-one")
        assert "waiting-one" in repr(running)
        assert "running" in repr(running)
        gate.set()
        await running
        assert "done" in repr(running)
        failed = manyio.spawn(fail())
        with pytest.raises(ValueError):
            await failed
        assert "failed" in repr(failed)
        cancelled = manyio.spawn(manyio.Event().wait())
        await manyio.sleep(0.01)
        cancelled.cancel()
        with pytest.raises(manyio.Cancelled):
            await cancelled
        assert "cancelled" in repr(cancelled)

    run(main)


# --- cancelling tasks ------------------------------------------------------------------------


def test_cancel_a_sleeping_task() -> None:
    log: list[str] = []

    async def child() -> None:
        try:
            await manyio.sleep(100)
        finally:
            log.append("finally")

    async def main() -> None:
        task = manyio.spawn(child())
        await manyio.sleep(0.01)
        assert not task.cancel_called()
        t0 = time.monotonic()
        task.cancel()
        assert task.cancel_called()
        with pytest.raises(manyio.Cancelled):
            await task
        assert time.monotonic() - t0 < 2
        assert task.done()
        assert task.cancelled()
        assert isinstance(task.exception(), manyio.Cancelled)

    run(main)
    assert log == ["finally"]


def test_cancel_before_the_task_started_runs_it_to_its_first_checkpoint() -> None:
    # As in trio: a task always starts, so the try/finally it opens is honoured; the
    # cancellation is raised at its first checkpoint.
    ran: list[str] = []

    async def child() -> None:
        ran.append("body")
        try:
            await manyio.checkpoint()
            ran.append("after checkpoint")  # pragma: no cover - must not happen
        finally:
            ran.append("finally")

    async def main() -> None:
        task = manyio.spawn(child())
        task.cancel()  # the task is still queued: it has not run yet
        with pytest.raises(manyio.Cancelled):
            await task
        assert task.cancelled()

    run(main, threads=1)
    assert ran == ["body", "finally"]


def test_cancel_a_finished_task_does_nothing() -> None:
    async def main() -> None:
        task = manyio.spawn(_await(manyio.sleep(0)))
        await task
        task.cancel()
        assert not task.cancelled()
        assert task.result() is None

    run(main)


def test_cancellation_is_level_triggered_for_tasks() -> None:
    caught: list[int] = []

    async def stubborn() -> str:
        for i in range(3):
            try:
                await manyio.checkpoint()
            except manyio.Cancelled:
                caught.append(i)
        return "gave up catching"

    async def main() -> None:
        gate = manyio.Event()

        async def child() -> str:
            # Shielded, so the cancel lands in stubborn() whichever thread sees it first.
            with manyio.CancelScope(shield=True):
                await gate.wait()
            return await stubborn()

        task = manyio.spawn(child())
        await manyio.sleep(0.01)
        task.cancel()
        gate.set()
        # The task swallowed every Cancelled; every checkpoint raised again.
        assert await task == "gave up catching"
        assert not task.cancelled()

    run(main)
    assert caught == [0, 1, 2]


def test_cancelling_a_task_busy_on_another_thread_takes_effect_at_its_next_checkpoint() -> None:
    busy = threading.Event()
    release = threading.Event()
    log: list[str] = []

    async def cruncher() -> None:
        busy.set()
        # Busy without checkpoints: nothing can interrupt this loop.
        while not release.is_set():
            time.sleep(0.001)
        log.append("loop finished")
        try:
            await manyio.checkpoint()
            log.append("after checkpoint")  # pragma: no cover - must not happen
        except manyio.Cancelled:
            log.append("cancelled at checkpoint")
            raise

    async def main() -> None:
        task = manyio.spawn(cruncher())
        while not busy.is_set():
            await manyio.sleep(0.001)
        task.cancel()
        await manyio.sleep(0.02)
        assert not task.done()  # still crunching
        release.set()
        with pytest.raises(manyio.Cancelled):
            await task

    run(main, threads=2)
    assert log == ["loop finished", "cancelled at checkpoint"]


def test_awaiting_task_can_be_cancelled_without_cancelling_the_task() -> None:
    async def slow() -> str:
        await manyio.sleep(0.1)
        return "done anyway"

    async def main() -> None:
        task = manyio.spawn(slow())
        with manyio.move_on_after(0.01) as scope:
            await task
        assert scope.cancelled_caught
        assert not task.done()
        assert await task == "done anyway"

    run(main)


# --- introspection ---------------------------------------------------------------------------


def test_all_tasks_lists_live_tasks_only(wait_until) -> None:
    async def main() -> None:
        me = manyio.current_task()
        assert manyio.all_tasks() == [me]
        gate = manyio.Event()
        children = [manyio.spawn(gate.wait()) for _ in range(5)]
        tasks = manyio.all_tasks()
        assert me in tasks
        assert all(c in tasks for c in children)
        assert len(tasks) == 6
        assert manyio.stats()["live_tasks"] == 6
        gate.set()
        for c in children:
            await c
        await wait_until(lambda: manyio.stats()["live_tasks"] == 1)
        assert manyio.all_tasks() == [me]

    run(main)


def test_stats_has_the_documented_keys() -> None:
    async def main() -> dict[str, object]:
        return manyio.stats()

    stats = run(main, threads=3)
    keys = ("workers", "run_queue_depths", "steals", "parks", "poller_wakeups", "live_tasks", "timers")
    for key in keys:
        assert key in stats
    assert stats["workers"] == 3
    assert isinstance(stats["run_queue_depths"], list)
    assert len(stats["run_queue_depths"]) == 3
    assert stats["live_tasks"] == 1
    assert stats["timers"] == 0
    assert isinstance(stats["steals"], int)
    assert isinstance(stats["parks"], int)


def test_work_spreads_to_other_workers() -> None:
    idents: set[int] = set()
    lock = threading.Lock()

    async def spin() -> None:
        for _ in range(20):
            with lock:
                idents.add(threading.get_ident())
            time.sleep(0.001)  # hold the worker so the other one has to steal
            await manyio.checkpoint()

    async def main() -> dict[str, object]:
        async with manyio.TaskGroup() as tg:
            for _ in range(8):
                tg.start_soon(spin)
        return manyio.stats()

    stats = run(main, threads=2)
    assert len(idents) == 2
    assert stats["steals"] > 0


def test_a_task_hogging_one_worker_does_not_stall_timers_or_the_other_worker() -> None:
    # One worker is stuck in a task that never checkpoints; the other must keep running
    # tasks and firing timers.
    async def main() -> float:
        done = threading.Event()
        hogging = threading.Event()

        async def hog() -> None:
            hogging.set()
            t0 = time.monotonic()
            while not done.is_set() and time.monotonic() - t0 < 5:
                time.sleep(0.001)

        async def sleeper() -> float:
            t0 = time.monotonic()
            for _ in range(10):
                await manyio.sleep(0.005)
            return time.monotonic() - t0

        h = manyio.spawn(hog())
        while not hogging.is_set():
            await manyio.sleep(0.001)
        try:
            return await manyio.spawn(sleeper())
        finally:
            done.set()
            await h

    for _ in range(5):
        assert run(main, threads=2) < 2


# --- checkpoints -------------------------------------------------------------------------------


def test_yield_now_is_checkpoint() -> None:
    assert manyio.yield_now is manyio.checkpoint


def test_checkpoint_lets_other_tasks_run() -> None:
    order: list[str] = []

    async def worker(tag: str) -> None:
        for i in range(3):
            order.append(f"{tag}{i}")
            await manyio.yield_now()

    async def main() -> None:
        a = manyio.spawn(worker("a"))
        b = manyio.spawn(worker("b"))
        await a
        await b

    run(main, threads=1)
    assert sorted(order) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    # On one worker thread, both ran before either finished: they interleaved.
    assert order.index("b0") < order.index("a2")
    assert order.index("a0") < order.index("b2")


# --- sleeping and the clock -----------------------------------------------------------------


def test_sleep_waits_at_least_the_duration() -> None:
    async def main() -> float:
        t0 = time.monotonic()
        await manyio.sleep(0.05)
        return time.monotonic() - t0

    elapsed = run(main)
    assert 0.049 <= elapsed < 2


@pytest.mark.parametrize("bad", [-1, -0.001, math.nan])
def test_sleep_rejects_negative_and_nan(bad: float) -> None:
    async def main() -> None:
        with pytest.raises(ValueError):
            await manyio.sleep(bad)

    run(main)


def test_sleep_zero_is_a_checkpoint() -> None:
    async def main() -> None:
        with manyio.CancelScope() as scope:
            scope.cancel()
            await manyio.sleep(0)
            pytest.fail("sleep(0) in a cancelled scope did not raise")  # pragma: no cover
        assert scope.cancelled_caught

    run(main)


def test_sleep_until() -> None:
    async def main() -> None:
        deadline = manyio.current_time() + 0.05
        await manyio.sleep_until(deadline)
        assert manyio.current_time() >= deadline
        # A deadline in the past returns at once (still a checkpoint).
        t0 = time.monotonic()
        await manyio.sleep_until(manyio.current_time() - 10)
        assert time.monotonic() - t0 < 1
        with pytest.raises(ValueError):
            manyio.sleep_until(math.nan)

    run(main)


@pytest.mark.parametrize("forever", ["sleep", "sleep_until"])
def test_infinite_sleeps_can_be_cancelled_and_leave_no_timer(forever: str) -> None:
    async def main() -> None:
        with manyio.move_on_after(0.02) as scope:
            if forever == "sleep":
                await manyio.sleep(math.inf)
            else:
                await manyio.sleep_until(math.inf)
        assert scope.cancelled_caught
        assert manyio.stats()["timers"] == 0

    run(main)


def test_current_time_uses_the_time_monotonic_scale() -> None:
    async def main() -> None:
        a = manyio.current_time()
        b = time.monotonic()
        c = manyio.current_time()
        assert abs(a - b) < 0.5
        assert a <= c

    run(main)
    # It also works outside a runtime.
    assert abs(manyio.current_time() - time.monotonic()) < 0.5


def test_many_concurrent_sleeps_wake_in_time() -> None:
    async def sleeper(d: float) -> float:
        t0 = time.monotonic()
        await manyio.sleep(d)
        return time.monotonic() - t0

    async def main() -> list[tuple[float, float]]:
        durations = [0.01 * (i % 5) for i in range(100)]
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(sleeper(d)) for d in durations]
        return [(d, t.result()) for d, t in zip(durations, tasks, strict=True)]

    for requested, elapsed in run(main):
        assert requested - 0.001 <= elapsed < requested + 2


# --- timers are cleaned up --------------------------------------------------------------------


def test_timers_are_removed_when_a_sleep_is_cancelled(wait_until) -> None:
    async def sleeper() -> None:
        await manyio.sleep(1000)

    async def main() -> None:
        tasks = [manyio.spawn(sleeper()) for _ in range(50)]
        await wait_until(lambda: manyio.stats()["timers"] == 50)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with pytest.raises(manyio.Cancelled):
                await t
        assert manyio.stats()["timers"] == 0

    run(main)


def test_timers_are_removed_when_a_wait_ends_early() -> None:
    async def main() -> None:
        # A long sleep interrupted by a short deadline: both timers must go.
        with manyio.move_on_after(0.01):
            await manyio.sleep(1000)
        assert manyio.stats()["timers"] == 0
        # A deadline scope left before its deadline.
        with manyio.move_on_after(1000):
            await manyio.sleep(0)
        assert manyio.stats()["timers"] == 0
        with manyio.CancelScope(deadline=manyio.current_time() + 1000):
            pass
        assert manyio.stats()["timers"] == 0
        # A deadline moved around while entered leaves only one timer, then none.
        with manyio.CancelScope(deadline=manyio.current_time() + 500) as scope:
            scope.deadline = manyio.current_time() + 600
            scope.reschedule(manyio.current_time() + 700)
            assert manyio.stats()["timers"] == 1
            scope.reschedule(None)
            assert manyio.stats()["timers"] == 0
        assert manyio.stats()["timers"] == 0

    run(main)


def test_task_class_is_subscriptable_like_its_stub() -> None:
    # _core.pyi declares ``class Task(Generic[T])``, so ``manyio.Task[int]`` type-checks and
    # must also work at runtime (e.g. in ``list[manyio.Task[int]]`` outside annotations).
    alias = manyio.Task[int]
    assert alias is not None
