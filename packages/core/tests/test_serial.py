"""SerialLock and Serialized: steps of coroutines under a reentrant thread lock, from tasks."""

from __future__ import annotations

import threading
import types

import manyio
import pytest
from manyio._core import Serialized, SerialLock


def test_lock_is_reentrant_per_thread_and_owned() -> None:
    lock = SerialLock()
    with lock:
        assert lock.try_acquire()  # the holder again
        lock.release()
        taken_elsewhere: list[bool] = []
        thread = threading.Thread(target=lambda: taken_elsewhere.append(lock.try_acquire()))
        thread.start()
        thread.join()
        assert taken_elsewhere == [False]
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="does not hold"):
        lock.release()


def test_a_blocked_thread_gets_the_lock_on_release() -> None:
    lock = SerialLock()
    order: list[str] = []
    lock.acquire()
    thread = threading.Thread(target=lambda: (lock.acquire(), order.append("thread"), lock.release()))
    thread.start()
    thread.join(0.05)
    assert thread.is_alive()
    order.append("holder")
    lock.release()
    thread.join(5)
    assert order == ["holder", "thread"]


@pytest.mark.manyio(threads=1)
async def test_steps_hold_the_lock_and_the_result_comes_back() -> None:
    lock = SerialLock()
    held: list[bool] = []

    async def operation(x: int) -> int:
        held.append(lock.locked())
        await manyio.checkpoint()
        held.append(lock.locked())
        return x * 2

    assert await Serialized(operation(21), lock) == 42
    assert held == [True, True]
    assert not lock.locked()


@pytest.mark.manyio(threads=1)
async def test_an_error_runs_on_error_under_the_lock_then_propagates() -> None:
    lock = SerialLock()
    seen: list[bool] = []

    async def failing() -> None:
        await manyio.checkpoint()
        raise KeyError("boom")

    with pytest.raises(KeyError):
        await Serialized(failing(), lock, lambda: seen.append(lock.locked()))
    assert seen == [True]
    assert not lock.locked()


def _drive(awaitable: Serialized[object]) -> types.GeneratorType[object, object, object]:
    return awaitable.__await__()  # type: ignore[return-value]


def test_throw_accepts_both_forms_and_close_closes_the_coroutine() -> None:
    lock = SerialLock()
    finished: list[str] = []

    @types.coroutine
    def pause() -> types.GeneratorType[str, object, object]:
        return (yield "paused")

    async def operation() -> str:
        try:
            await pause()
        except ValueError as e:
            finished.append(f"caught {e}")
            await pause()
        finally:
            finished.append("finally")
        return "unreachable"

    steps = _drive(Serialized(operation(), lock))
    assert next(steps) == "paused"
    assert steps.throw(ValueError("one")) == "paused"  # the modern form
    steps.close()
    assert finished == ["caught one", "finally"]
    assert not lock.locked()

    steps = _drive(Serialized(operation(), lock))
    next(steps)
    assert steps.throw(ValueError, "two") == "paused"  # the old (type, value) form
    steps.close()
    assert finished[-2:] == ["caught two", "finally"]


@pytest.mark.manyio(threads=2)
async def test_tasks_park_while_a_thread_holds_it_and_all_get_through() -> None:
    lock = SerialLock()
    holding = threading.Event()
    let_go = threading.Event()
    inside = 0
    overlaps = 0

    def holder() -> None:
        with lock:
            holding.set()
            let_go.wait(10)

    async def operation() -> None:
        nonlocal inside, overlaps
        for _ in range(5):
            inside += 1
            overlaps += inside > 1
            inside -= 1
            await manyio.checkpoint()

    async def serialized() -> None:
        await Serialized(operation(), lock)

    thread = threading.Thread(target=holder)
    thread.start()
    await manyio.to_thread(holding.wait, 10)
    async with manyio.TaskGroup() as tg:
        for _ in range(50):
            tg.start_soon(serialized)
        await manyio.sleep(0.05)  # every task has parked on the lock by now; workers are free
        let_go.set()
    await manyio.to_thread(thread.join)
    assert overlaps == 0
    assert not lock.locked()
