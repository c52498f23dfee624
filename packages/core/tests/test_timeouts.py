"""``move_on_after``, ``move_on_at``, ``fail_after``, ``fail_at``."""

from __future__ import annotations

import math
import time

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_move_on_after_stops_the_body() -> None:
    log: list[str] = []

    async def main() -> None:
        t0 = time.monotonic()
        with manyio.move_on_after(0.05) as scope:
            await manyio.sleep(100)
            log.append("unreachable")  # pragma: no cover
        elapsed = time.monotonic() - t0
        assert scope.cancelled_caught
        assert 0.04 < elapsed < 2
        log.append("moved on")

    run(main)
    assert log == ["moved on"]


def test_move_on_after_that_does_not_expire() -> None:
    async def main() -> None:
        with manyio.move_on_after(100) as scope:
            await manyio.sleep(0.001)
            value = "finished"
        assert value == "finished"
        assert not scope.cancelled_caught
        assert not scope.cancel_called

    run(main)


def test_move_on_at() -> None:
    async def main() -> None:
        deadline = manyio.current_time() + 0.05
        with manyio.move_on_at(deadline) as scope:
            assert scope.deadline == deadline
            await manyio.sleep(100)
        assert scope.cancelled_caught
        assert manyio.current_time() >= deadline

    run(main)


def test_move_on_after_zero_cancels_at_the_first_checkpoint() -> None:
    async def main() -> None:
        with manyio.move_on_after(0) as scope:
            await manyio.checkpoint()
            pytest.fail("unreachable")  # pragma: no cover
        assert scope.cancelled_caught

    run(main)


def test_fail_after_raises_timeout_error() -> None:
    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError), manyio.fail_after(0.05):
            await manyio.sleep(100)
        assert time.monotonic() - t0 < 2

    run(main)


def test_fail_at_raises_timeout_error() -> None:
    async def main() -> None:
        with pytest.raises(TimeoutError), manyio.fail_at(manyio.current_time() + 0.05):
            await manyio.sleep(100)

    run(main)


def test_fail_after_that_does_not_expire_returns_normally() -> None:
    async def main() -> str:
        with manyio.fail_after(100) as scope:
            await manyio.sleep(0.001)
        assert isinstance(scope, manyio.CancelScope)
        assert not scope.cancelled_caught
        return "ok"

    assert run(main) == "ok"


def test_fail_after_lets_other_exceptions_through() -> None:
    async def main() -> None:
        with pytest.raises(KeyError), manyio.fail_after(100):
            await manyio.checkpoint()
            raise KeyError("inner")

    run(main)


def test_fail_after_yields_a_scope_whose_deadline_can_be_moved() -> None:
    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(TimeoutError), manyio.fail_after(100) as scope:
            scope.deadline = manyio.current_time() + 0.02
            await manyio.sleep(100)
        assert time.monotonic() - t0 < 2

    run(main)


@pytest.mark.parametrize("helper", [manyio.move_on_after, manyio.fail_after])
def test_negative_or_nan_durations_are_rejected(helper) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        for bad in (-1, -0.5, math.nan):
            with pytest.raises(ValueError), helper(bad):
                pass  # pragma: no cover

    run(main)


@pytest.mark.parametrize("helper", [manyio.move_on_at, manyio.fail_at])
def test_nan_deadlines_are_rejected(helper) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        with pytest.raises(ValueError), helper(math.nan):
            pass  # pragma: no cover

    run(main)


def test_outer_cancellation_is_not_turned_into_timeout_error() -> None:
    async def main() -> None:
        with manyio.CancelScope() as outer:
            with manyio.fail_after(100):
                outer.cancel()
                await manyio.sleep(100)
            pytest.fail("unreachable")  # pragma: no cover
        assert outer.cancelled_caught

    run(main)


def test_inner_timeout_inside_a_longer_outer_one() -> None:
    async def main() -> None:
        with manyio.move_on_after(100) as outer:
            with manyio.move_on_after(0.02) as inner:
                await manyio.sleep(100)
            await manyio.sleep(0.001)
        assert inner.cancelled_caught
        assert not outer.cancelled_caught

    run(main)


def test_outer_timeout_shorter_than_the_inner_one() -> None:
    async def main() -> None:
        with manyio.move_on_after(0.02) as outer, manyio.move_on_after(100) as inner:
            await manyio.sleep(100)
        assert outer.cancelled_caught
        assert not inner.cancelled_caught

    run(main)


def test_shielded_timeout_ignores_outer_cancellation() -> None:
    async def main() -> None:
        with manyio.CancelScope() as outer:
            outer.cancel()
            with manyio.move_on_after(0.03, shield=True) as inner:
                await manyio.sleep(100)
            # The shielded scope's own deadline still applies.
            assert inner.cancelled_caught
            await manyio.checkpoint()
        assert outer.cancelled_caught

    run(main)


def test_fail_after_with_shield() -> None:
    async def main() -> None:
        with manyio.CancelScope() as outer:
            outer.cancel()
            with manyio.fail_after(100, shield=True):
                await manyio.sleep(0.01)  # shielded: completes
            await manyio.checkpoint()
        assert outer.cancelled_caught

    run(main)


def test_effective_deadline_inside_move_on_after() -> None:
    async def main() -> None:
        before = manyio.current_time()
        with manyio.move_on_after(5):
            deadline = manyio.current_effective_deadline()
        after = manyio.current_time()
        assert before + 5 <= deadline <= after + 5

    run(main)


def test_timeouts_leave_no_timers_behind() -> None:
    async def main() -> None:
        for _ in range(20):
            with manyio.move_on_after(100):
                await manyio.checkpoint()
            with manyio.move_on_after(0.001):
                await manyio.sleep(100)
            with manyio.fail_after(100):
                await manyio.sleep(0.0001)
        assert manyio.stats()["timers"] == 0

    run(main)


def test_timeouts_in_many_tasks_at_once() -> None:
    async def one(i: int) -> bool:
        with manyio.move_on_after(0.01 + 0.001 * (i % 10)) as scope:
            await manyio.sleep(100)
        return scope.cancelled_caught

    async def main() -> list[bool]:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(one(i)) for i in range(200)]
        assert manyio.stats()["timers"] == 0
        return [t.result() for t in tasks]

    t0 = time.monotonic()
    assert all(run(main))
    assert time.monotonic() - t0 < 5


def test_deadlines_set_while_nobody_polls_wake_nobody() -> None:
    # One worker, running this task: nobody sleeps in the poller, so entering scopes with
    # deadlines (each one moves the earliest deadline of an empty timer table) must not write
    # to the poller's waker; the next poll reads the deadline itself.
    async def main() -> int:
        before = manyio.stats()["poller_wakeups"]
        for _ in range(1000):
            with manyio.move_on_after(10):
                pass
        return manyio.stats()["poller_wakeups"] - before

    assert run(main, threads=1) == 0


def test_a_nearer_deadline_wakes_the_worker_sleeping_in_the_poller(busy_until) -> None:
    async def main() -> tuple[float, int]:
        # The other worker goes to sleep in the poller with no deadline at all.
        busy_until(lambda: manyio.stats()["sleeping_workers"] >= 1)
        before = manyio.stats()["poller_wakeups"]
        t0 = time.monotonic()
        with manyio.move_on_after(0.05):
            await manyio.sleep(10)  # this worker sleeps too, not in the poller (it is taken)
        return time.monotonic() - t0, manyio.stats()["poller_wakeups"] - before

    elapsed, wakeups = run(main, threads=2)
    assert 0.04 < elapsed < 2
    assert wakeups >= 1
