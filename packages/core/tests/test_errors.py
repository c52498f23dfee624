"""User mistakes get clear errors, and the process survives them."""

from __future__ import annotations

import asyncio
import sys
import types
from collections.abc import Callable
from typing import Any

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)

THREADS = 2


def run(main, threads: int = THREADS, **kwargs):  # type: ignore[no-untyped-def]
    return manyio.run(main, threads=threads, **kwargs)


@types.coroutine
def _yield(obj: object):  # type: ignore[no-untyped-def]
    return (yield obj)


# --- awaiting things the scheduler does not understand ------------------------------------


def test_yielding_an_unsupported_object_raises_type_error_inside_the_coroutine() -> None:
    async def main() -> str:
        with pytest.raises(TypeError, match="42") as info:
            await _yield(42)
        assert "manyio" in str(info.value)
        # The task carries on normally afterwards.
        await manyio.sleep(0.001)
        return "survived"

    assert run(main) == "survived"


def test_an_uncaught_bad_yield_fails_the_task_not_the_process() -> None:
    async def main() -> None:
        await _yield("a string")

    with pytest.raises(TypeError, match="a string"):
        run(main)

    # The next runtime works.
    async def again() -> int:
        await manyio.checkpoint()
        return 1

    assert run(again) == 1


def test_bad_yield_in_a_spawned_task_fails_only_that_task() -> None:
    async def bad() -> None:
        await _yield(object())

    async def main() -> None:
        task = manyio.spawn(bad())
        with pytest.raises(TypeError, match="object"):
            await task
        await manyio.sleep(0.001)

    run(main)


def test_an_asyncio_future_nobody_completes_can_be_cancelled() -> None:
    # manyio tasks may await asyncio futures; one that never completes is cancellable like
    # any other wait, and the cancellation reaches the future.
    async def main() -> bool:
        loop = asyncio.new_event_loop()
        try:
            fut = loop.create_future()
            with manyio.move_on_after(0.01) as scope:
                await fut
            return scope.cancelled_caught and fut.cancelled()
        finally:
            loop.close()

    assert run(main)


def test_asyncio_sleep_inside_manyio_raises_type_error() -> None:
    async def main() -> None:
        with pytest.raises((TypeError, RuntimeError)):
            await asyncio.sleep(0.01)
        await manyio.checkpoint()

    run(main)


def test_spawning_the_same_coroutine_twice_is_refused() -> None:
    # Two tasks stepping one coroutine on two threads would crash free-threaded CPython: the
    # second spawn must raise instead, and the first task must run normally.
    gate = manyio.Event()

    async def body() -> str:
        await gate.wait()
        for _ in range(200):
            await manyio.checkpoint()
        return "ran"

    async def main() -> str:
        coro = body()
        first = manyio.spawn(coro)
        with pytest.raises(RuntimeError, match="already belongs to a running task"):
            manyio.spawn(coro)
        gate.set()
        result = await first
        # Once the first task is over, the claim is released (a new coroutine may reuse the
        # address); the finished coroutine itself cannot run again.
        again = manyio.spawn(body())
        assert await again == "ran"
        return result

    assert run(main) == "ran"


# --- using manyio outside a runtime -----------------------------------------------------------


def _drive(coro: Any) -> None:
    """Runs a coroutine by hand (no runtime) until it raises."""
    try:
        coro.send(None)
    finally:
        coro.close()


async def _noop() -> None:
    pass


OUTSIDE: dict[str, Callable[[], object]] = {
    "sleep": lambda: manyio.sleep(1),
    "sleep_until": lambda: manyio.sleep_until(0),
    "checkpoint": manyio.checkpoint,
    "current_task": manyio.current_task,
    "all_tasks": manyio.all_tasks,
    "current_effective_deadline": manyio.current_effective_deadline,
    "stats": manyio.stats,
    "CancelScope": lambda: manyio.CancelScope().__enter__(),
    "move_on_after": lambda: manyio.move_on_after(1).__enter__(),
    "Lock.acquire_nowait": lambda: manyio.Lock().acquire_nowait(),
    "Lock.acquire": lambda: _drive(manyio.Lock().acquire()),
    "Semaphore.acquire": lambda: _drive(manyio.Semaphore(1).acquire()),
    "channel.receive": lambda: _drive(manyio.channel(1)[1].receive()),
    "Queue.get": lambda: _drive(manyio.Queue().get()),
    "to_thread": lambda: _drive(manyio.to_thread(print)),
    "TaskGroup": lambda: _drive(_enter_task_group()),
}


async def _enter_task_group() -> None:
    async with manyio.TaskGroup():
        pass


@pytest.mark.parametrize("name", list(OUTSIDE))
def test_using_manyio_outside_a_runtime_raises_runtime_error(name: str) -> None:
    with pytest.raises(RuntimeError, match=r"manyio runtime|manyio\.run"):
        OUTSIDE[name]()


def test_spawn_outside_a_runtime_raises_runtime_error() -> None:
    coro = _noop()
    try:
        with pytest.raises(RuntimeError, match=r"manyio\.spawn\(\).*manyio runtime"):
            manyio.spawn(coro)
    finally:
        coro.close()


def test_the_message_names_the_function_and_how_to_start_a_runtime() -> None:
    with pytest.raises(RuntimeError) as info:
        manyio.sleep(1)
    message = str(info.value)
    assert "manyio.sleep()" in message
    assert "manyio.run(" in message


def test_manyio_functions_inside_asyncio_raise_runtime_error() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="manyio runtime"):
            await manyio.sleep(0.01)
        with pytest.raises(RuntimeError, match="manyio runtime"):
            manyio.current_task()

    asyncio.run(main())


def test_from_thread_in_a_plain_thread_raises_runtime_error() -> None:
    with pytest.raises(RuntimeError, match="to_thread"):
        manyio.from_thread.run(_noop)


# --- the exception handler itself failing -------------------------------------------------


def test_a_failing_exception_handler_goes_to_unraisablehook(
    monkeypatch: pytest.MonkeyPatch, wait_until
) -> None:
    unraisable: list[BaseException | None] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_value))

    def handler(context: dict[str, object]) -> None:
        raise RuntimeError("handler broke")

    async def failing() -> None:
        raise ValueError("lost")

    async def main() -> None:
        manyio.spawn(failing())
        await wait_until(lambda: unraisable)

    run(main, exception_handler=handler)
    assert any(isinstance(e, RuntimeError) and "handler broke" in str(e) for e in unraisable)


def test_exceptions_raised_by_a_task_keep_their_traceback() -> None:
    async def deep() -> None:
        await manyio.checkpoint()
        raise ValueError("with traceback")

    async def main() -> None:
        task = manyio.spawn(deep())
        with pytest.raises(ValueError) as info:
            await task
        frames = [f.name for f in info.traceback]
        assert "deep" in frames

    run(main)
