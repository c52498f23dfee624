"""``TaskGroup``: structured concurrency with trio's semantics."""

from __future__ import annotations

import math
import time

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads)


def test_start_soon_runs_every_child_and_the_block_waits_for_them() -> None:
    async def child(i: int, out: list[int]) -> None:
        await manyio.sleep(0.001 * (i % 3))
        out.append(i)

    async def main() -> list[int]:
        out: list[int] = []
        async with manyio.TaskGroup() as tg:
            for i in range(50):
                tg.start_soon(child, i, out)
        return out

    assert sorted(run(main)) == list(range(50))


def test_empty_group() -> None:
    async def main() -> str:
        async with manyio.TaskGroup():
            pass
        return "empty"

    assert run(main) == "empty"


def test_spawn_returns_tasks_with_results() -> None:
    async def square(x: int) -> int:
        await manyio.checkpoint()
        return x * x

    async def main() -> list[int]:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(square(i), name=f"sq{i}") for i in range(10)]
            assert [t.name for t in tasks] == [f"sq{i}" for i in range(10)]
        return [t.result() for t in tasks]

    assert run(main) == [i * i for i in range(10)]


def test_start_soon_names() -> None:
    async def whoami(out: dict[str, str], key: str) -> None:
        await manyio.checkpoint()
        out[key] = manyio.current_task().name

    async def main() -> dict[str, str]:
        out: dict[str, str] = {}
        async with manyio.TaskGroup() as tg:
            tg.start_soon(whoami, out, "named", name="custom")
            tg.start_soon(whoami, out, "default")
        return out

    out = run(main)
    assert out["named"] == "custom"
    assert "whoami" in out["default"]


def test_children_know_their_parent() -> None:
    async def child() -> int | None:
        await manyio.checkpoint()
        return manyio.current_task().parent_id

    async def main() -> None:
        host = manyio.current_task()
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(child()) for _ in range(3)]
        assert [t.result() for t in tasks] == [host.id] * 3

    run(main)


def test_children_inherit_the_deadlines_of_the_scopes_around_the_group() -> None:
    async def deadline() -> float:
        await manyio.checkpoint()
        return manyio.current_effective_deadline()

    async def main() -> None:
        target = manyio.current_time() + 50
        with manyio.CancelScope(deadline=target):
            async with manyio.TaskGroup() as tg:
                task = tg.spawn(deadline())
        assert task.result() == target
        # manyio.spawn starts a detached task: the spawner's scopes do not apply to it.
        with manyio.CancelScope(deadline=target):
            detached = manyio.spawn(deadline())
            assert await detached == math.inf

    run(main)


def test_children_are_protected_by_a_shield_around_the_group() -> None:
    async def child() -> str:
        await manyio.sleep(0.03)
        await manyio.checkpoint()
        return "finished"

    async def main() -> None:
        with manyio.CancelScope() as outer:
            with manyio.CancelScope(shield=True):
                async with manyio.TaskGroup() as tg:
                    task = tg.spawn(child())
                    outer.cancel()
            assert task.result() == "finished"
            await manyio.checkpoint()
            pytest.fail("unreachable")  # pragma: no cover
        assert outer.cancelled_caught

    run(main)


def test_first_failure_cancels_siblings_and_the_body() -> None:
    log: list[str] = []

    class Boom(Exception):
        pass

    async def failing() -> None:
        await manyio.sleep(0.01)
        raise Boom("first")

    async def sibling() -> None:
        try:
            await manyio.sleep(100)
            log.append("sibling slept")  # pragma: no cover
        finally:
            log.append("sibling finally")

    async def main() -> None:
        t0 = time.monotonic()
        with pytest.raises(ExceptionGroup) as info:
            async with manyio.TaskGroup() as tg:
                tg.start_soon(sibling)
                tg.start_soon(sibling)
                tg.start_soon(failing)
                try:
                    await manyio.sleep(100)
                    log.append("body slept")  # pragma: no cover
                except manyio.Cancelled:
                    log.append("body cancelled")
                    raise
        assert time.monotonic() - t0 < 5
        assert len(info.value.exceptions) == 1
        assert isinstance(info.value.exceptions[0], Boom)
        assert tg.cancel_scope.cancel_called

    run(main)
    assert sorted(log) == ["body cancelled", "sibling finally", "sibling finally"]


def test_several_failures_are_all_reported() -> None:
    async def fail_on_cleanup(exc: Exception) -> None:
        try:
            await manyio.sleep(100)
        finally:
            raise exc

    async def main() -> None:
        with pytest.raises(ExceptionGroup) as info:
            async with manyio.TaskGroup() as tg:
                tg.start_soon(fail_on_cleanup, ValueError("v"))
                tg.start_soon(fail_on_cleanup, KeyError("k"))
                await manyio.sleep(0.01)
                tg.cancel_scope.cancel()
        kinds = sorted(type(e).__name__ for e in info.value.exceptions)
        assert kinds == ["KeyError", "ValueError"]

    run(main)


def test_failure_in_the_body_cancels_the_children() -> None:
    log: list[str] = []

    async def child() -> None:
        try:
            await manyio.sleep(100)
        finally:
            log.append("child finally")

    async def main() -> None:
        with pytest.raises(ExceptionGroup) as info:
            async with manyio.TaskGroup() as tg:
                tg.start_soon(child)
                await manyio.sleep(0.01)
                raise RuntimeError("body failed")
        assert [str(e) for e in info.value.exceptions] == ["body failed"]

    run(main)
    assert log == ["child finally"]


def test_children_finally_blocks_can_await_in_a_shielded_scope() -> None:
    log: list[str] = []

    async def child(i: int) -> None:
        try:
            await manyio.sleep(100)
        finally:
            with manyio.CancelScope(shield=True):
                await manyio.sleep(0.02)
                await manyio.checkpoint()
            log.append(f"cleanup {i}")

    async def boom() -> None:
        await manyio.sleep(0.01)
        raise ValueError("trigger")

    async def main() -> None:
        with pytest.raises(ExceptionGroup):
            async with manyio.TaskGroup() as tg:
                for i in range(3):
                    tg.start_soon(child, i)
                tg.start_soon(boom)
        # The group waited for the cleanups.
        assert sorted(log) == ["cleanup 0", "cleanup 1", "cleanup 2"]

    run(main)


def test_cancel_scope_of_the_group_cancels_everything_and_is_swallowed() -> None:
    log: list[str] = []

    async def child() -> None:
        try:
            await manyio.sleep(100)
        finally:
            with manyio.CancelScope(shield=True):
                await manyio.sleep(0.02)
            log.append("child done")

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            for _ in range(3):
                tg.start_soon(child)
            await manyio.sleep(0.01)
            tg.cancel_scope.cancel()
            await manyio.sleep(100)
            log.append("body unreachable")  # pragma: no cover
        # The parent waited for its cancelled children.
        assert log == ["child done"] * 3
        assert tg.cancel_scope.cancelled_caught
        log.append("after group")

    run(main)
    assert log[-1] == "after group"


async def _sleep(seconds: float) -> None:
    await manyio.sleep(seconds)


def test_outer_deadline_cancels_the_group() -> None:
    async def main() -> None:
        t0 = time.monotonic()
        with manyio.move_on_after(0.05) as scope:
            async with manyio.TaskGroup() as tg:
                for _ in range(5):
                    tg.start_soon(_sleep, 100)
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < 5

    run(main)


def test_cancelled_children_are_not_errors() -> None:
    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            task = tg.spawn(_sleep(100))
            await manyio.sleep(0.01)
            task.cancel()
        assert task.cancelled()

    run(main)


def test_child_that_swallows_cancellation_still_lets_the_group_finish() -> None:
    async def stubborn() -> str:
        try:
            await manyio.sleep(100)
        except manyio.Cancelled:
            return "swallowed"
        return "slept"  # pragma: no cover

    async def main() -> str:
        with manyio.move_on_after(0.02):
            async with manyio.TaskGroup() as tg:
                task = tg.spawn(stubborn())
        return task.result()

    assert run(main) == "swallowed"


def test_nested_groups_propagate_errors_as_nested_groups() -> None:
    async def fail() -> None:
        await manyio.checkpoint()
        raise ValueError("deep")

    async def middle() -> None:
        async with manyio.TaskGroup() as inner:
            inner.start_soon(fail)
            await manyio.sleep(100)

    async def main() -> None:
        with pytest.raises(ExceptionGroup) as info:
            async with manyio.TaskGroup() as outer:
                outer.start_soon(middle)
                await manyio.sleep(100)
        assert info.value.subgroup(ValueError) is not None
        leaf = info.value.exceptions[0]
        assert isinstance(leaf, ExceptionGroup)
        assert isinstance(leaf.exceptions[0], ValueError)

    run(main)


def test_many_children() -> None:
    counter = 0

    async def child() -> None:
        nonlocal counter
        await manyio.checkpoint()
        counter += 0  # touch shared state without racing on it
        await manyio.checkpoint()

    async def main() -> int:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(child()) for _ in range(2000)]
        return sum(t.done() for t in tasks)

    assert run(main) == 2000


def test_start_soon_with_manyio_sleep_can_be_cancelled() -> None:
    # The package docstring's own example: ``tg.start_soon(manyio.sleep, 0.1)``. manyio.sleep
    # returns an awaitable, not a coroutine; the child must still be cancellable like any other.
    async def main() -> None:
        t0 = time.monotonic()
        with manyio.move_on_after(0.02) as scope:
            async with manyio.TaskGroup() as tg:
                tg.start_soon(manyio.sleep, 100)
                tg.start_soon(manyio.Event().wait)
        assert scope.cancelled_caught
        assert time.monotonic() - t0 < 5

    run(main)


def test_spawned_awaitables_that_are_not_coroutines_can_be_cancelled() -> None:
    async def main() -> None:
        sleeper = manyio.spawn(manyio.sleep(100))
        waiter = manyio.spawn(manyio.Event().wait())
        await manyio.sleep(0.01)
        for task in (sleeper, waiter):
            task.cancel()
            with pytest.raises(manyio.Cancelled):
                await task
            assert task.cancelled()

    run(main)


# --- start() -------------------------------------------------------------------------------


def test_start_returns_the_started_value_and_the_child_keeps_running() -> None:
    log: list[str] = []

    async def server(port: int, *, task_status: manyio.TaskStatus[int]) -> None:
        log.append("setting up")
        await manyio.sleep(0.01)
        task_status.started(port + 1)
        await manyio.sleep(0.02)
        log.append("served")

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            value = await tg.start(server, 8000)
            assert value == 8001
            assert log == ["setting up"]
        assert log == ["setting up", "served"]

    run(main)


def test_start_without_a_value_returns_none() -> None:
    async def ready(*, task_status: manyio.TaskStatus[None]) -> None:
        task_status.started()

    async def main() -> object:
        async with manyio.TaskGroup() as tg:
            return await tg.start(ready)

    assert run(main) is None


def test_failure_before_started_is_raised_by_start_not_the_group() -> None:
    async def broken(*, task_status: manyio.TaskStatus[None]) -> None:
        await manyio.checkpoint()
        raise OSError("could not bind")

    async def main() -> str:
        async with manyio.TaskGroup() as tg:
            other = tg.spawn(manyio.sleep(0.02))
            with pytest.raises(OSError, match="could not bind"):
                await tg.start(broken)
            assert not tg.cancel_scope.cancel_called
        assert not other.cancelled()
        return "group not failed"

    assert run(main) == "group not failed"


def test_failure_after_started_goes_to_the_group() -> None:
    async def flaky(*, task_status: manyio.TaskStatus[None]) -> None:
        task_status.started()
        await manyio.sleep(0.01)
        raise OSError("later")

    async def main() -> None:
        with pytest.raises(ExceptionGroup) as info:
            async with manyio.TaskGroup() as tg:
                await tg.start(flaky)
                await manyio.sleep(100)
        assert isinstance(info.value.exceptions[0], OSError)

    run(main)


def test_returning_without_calling_started_is_an_error() -> None:
    async def lazy(*, task_status: manyio.TaskStatus[None]) -> None:
        await manyio.checkpoint()

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            with pytest.raises(RuntimeError, match="started"):
                await tg.start(lazy)

    run(main)


def test_started_twice_is_an_error() -> None:
    async def twice(*, task_status: manyio.TaskStatus[None]) -> None:
        task_status.started()
        with pytest.raises(RuntimeError, match="already"):
            task_status.started()

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            await tg.start(twice)

    run(main)


def test_cancelling_the_caller_of_start_cancels_the_starting_task() -> None:
    log: list[str] = []

    async def slow_start(*, task_status: manyio.TaskStatus[None]) -> None:
        try:
            await manyio.sleep(100)
            task_status.started()  # pragma: no cover
        finally:
            log.append("starter finally")

    async def main() -> None:
        async with manyio.TaskGroup() as tg:
            with manyio.move_on_after(0.02) as scope:
                await tg.start(slow_start)
            assert scope.cancelled_caught
        assert log == ["starter finally"]

    run(main)


# --- misuse ----------------------------------------------------------------------------------


def test_misuse_raises_runtime_error() -> None:
    async def main() -> None:
        tg = manyio.TaskGroup()
        coro = manyio.sleep(0)
        with pytest.raises(RuntimeError, match="async with"):
            tg.start_soon(manyio.sleep, 0)
        async with tg:
            pass
        with pytest.raises(RuntimeError, match="finished"):
            tg.start_soon(manyio.sleep, 0)
        with pytest.raises(RuntimeError, match="once"):
            async with tg:
                pass  # pragma: no cover
        del coro

    run(main)
