"""Synchronisation primitives: Event, Lock, Semaphore, BoundedSemaphore, Condition, Barrier,
CapacityLimiter."""

from __future__ import annotations

import math
import threading
import time
import types

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


# --- Event -----------------------------------------------------------------------------------


def test_event_wakes_every_waiter(wait_until) -> None:
    async def main() -> None:
        event = manyio.Event()
        assert not event.is_set()
        woken: list[int] = []

        async def waiter(i: int) -> None:
            await event.wait()
            woken.append(i)

        async with manyio.TaskGroup() as tg:
            for i in range(10):
                tg.start_soon(waiter, i)
            await wait_until(lambda: event.statistics() == 10)
            await manyio.sleep(0.01)
            assert woken == []
            event.set()
            assert event.is_set()
        assert sorted(woken) == list(range(10))
        assert event.statistics() == 0
        # Once set, waits return at once.
        await event.wait()
        event.set()  # idempotent

    run(main)


def test_event_clear() -> None:
    async def main() -> None:
        event = manyio.Event()
        event.set()
        event.clear()
        assert not event.is_set()
        with manyio.move_on_after(0.02) as scope:
            await event.wait()
        assert scope.cancelled_caught

    run(main)


def test_event_set_from_a_plain_thread_wakes_a_task() -> None:
    async def main() -> float:
        event = manyio.Event()

        def setter() -> None:
            time.sleep(0.05)
            event.set()

        thread = threading.Thread(target=setter)
        t0 = time.monotonic()
        thread.start()
        with manyio.fail_after(5):
            await event.wait()
        elapsed = time.monotonic() - t0
        thread.join()
        return elapsed

    assert 0.04 < run(main) < 5


def test_event_set_outside_any_runtime_before_waiting() -> None:
    event = manyio.Event()
    event.set()

    async def main() -> str:
        await event.wait()
        return "ok"

    assert run(main) == "ok"


def test_cancelled_event_wait_leaves_no_waiter_behind() -> None:
    async def main() -> None:
        event = manyio.Event()
        for _ in range(5):
            with manyio.move_on_after(0.001):
                await event.wait()
        assert event.statistics() == 0

    run(main)


# --- Lock ------------------------------------------------------------------------------------


def test_lock_mutual_exclusion() -> None:
    inside = 0
    max_inside = 0
    total = 0

    async def worker(lock: manyio.Lock) -> None:
        nonlocal inside, max_inside, total
        for _ in range(20):
            async with lock:
                inside += 1
                max_inside = max(max_inside, inside)
                value = total
                await manyio.checkpoint()
                total = value + 1
                inside -= 1

    async def main() -> None:
        lock = manyio.Lock()
        async with manyio.TaskGroup() as tg:
            for _ in range(10):
                tg.start_soon(worker, lock)
        assert not lock.locked()

    run(main)
    assert max_inside == 1
    assert total == 200


def test_lock_is_fair_fifo(wait_until) -> None:
    order: list[int] = []

    async def main() -> None:
        lock = manyio.Lock()
        await lock.acquire()

        async def contender(i: int) -> None:
            async with lock:
                order.append(i)
                await manyio.checkpoint()

        async with manyio.TaskGroup() as tg:
            for i in range(8):
                tg.start_soon(contender, i)
                # Let it queue up before starting the next one.
                await wait_until(lambda i=i: lock.statistics()["tasks_waiting"] == i + 1)
            lock.release()

    run(main)
    assert order == list(range(8))


def test_lock_acquire_nowait_and_locked() -> None:
    async def main() -> None:
        lock = manyio.Lock()
        assert not lock.locked()
        lock.acquire_nowait()
        assert lock.locked()
        assert lock.statistics()["owner"] is manyio.current_task()

        async def other() -> None:
            with pytest.raises(manyio.WouldBlock):
                lock.acquire_nowait()

        await manyio.spawn(other())
        lock.release()
        assert not lock.locked()

    run(main)


def test_lock_release_by_a_non_owner_raises() -> None:
    async def main() -> None:
        lock = manyio.Lock()
        with pytest.raises(RuntimeError):
            lock.release()  # not held at all
        await lock.acquire()

        async def intruder() -> None:
            lock.release()

        with pytest.raises(RuntimeError, match="not held by this task"):
            await manyio.spawn(intruder())
        assert lock.locked()
        lock.release()

    run(main)


def test_lock_is_not_reentrant() -> None:
    async def main() -> None:
        lock = manyio.Lock()
        async with lock:
            with pytest.raises(RuntimeError, match="already holds"):
                lock.acquire_nowait()
            with pytest.raises(RuntimeError, match="already holds"):
                await lock.acquire()

    run(main)


async def _held_with_a_queued_waiter(fair: bool) -> tuple[manyio.Lock, list[str], manyio.Task]:
    """A lock this task holds and a task queued for it, which notes in the list when it gets
    the lock (one thread: it runs only at this task's checkpoints)."""
    lock = manyio.Lock(fair=fair)
    await lock.acquire()
    got: list[str] = []

    async def waiter() -> None:
        async with lock:
            got.append("waiter")

    task = manyio.spawn(waiter())
    await _queued(lock)
    return lock, got, task


async def _queued(lock: manyio.Lock, n: int = 1) -> None:
    """Lets just-spawned acquirers queue (one thread) until ``n`` wait, well within the 1 ms
    an unfair lock lets them be overtaken (a sleeping poll would take longer)."""
    while lock.statistics()["tasks_waiting"] < n:
        await manyio.checkpoint()


def test_lock_handoff_prevents_barging() -> None:
    async def main() -> None:
        lock, got, task = await _held_with_a_queued_waiter(fair=True)
        lock.release()
        # The lock went straight to the waiter: nobody can barge in.
        assert lock.locked()
        with pytest.raises(manyio.WouldBlock):
            lock.acquire_nowait()
        await task
        assert got == ["waiter"]
        assert not lock.locked()

    run(main, threads=1)  # one thread: the waiter cannot run before main's next checkpoint


def test_cancelled_lock_waiter_does_not_take_the_lock(wait_until) -> None:
    async def main() -> None:
        lock = manyio.Lock()
        await lock.acquire()

        async def impatient() -> bool:
            with manyio.move_on_after(0.02) as scope:
                await lock.acquire()
            return scope.cancelled_caught

        assert await manyio.spawn(impatient()) is True
        assert lock.statistics()["tasks_waiting"] == 0

        async def patient() -> str:
            async with lock:
                return "got it"

        task = manyio.spawn(patient())
        await wait_until(lambda: lock.statistics()["tasks_waiting"] == 1)
        lock.release()
        assert await task == "got it"
        assert not lock.locked()

    run(main)


def test_lock_acquire_in_a_cancelled_scope_raises_and_leaves_the_lock_free() -> None:
    # acquire() is a checkpoint even when the lock is free: a cancelled task gets Cancelled,
    # not the lock, and nothing is left held or queued.
    async def main() -> None:
        lock = manyio.Lock()
        with manyio.CancelScope() as scope:
            scope.cancel()
            await lock.acquire()
        assert scope.cancelled_caught
        assert not lock.locked()
        assert lock.statistics() == {"locked": False, "owner": None, "tasks_waiting": 0}
        async with lock:
            assert lock.statistics()["owner"] is manyio.current_task()

    run(main)


def test_lock_acquire_unchecked_takes_a_free_lock_even_when_cancelled() -> None:
    # asyncio's semantics, for the shim: no checkpoint on a free lock, so a cancelled task's
    # `finally` can still take it; a taken lock is waited for, and that wait is cancellable.
    async def main() -> None:
        lock = manyio.Lock()
        with manyio.CancelScope() as scope:
            scope.cancel()
            await lock.acquire_unchecked()
            assert lock.statistics()["owner"] is manyio.current_task()
            with pytest.raises(manyio.Cancelled):
                await manyio.checkpoint()
        lock.release()

        async def holder(started: manyio.Event, stop: manyio.Event) -> None:
            async with lock:
                started.set()
                await stop.wait()

        started, stop = manyio.Event(), manyio.Event()
        task = manyio.spawn(holder(started, stop))
        await started.wait()
        with manyio.move_on_after(0.02) as waited:
            await lock.acquire_unchecked()
        assert waited.cancelled_caught
        assert lock.statistics()["tasks_waiting"] == 0
        stop.set()
        await task
        await lock.acquire_unchecked()
        assert lock.statistics()["owner"] is manyio.current_task()
        lock.release()

    run(main)


def test_lock_hand_off_racing_cancellation_on_two_workers() -> None:
    # Waiters on both workers are cancelled while the lock is handed along: every hand-off
    # either reaches a live waiter or moves on, so the survivors all get the lock in turn.
    async def main() -> None:
        lock = manyio.Lock()
        got: list[int] = []

        async def waiter(i: int) -> None:
            async with lock:
                got.append(i)
                await manyio.checkpoint()

        for _ in range(20):
            got.clear()
            async with manyio.TaskGroup() as tg:
                tasks = [tg.spawn(waiter(i)) for i in range(40)]
                await manyio.checkpoint()
                for t in tasks[::3]:
                    t.cancel()
            # Each task held the lock at most once; every task not cancelled held it (a
            # cancelled one may have got it before its cancellation landed).
            survivors = {i for i, t in enumerate(tasks) if not t.cancelled()}
            assert len(got) == len(set(got))
            assert survivors <= set(got)
            assert len(survivors) >= 26
            assert not lock.locked() and lock.statistics()["tasks_waiting"] == 0

    run(main)


# --- Lock(fair=False): barging with eventual fairness ---------------------------------------


@pytest.mark.parametrize("fair", [True, False])
def test_lock_mutual_exclusion_with_cancellations_on_two_workers(fair: bool) -> None:
    # Many short sections on both workers, some acquirers cancelled while they wait: the
    # count stays exact, the lock ends free and no waiter is left behind (no lost wake-up).
    total = 0
    done = 0

    async def worker(lock: manyio.Lock, i: int) -> None:
        nonlocal total, done
        for k in range(300):
            with manyio.move_on_after(0.0002 if (i + k) % 7 == 0 else math.inf):
                async with lock:
                    value = total
                    if k % 3 == 0:
                        await manyio.checkpoint()
                    total = value + 1
                    done += 1

    async def main() -> None:
        lock = manyio.Lock(fair=fair)
        async with manyio.TaskGroup() as tg:
            for i in range(16):
                tg.start_soon(worker, lock, i)
        assert not lock.locked() and lock.statistics()["tasks_waiting"] == 0

    run(main)
    assert total == done and done > 16 * 300 * 5 // 7


def test_unfair_lock_lets_a_newcomer_take_it_and_the_waiter_queues_again() -> None:
    async def main() -> None:
        lock, got, task = await _held_with_a_queued_waiter(fair=False)
        lock.release()
        # Free, and the woken waiter has not run yet (one thread): this task barges in.
        assert not lock.locked()
        lock.acquire_nowait()
        got.append("newcomer")
        await manyio.checkpoint()  # the waiter runs, finds the lock taken and queues again
        assert lock.statistics()["tasks_waiting"] == 1
        lock.release()
        await task
        assert got == ["newcomer", "waiter"]
        assert not lock.locked()

    run(main, threads=1)


def test_unfair_lock_waiters_overtaken_twice_keep_their_order() -> None:
    async def main() -> None:
        lock = manyio.Lock(fair=False)
        await lock.acquire()
        got: list[str] = []

        async def waiter(name: str) -> None:
            async with lock:
                got.append(name)

        first = manyio.spawn(waiter("first"))
        await _queued(lock)
        second = manyio.spawn(waiter("second"))
        await _queued(lock, 2)
        for _ in range(2):  # wakes the first, then the second, barging in each time
            lock.release()
            lock.acquire_nowait()
        await manyio.checkpoint()  # both find the lock taken and queue again, oldest first
        assert lock.statistics()["tasks_waiting"] == 2
        lock.release()
        await first
        await second
        assert got == ["first", "second"]

    run(main, threads=1)


def test_unfair_lock_is_handed_to_a_waiter_overtaken_for_a_millisecond(wait_until) -> None:
    async def main() -> None:
        lock = manyio.Lock(fair=False)
        await lock.acquire()
        task = manyio.spawn(lock.acquire())
        await wait_until(lambda: lock.statistics()["tasks_waiting"] == 1)
        time.sleep(0.002)  # the waiter has now waited past the 1 ms limit
        lock.release()
        assert lock.statistics()["owner"] is task  # handed over: nobody barges in
        with pytest.raises(manyio.WouldBlock):
            lock.acquire_nowait()
        await task

    run(main, threads=1)


@pytest.mark.parametrize("fair", [True, False])
def test_a_lock_handed_over_and_then_dropped_still_counts_as_taken(fair: bool) -> None:
    # The waiter's acquire holds the lock only weakly: once the lock has handed itself over
    # (or woken the waiter to take it), dropping it must not fail the waiter's acquire.
    async def main() -> None:
        lock = manyio.Lock(fair=fair)
        await lock.acquire()
        acquire = lock.acquire_unchecked()

        async def waiter() -> None:
            await acquire

        task = manyio.spawn(waiter())
        await _queued(lock)
        lock.release()
        del lock  # the waiter has not run yet (one thread)
        await task

    run(main, threads=1)


def test_asyncio_shim_locks_barge() -> None:
    # asyncio code's locks on manyio (redis-py's pool lock) are the unfair kind.
    from manyio import _aioshim

    async def main() -> None:
        shim = _aioshim.Lock()
        async with shim:
            pass
        inner = shim._impl()
        await inner.acquire()
        task = manyio.spawn(inner.acquire())
        await _queued(inner)
        inner.release()
        inner.acquire_nowait()  # a fair lock would have gone to the waiter
        inner.release()
        await task

    run(main, threads=1)


@types.coroutine
def _suspend(awaitable_step: object):  # type: ignore[no-untyped-def]
    """Hands what an awaitable yielded to the scheduler and returns what it resumes with."""
    return (yield awaitable_step)


def test_lock_first_waiter_spins_while_the_owner_runs_on_another_worker(busy_until) -> None:
    # The owner keeps running (no await) until a waiter queues on the other worker. That
    # waiter spins in its place instead of parking, and the release hands it the lock while it
    # still runs: its acquire finishes without ever yielding to the scheduler.
    async def main() -> int:
        lock = manyio.Lock()
        released = False

        async def waiter() -> bool:
            steps = lock.acquire_unchecked().__await__()
            parked = False
            try:
                while True:
                    yielded = next(steps)
                    parked = True
                    await _suspend(yielded)
            except StopIteration:
                pass
            assert released  # mutual exclusion through the hand-off
            lock.release()
            return not parked

        without_parking = 0
        for _ in range(50):
            released = False
            await lock.acquire()
            task = manyio.spawn(waiter())
            busy_until(lambda: lock.statistics()["tasks_waiting"] == 1)
            released = True
            lock.release()
            without_parking += await task
            assert not lock.locked()
        return without_parking

    # Every round spins unless the owner's thread was descheduled for the whole spin.
    assert run(main) >= 25


async def _held_with_one_waiter(busy_until) -> tuple[manyio.Lock, manyio.Task]:
    """A lock this task holds, and a task queued for it (maybe still spinning)."""
    lock = manyio.Lock()
    await lock.acquire()
    task = manyio.spawn(lock.acquire())
    busy_until(lambda: lock.statistics()["tasks_waiting"] == 1)
    return lock, task


def test_lock_waiter_stops_spinning_when_the_owner_awaits(busy_until) -> None:
    async def main() -> None:
        lock, task = await _held_with_one_waiter(busy_until)
        await manyio.sleep(0.01)  # holds the lock without running: the waiter parks
        assert task.blocked()
        lock.release()
        await task
        assert lock.statistics()["owner"] is task

    run(main)


def test_lock_waiter_spins_only_briefly_while_the_owner_keeps_running(busy_until) -> None:
    async def main() -> None:
        lock, task = await _held_with_one_waiter(busy_until)
        # Still running and holding the lock: the waiter must give up spinning and park.
        busy_until(task.blocked)
        lock.release()
        await task

    run(main)


# --- Semaphore ---------------------------------------------------------------------------------


def test_semaphore_limits_concurrency() -> None:
    inside = 0
    max_inside = 0

    async def worker(sem: manyio.Semaphore) -> None:
        nonlocal inside, max_inside
        async with sem:
            inside += 1
            max_inside = max(max_inside, inside)
            await manyio.sleep(0.005)
            inside -= 1

    async def main() -> None:
        sem = manyio.Semaphore(3)
        assert sem.value == 3
        async with manyio.TaskGroup() as tg:
            for _ in range(15):
                tg.start_soon(worker, sem)
        assert sem.value == 3

    run(main, threads=1)  # one thread: counters without data races
    assert max_inside == 3


def test_semaphore_acquire_release_and_nowait() -> None:
    async def main() -> None:
        sem = manyio.Semaphore(2)
        await sem.acquire()
        sem.acquire_nowait()
        assert sem.value == 0
        assert sem.locked()
        with pytest.raises(manyio.WouldBlock):
            sem.acquire_nowait()
        with manyio.move_on_after(0.02) as scope:
            await sem.acquire()
        assert scope.cancelled_caught
        assert sem.statistics()["tasks_waiting"] == 0
        sem.release()
        sem.release()
        assert sem.value == 2
        # Unbounded: more releases just add permits.
        sem.release()
        assert sem.value == 3
        assert sem.max_value is None

    run(main)


def test_semaphore_release_wakes_a_waiter(wait_until) -> None:
    async def main() -> None:
        sem = manyio.Semaphore(0)

        async def taker() -> str:
            await sem.acquire()
            return "took"

        task = manyio.spawn(taker())
        await wait_until(lambda: sem.statistics()["tasks_waiting"] == 1)
        sem.release()
        assert await task == "took"
        assert sem.value == 0

    run(main)


def test_semaphore_arguments_are_validated() -> None:
    with pytest.raises(ValueError):
        manyio.Semaphore(-1)
    with pytest.raises(ValueError):
        manyio.Semaphore(3, max_value=2)


def test_semaphore_with_max_value() -> None:
    async def main() -> None:
        sem = manyio.Semaphore(1, max_value=2)
        sem.release()
        assert sem.value == 2
        with pytest.raises(ValueError):
            sem.release()
        assert sem.value == 2

    run(main)


def test_bounded_semaphore_rejects_extra_release() -> None:
    async def main() -> None:
        sem = manyio.BoundedSemaphore(2)
        assert sem.max_value == 2
        with pytest.raises(ValueError):
            sem.release()
        await sem.acquire()
        sem.release()
        with pytest.raises(ValueError):
            sem.release()
        assert sem.value == 2

    run(main)


# --- Condition -------------------------------------------------------------------------------


def test_condition_wait_and_notify() -> None:
    async def main() -> None:
        cond = manyio.Condition()
        items: list[int] = []

        async def consumer() -> int:
            async with cond:
                await cond.wait_for(lambda: items)
                assert cond.locked()
                return items.pop()

        task = manyio.spawn(consumer())
        await manyio.sleep(0.01)
        async with cond:
            items.append(7)
            cond.notify()
        assert await task == 7

    run(main)


def test_condition_needs_the_lock() -> None:
    async def main() -> None:
        cond = manyio.Condition()
        with pytest.raises(RuntimeError):
            await cond.wait()
        with pytest.raises(RuntimeError):
            cond.notify()
        with pytest.raises(RuntimeError):
            cond.notify_all()

    run(main)


def test_condition_notify_n_and_notify_all(wait_until) -> None:
    async def main() -> None:
        cond = manyio.Condition()
        woken: list[int] = []

        async def waiter(i: int) -> None:
            async with cond:
                await cond.wait()
                woken.append(i)

        async with manyio.TaskGroup() as tg:
            for i in range(5):
                tg.start_soon(waiter, i)
            await wait_until(lambda: cond.statistics()["tasks_waiting"] == 5)
            async with cond:
                cond.notify(2)
            await wait_until(lambda: len(woken) == 2)
            await manyio.sleep(0.01)
            assert len(woken) == 2
            async with cond:
                cond.notify_all()
        assert sorted(woken) == list(range(5))

    run(main)


def test_condition_with_a_given_lock() -> None:
    async def main() -> None:
        lock = manyio.Lock()
        cond = manyio.Condition(lock)
        async with cond:
            assert lock.locked()
        assert not lock.locked()

    run(main)


def test_cancelled_condition_wait_reacquires_the_lock() -> None:
    async def main() -> None:
        cond = manyio.Condition()
        async with cond:
            with manyio.move_on_after(0.02) as scope:
                await cond.wait()
            assert scope.cancelled_caught
            # The lock is held again by this task (release below would raise otherwise).
            assert cond.locked()
            assert cond.statistics()["lock"]["owner"] is manyio.current_task()
        assert not cond.locked()
        assert cond.statistics()["tasks_waiting"] == 0

    run(main)


# --- Barrier ---------------------------------------------------------------------------------


def test_barrier_releases_everyone_together() -> None:
    arrived: list[int] = []
    passed: list[int] = []

    async def party(barrier: manyio.Barrier, i: int) -> int:
        await manyio.sleep(0.002 * i)
        arrived.append(i)
        index = await barrier.wait()
        # Nobody passes before everybody arrived.
        assert len(arrived) == 5
        passed.append(i)
        return index

    async def main() -> list[int]:
        barrier = manyio.Barrier(5)
        assert barrier.parties == 5
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(party(barrier, i)) for i in range(5)]
        assert barrier.n_waiting == 0
        return [t.result() for t in tasks]

    indices = run(main)
    assert sorted(indices) == list(range(5))
    assert sorted(passed) == list(range(5))


def test_barrier_is_reusable() -> None:
    async def party(barrier: manyio.Barrier, log: list[tuple[int, int]], i: int) -> None:
        for generation in range(3):
            await barrier.wait()
            log.append((generation, i))

    async def main() -> list[tuple[int, int]]:
        barrier = manyio.Barrier(3)
        log: list[tuple[int, int]] = []
        async with manyio.TaskGroup() as tg:
            for i in range(3):
                tg.start_soon(party, barrier, log, i)
        return log

    log = run(main, threads=1)
    assert sorted(log) == [(g, i) for g in range(3) for i in range(3)]


def test_barrier_validation_and_single_party() -> None:
    with pytest.raises(ValueError):
        manyio.Barrier(0)

    async def main() -> int:
        return await manyio.Barrier(1).wait()

    assert run(main) == 0


def test_barrier_indices_stay_unique_after_a_waiter_left(wait_until) -> None:
    # wait() returns "this task's arrival index in the released generation": the tasks
    # released together must get distinct indices even if another waiter gave up before.
    async def main() -> list[int]:
        barrier = manyio.Barrier(3)
        leave = manyio.CancelScope()

        async def leaver() -> None:
            with leave:
                await barrier.wait()

        async def stayer() -> int:
            return await barrier.wait()

        left = manyio.spawn(leaver())
        await wait_until(lambda: barrier.n_waiting == 1)
        first = manyio.spawn(stayer())
        await wait_until(lambda: barrier.n_waiting == 2)
        leave.cancel()
        await left  # gave up: one waiter is left
        assert barrier.n_waiting == 1
        second = manyio.spawn(stayer())
        await wait_until(lambda: barrier.n_waiting == 2)
        third = manyio.spawn(stayer())
        return sorted([await first, await second, await third])

    assert run(main) == [0, 1, 2]


def test_cancelled_barrier_waiter_leaves(wait_until) -> None:
    async def main() -> None:
        barrier = manyio.Barrier(2)
        with manyio.move_on_after(0.02):
            await barrier.wait()
        assert barrier.n_waiting == 0

    run(main)


# --- CapacityLimiter -------------------------------------------------------------------------


def test_capacity_limiter_limits_borrowers() -> None:
    inside = 0
    max_inside = 0

    async def worker(limiter: manyio.CapacityLimiter) -> None:
        nonlocal inside, max_inside
        async with limiter:
            inside += 1
            max_inside = max(max_inside, inside)
            await manyio.sleep(0.005)
            inside -= 1

    async def main() -> None:
        limiter = manyio.CapacityLimiter(2)
        async with manyio.TaskGroup() as tg:
            for _ in range(10):
                tg.start_soon(worker, limiter)
        assert limiter.borrowed_tokens == 0

    run(main, threads=1)
    assert max_inside == 2


def test_capacity_limiter_accounting_and_errors() -> None:
    async def main() -> None:
        limiter = manyio.CapacityLimiter(2)
        assert limiter.total_tokens == 2
        assert limiter.available_tokens == 2
        await limiter.acquire()
        assert limiter.borrowed_tokens == 1
        assert limiter.available_tokens == 1
        with pytest.raises(RuntimeError):
            await limiter.acquire()  # same borrower twice
        with pytest.raises(RuntimeError):
            limiter.acquire_nowait()
        limiter.acquire_on_behalf_of_nowait("other")
        with pytest.raises(manyio.WouldBlock):
            limiter.acquire_on_behalf_of_nowait("third")
        limiter.release_on_behalf_of("other")
        with pytest.raises(RuntimeError):
            limiter.release_on_behalf_of("never borrowed")
        limiter.release()
        with pytest.raises(RuntimeError):
            limiter.release()
        assert limiter.borrowed_tokens == 0

    run(main)


def test_capacity_limiter_total_tokens_validation() -> None:
    with pytest.raises(ValueError):
        manyio.CapacityLimiter(0)
    with pytest.raises(TypeError):
        manyio.CapacityLimiter(1.5)
    assert manyio.CapacityLimiter(math.inf).total_tokens == math.inf


def test_raising_total_tokens_wakes_waiters(wait_until) -> None:
    async def main() -> None:
        limiter = manyio.CapacityLimiter(1)
        await limiter.acquire()

        async def borrower() -> str:
            async with limiter:
                return "borrowed"

        task = manyio.spawn(borrower())
        await wait_until(lambda: limiter.statistics()["tasks_waiting"] == 1)
        limiter.total_tokens = 2
        assert await task == "borrowed"
        limiter.release()

    run(main)


def test_primitives_work_across_worker_threads() -> None:
    # Tasks on both workers hammer one lock and one semaphore; state must stay consistent.
    counter = 0

    async def worker(lock: manyio.Lock, sem: manyio.Semaphore) -> None:
        nonlocal counter
        for _ in range(50):
            async with sem, lock:
                value = counter
                await manyio.checkpoint()
                counter = value + 1

    async def main() -> None:
        lock = manyio.Lock()
        sem = manyio.Semaphore(2)
        async with manyio.TaskGroup() as tg:
            for _ in range(8):
                tg.start_soon(worker, lock, sem)
        assert sem.value == 2
        assert not lock.locked()

    run(main, threads=2)
    assert counter == 400
