"""``CancelScope``: trio's cancel scopes, shields, deadlines, level-triggered cancellation."""

from __future__ import annotations

import asyncio
import math
import time

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_cancelled_is_an_asyncio_cancelled_error() -> None:
    assert issubclass(manyio.Cancelled, asyncio.CancelledError)
    assert issubclass(manyio.Cancelled, BaseException)
    assert not issubclass(manyio.Cancelled, Exception)


def test_cancel_inside_the_scope_stops_the_body_at_the_next_checkpoint() -> None:
    log: list[str] = []

    async def main() -> None:
        with manyio.CancelScope() as scope:
            assert not scope.cancel_called
            scope.cancel()
            assert scope.cancel_called
            log.append("before checkpoint")  # cancel() itself does not raise
            await manyio.checkpoint()
            log.append("after checkpoint")  # pragma: no cover - must not run
        assert scope.cancelled_caught
        log.append("after scope")

    run(main)
    assert log == ["before checkpoint", "after scope"]


def test_scope_that_was_not_cancelled_catches_nothing() -> None:
    async def main() -> None:
        with manyio.CancelScope() as scope:
            await manyio.sleep(0.001)
        assert not scope.cancel_called
        assert not scope.cancelled_caught

    run(main)


def test_cancel_before_entering_takes_effect_on_enter() -> None:
    async def main() -> None:
        scope = manyio.CancelScope()
        scope.cancel()
        assert scope.cancel_called
        with scope:
            await manyio.sleep(10)
        assert scope.cancelled_caught

    run(main)


def test_cancellation_is_level_triggered_in_a_scope() -> None:
    raised: list[int] = []

    async def main() -> None:
        with manyio.CancelScope() as scope:
            scope.cancel()
            for i in range(5):
                try:
                    await manyio.checkpoint()
                except manyio.Cancelled:
                    raised.append(i)
            await manyio.sleep(0)
        assert scope.cancelled_caught

    run(main)
    assert raised == [0, 1, 2, 3, 4]


async def _blocked_task_wait() -> None:
    gate = manyio.Event()
    task = manyio.spawn(gate.wait())
    try:
        await task
    finally:
        gate.set()


async def _condition_wait() -> None:
    cond = manyio.Condition()
    cond.acquire_nowait()  # not a checkpoint: the wait below is the first one
    try:
        await cond.wait()
    finally:
        cond.release()


WAITS = {
    "sleep": lambda: manyio.sleep(10),
    "sleep_until": lambda: manyio.sleep_until(manyio.current_time() + 10),
    "event": lambda: manyio.Event().wait(),
    "await-task": _blocked_task_wait,
    "condition": _condition_wait,
}


@pytest.mark.parametrize("kind", list(WAITS))
def test_every_wait_raises_again_after_a_cancelled_was_caught(kind: str) -> None:
    # Level-triggered: once the scope is cancelled, *every* later wait in it raises Cancelled
    # at once, not only the first one (which consumed the wake-up that cancel() sent).
    wait = WAITS[kind]

    async def main() -> None:
        t0 = time.monotonic()
        with manyio.move_on_after(2) as guard:  # turns a hang into a failed assertion
            with manyio.CancelScope() as scope:
                scope.cancel()
                try:
                    await manyio.checkpoint()
                except manyio.Cancelled:
                    pass
                await wait()
                pytest.fail(f"{kind}: the wait returned in a cancelled scope")  # pragma: no cover
        assert not guard.cancelled_caught, f"{kind}: the wait parked instead of raising Cancelled"
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < 2

    run(main)


def test_awaiting_in_a_finally_after_a_deadline_raises_instead_of_hanging() -> None:
    # After a deadline cancelled the body, an unshielded wait in a finally block must raise
    # Cancelled again right away (it is still inside the cancelled scope).
    log: list[str] = []

    async def main() -> None:
        with manyio.move_on_after(3) as guard, manyio.move_on_after(0.02) as scope:
            try:
                await manyio.sleep(100)
            finally:
                log.append("finally")
                await manyio.Event().wait()
                log.append("unreachable")  # pragma: no cover
        assert log == ["finally"]
        assert not guard.cancelled_caught, "the wait in the finally block parked forever"
        assert scope.cancelled_caught

    run(main)


def test_waiting_on_a_set_event_in_a_cancelled_scope_is_still_a_checkpoint() -> None:
    # Event.wait() is documented as "a checkpoint even when it is set already": inside a
    # cancelled scope it must raise Cancelled like every other checkpoint (trio semantics).
    async def main() -> None:
        event = manyio.Event()
        event.set()
        with manyio.CancelScope() as scope:
            scope.cancel()
            await event.wait()
            pytest.fail("Event.wait() on a set event did not raise in a cancelled scope")
        assert scope.cancelled_caught

    run(main)


def test_an_exception_other_than_cancelled_passes_through_a_cancelled_scope() -> None:
    async def main() -> None:
        with pytest.raises(KeyError), manyio.CancelScope() as scope:
            scope.cancel()
            raise KeyError("not a cancellation")
        assert not scope.cancelled_caught

    run(main)


def test_a_cancelled_raised_by_hand_is_not_caught_by_a_scope_that_was_not_cancelled() -> None:
    async def main() -> None:
        with pytest.raises(manyio.Cancelled), manyio.CancelScope() as scope:
            raise manyio.Cancelled
        assert not scope.cancelled_caught

    run(main)


def test_nested_outer_cancelled_inner_not_outer_catches() -> None:
    log: list[str] = []

    async def main() -> None:
        with manyio.CancelScope() as outer:
            with manyio.CancelScope() as inner:
                outer.cancel()
                await manyio.checkpoint()
            log.append("after inner")  # pragma: no cover - must not run
        assert not inner.cancel_called
        assert not inner.cancelled_caught
        assert outer.cancelled_caught
        log.append("after outer")

    run(main)
    assert log == ["after outer"]


def test_nested_inner_cancelled_only_inner_catches() -> None:
    log: list[str] = []

    async def main() -> None:
        with manyio.CancelScope() as outer:
            with manyio.CancelScope() as inner:
                inner.cancel()
                await manyio.checkpoint()
            log.append("after inner")
            await manyio.checkpoint()  # outer is not cancelled: no raise
            log.append("still running")
        assert inner.cancelled_caught
        assert not outer.cancelled_caught

    run(main)
    assert log == ["after inner", "still running"]


def test_nested_both_cancelled_the_outermost_catches() -> None:
    async def main() -> None:
        with manyio.CancelScope() as outer:
            with manyio.CancelScope() as inner:
                inner.cancel()
                outer.cancel()
                await manyio.checkpoint()
            pytest.fail("the outer scope is cancelled: nothing after inner may run")  # pragma: no cover
        assert outer.cancelled_caught
        assert not inner.cancelled_caught

    run(main)


def test_shield_blocks_outer_cancellation() -> None:
    log: list[str] = []

    async def main() -> None:
        with manyio.CancelScope() as outer:
            outer.cancel()
            with manyio.CancelScope(shield=True) as shielded:
                assert shielded.shield
                await manyio.sleep(0.02)
                await manyio.checkpoint()
                log.append("shielded work done")
            assert not shielded.cancelled_caught
            await manyio.checkpoint()
            log.append("after shield")  # pragma: no cover - must not run
        assert outer.cancelled_caught

    run(main)
    assert log == ["shielded work done"]


def test_shield_blocks_task_cancel() -> None:
    log: list[str] = []

    async def child(started: manyio.Event) -> None:
        with manyio.CancelScope(shield=True):
            started.set()
            await manyio.sleep(0.05)
            log.append("shielded sleep finished")
        await manyio.checkpoint()
        log.append("unreachable")  # pragma: no cover

    async def main() -> None:
        started = manyio.Event()
        task = manyio.spawn(child(started))
        await started.wait()
        task.cancel()
        with pytest.raises(manyio.Cancelled):
            await task

    run(main)
    assert log == ["shielded sleep finished"]


def test_dropping_a_shield_while_parked_delivers_the_cancellation(wait_until) -> None:
    async def main() -> None:
        with manyio.CancelScope() as outer:
            shield = manyio.CancelScope(shield=True)

            async def unshield_later() -> None:
                await wait_until(lambda: manyio.stats()["timers"] >= 1)
                outer.cancel()
                await manyio.sleep(0.02)
                shield.shield = False

            helper = manyio.spawn(unshield_later())
            t0 = time.monotonic()
            with shield:
                await manyio.sleep(100)
            pytest.fail("unreachable")  # pragma: no cover
        assert outer.cancelled_caught
        assert time.monotonic() - t0 < 5
        await helper

    run(main)


def test_setting_shield_while_entered_protects_the_body() -> None:
    async def main() -> None:
        with manyio.CancelScope() as outer, manyio.CancelScope() as inner:
            inner.shield = True
            outer.cancel()
            await manyio.sleep(0.01)  # shielded: no Cancelled
            inner.shield = False
            await manyio.checkpoint()
            pytest.fail("unreachable")  # pragma: no cover
        assert outer.cancelled_caught

    run(main)


def test_scope_cancelled_from_another_task_wakes_the_sleeper() -> None:
    async def main() -> None:
        scope = manyio.CancelScope()
        entered = manyio.Event()

        async def sleeper() -> bool:
            with scope:
                entered.set()
                await manyio.sleep(100)
            return scope.cancelled_caught

        task = manyio.spawn(sleeper())
        await entered.wait()
        t0 = time.monotonic()
        scope.cancel()
        assert await task is True
        assert time.monotonic() - t0 < 2

    run(main)


def test_scope_can_only_be_entered_once() -> None:
    async def main() -> None:
        scope = manyio.CancelScope()
        with scope:
            pass
        with pytest.raises(RuntimeError, match="once"), scope:
            pass  # pragma: no cover

    run(main)


def test_scopes_exited_out_of_order_raise() -> None:
    async def main() -> None:
        a = manyio.CancelScope()
        b = manyio.CancelScope()
        a.__enter__()
        b.__enter__()
        with pytest.raises(RuntimeError, match="reverse order"):
            a.__exit__(None, None, None)
        b.__exit__(None, None, None)
        a.__exit__(None, None, None)

    run(main)


def test_a_scope_cannot_be_exited_by_another_task() -> None:
    # Only the task that entered a scope may exit it; another task trying must get a
    # RuntimeError and leave the owner's scope intact.
    async def main() -> None:
        scope = manyio.CancelScope()
        entered = manyio.Event()
        release = manyio.Event()

        async def owner() -> bool:
            with scope:
                entered.set()
                await release.wait()
                await manyio.sleep(100)
            return scope.cancelled_caught

        task = manyio.spawn(owner())
        await entered.wait()
        try:
            with pytest.raises(RuntimeError):
                scope.__exit__(None, None, None)
        finally:
            release.set()
            await manyio.sleep(0.01)
            scope.cancel()
            outcome: object = "the owner was not cancelled by its own scope"
            with manyio.move_on_after(2):
                try:
                    outcome = await task
                except RuntimeError as e:
                    outcome = e
            task.cancel()
            with manyio.move_on_after(2):
                try:
                    await task
                except BaseException:
                    pass
        assert outcome is True

    run(main)


def test_cancelling_a_scope_cancels_the_tasks_of_a_task_group_inside() -> None:
    finished: list[str] = []

    async def child() -> None:
        try:
            await manyio.sleep(100)
        finally:
            finished.append("child")

    async def main() -> None:
        with manyio.CancelScope() as scope:
            async with manyio.TaskGroup() as tg:
                for _ in range(4):
                    tg.start_soon(child)
                await manyio.sleep(0.01)
                scope.cancel()
            await manyio.checkpoint()
            pytest.fail("unreachable")  # pragma: no cover
        assert scope.cancelled_caught

    run(main)
    assert finished == ["child"] * 4


# --- deadlines -----------------------------------------------------------------------------


def test_deadline_cancels_the_body() -> None:
    async def main() -> None:
        t0 = time.monotonic()
        with manyio.CancelScope(deadline=manyio.current_time() + 0.05) as scope:
            await manyio.sleep(100)
        assert scope.cancelled_caught
        assert scope.cancel_called
        assert 0.04 < time.monotonic() - t0 < 2

    run(main)


def test_deadline_in_the_past_cancels_at_the_first_checkpoint() -> None:
    async def main() -> None:
        with manyio.CancelScope(deadline=manyio.current_time() - 1) as scope:
            assert scope.cancel_called
            await manyio.checkpoint()
        assert scope.cancelled_caught

    run(main)


def test_moving_the_deadline_earlier_wakes_a_sleeper(wait_until) -> None:
    async def main() -> None:
        scope = manyio.CancelScope()
        assert scope.deadline == math.inf

        async def sleeper() -> bool:
            with scope:
                await manyio.sleep(100)
            return scope.cancelled_caught

        task = manyio.spawn(sleeper())
        await wait_until(lambda: manyio.stats()["timers"] == 1)
        t0 = time.monotonic()
        scope.deadline = manyio.current_time() + 0.05
        assert scope.deadline != math.inf
        assert await task is True
        assert time.monotonic() - t0 < 2

    run(main)


def test_moving_the_deadline_into_the_past_cancels_at_once() -> None:
    async def main() -> None:
        with manyio.CancelScope() as scope:
            scope.deadline = manyio.current_time() - 1
            assert scope.cancel_called
            await manyio.checkpoint()
        assert scope.cancelled_caught

    run(main)


def test_moving_the_deadline_later_extends_it() -> None:
    async def main() -> None:
        with manyio.CancelScope(deadline=manyio.current_time() + 0.05) as scope:
            scope.deadline = manyio.current_time() + 100
            await manyio.sleep(0.15)
        assert not scope.cancel_called
        assert not scope.cancelled_caught

    run(main)


def test_reschedule_and_when() -> None:
    async def main() -> None:
        with manyio.CancelScope() as scope:
            assert scope.when() is None
            target = manyio.current_time() + 100
            scope.reschedule(target)
            assert scope.when() == target
            assert scope.deadline == target
            scope.reschedule(None)
            assert scope.when() is None
            assert scope.deadline == math.inf
            scope.reschedule(manyio.current_time() + 0.03)
            t0 = time.monotonic()
            await manyio.sleep(100)
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < 2

    run(main)


def test_deadline_configured_before_entering() -> None:
    async def main() -> None:
        scope = manyio.CancelScope()
        scope.deadline = manyio.current_time() + 0.03
        with scope:
            await manyio.sleep(100)
        assert scope.cancelled_caught

    run(main)


def test_nan_deadline_is_rejected_by_the_setter() -> None:
    scope = manyio.CancelScope()
    with pytest.raises(ValueError, match="NaN"):
        scope.deadline = math.nan


def test_nan_deadline_is_rejected_by_the_constructor() -> None:
    # The setter rejects NaN; the constructor must too (trio raises ValueError here). Accepting
    # it silently turns into "cancel immediately" when the scope is entered.
    with pytest.raises(ValueError, match="NaN"):
        manyio.CancelScope(deadline=math.nan)


def test_current_effective_deadline() -> None:
    async def main() -> None:
        assert manyio.current_effective_deadline() == math.inf
        now = manyio.current_time()
        with manyio.CancelScope(deadline=now + 100):
            assert manyio.current_effective_deadline() == now + 100
            with manyio.CancelScope(deadline=now + 50):
                assert manyio.current_effective_deadline() == now + 50
            with manyio.CancelScope(deadline=now + 200):
                assert manyio.current_effective_deadline() == now + 100
            with manyio.CancelScope(deadline=now + 200, shield=True):
                # A shield hides the outer deadline.
                assert manyio.current_effective_deadline() == now + 200
            with manyio.CancelScope(shield=True):
                assert manyio.current_effective_deadline() == math.inf
            with manyio.CancelScope() as cancelled:
                cancelled.cancel()
                assert manyio.current_effective_deadline() == -math.inf
        assert manyio.current_effective_deadline() == math.inf

    run(main)


def test_deadline_expires_while_busy_without_sleeping() -> None:
    # Timers must fire even when no worker goes idle: a task that only checkpoints.
    async def main() -> int:
        n = 0
        with manyio.move_on_after(0.05) as scope:
            while True:
                n += 1
                await manyio.checkpoint()
        assert scope.cancelled_caught
        return n

    t0 = time.monotonic()
    assert run(main, threads=1) > 0
    assert time.monotonic() - t0 < 5
