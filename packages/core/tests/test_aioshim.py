"""``manyio._aioshim``: the asyncio names adapters give libraries, answered by manyio inside
manyio tasks (futures made without a loop, ``shield`` of a coroutine and of a future)."""

from __future__ import annotations

import asyncio
import contextvars

import manyio
import pytest
from manyio import _aioshim as shim

pytestmark = pytest.mark.timeout(60)


def test_future_without_a_loop_belongs_to_the_shim_loop_and_runs_its_callbacks() -> None:
    async def main() -> None:
        fut = shim.Future()
        assert isinstance(fut, asyncio.Future)
        assert fut.get_loop() is shim.get_running_loop()
        seen: list[object] = []
        fut.add_done_callback(lambda f: seen.append(f.result()))

        async def resolve() -> None:
            await manyio.sleep(0.01)
            fut.set_result(42)

        manyio.spawn(resolve())
        assert await fut == 42
        while not seen:
            await manyio.sleep(0.001)
        assert seen == [42]

    manyio.run(main(), threads=2)


def test_loop_create_future_and_call_soon() -> None:
    async def main() -> None:
        loop = shim.get_running_loop()
        fut = loop.create_future()
        handle = loop.call_soon(fut.set_result, "soon")
        assert await fut == "soon"
        cancelled = loop.create_future()
        loop.call_soon(cancelled.set_result, "never").cancel()
        await manyio.sleep(0.02)
        assert not cancelled.done()
        assert not handle.cancelled()

    manyio.run(main(), threads=2)


def test_future_outside_manyio_is_asyncios() -> None:
    async def main() -> None:
        fut = shim.Future()
        assert fut.get_loop() is asyncio.get_running_loop()
        asyncio.get_running_loop().call_soon(fut.set_result, 1)
        assert await fut == 1

    asyncio.run(main())


def test_shield_of_a_future_lets_the_caller_go_and_leaves_the_future_alone() -> None:
    async def main() -> None:
        fut = shim.Future()
        with manyio.move_on_after(0.05) as scope:
            await shim.shield(fut)
        assert scope.cancelled_caught
        assert not fut.cancelled()
        fut.set_result("later")
        assert await shim.shield(fut) == "later"

    manyio.run(main(), threads=2)


def test_shield_of_a_coroutine_finishes_it_before_the_cancellation() -> None:
    async def main() -> None:
        finished: list[bool] = []

        async def work() -> str:
            await manyio.sleep(0.1)
            finished.append(True)
            return "done"

        with manyio.move_on_after(0.02) as scope:
            await shim.shield(work())
            await manyio.checkpoint()
        assert scope.cancelled_caught
        assert finished == [True]

    manyio.run(main(), threads=2)


def test_wait_for_timeout_on_a_shielded_future_raises_timeout_error() -> None:
    async def main() -> None:
        fut = shim.Future()
        with pytest.raises(TimeoutError):
            await shim.wait_for(shim.shield(fut), 0.05)
        assert not fut.done()

    manyio.run(main(), threads=2)


def test_current_task_inside_create_task_is_the_task_it_returned() -> None:
    async def main() -> None:
        seen: dict[str, object] = {}

        async def child() -> None:
            seen["child"] = shim.current_task()
            seen["child manyio"] = manyio.current_task()

        async def body() -> None:
            seen["body"] = shim.current_task()
            inner = manyio.spawn(child())  # inherits the context, but is not the shim task
            await inner
            seen["inner"] = inner

        task = shim.create_task(body())
        await task
        assert seen["body"] is task
        assert seen["child"] is seen["child manyio"] is seen["inner"]
        assert shim.current_task() is manyio.current_task()  # not made by create_task
        given = contextvars.copy_context()
        in_context = shim.create_task(body(), context=given)
        await in_context
        assert seen["body"] is in_context

    manyio.run(main(), threads=2)
