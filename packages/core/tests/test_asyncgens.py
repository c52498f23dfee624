"""Async generators abandoned part-way are closed in a task, so their ``finally`` may await."""

from __future__ import annotations

import gc

import manyio
import pytest

pytestmark = pytest.mark.timeout(60)


def test_abandoned_async_generator_runs_its_awaiting_finally() -> None:
    async def main() -> None:
        closed = manyio.Event()
        steps: list[str] = []

        async def numbers():  # type: ignore[no-untyped-def]
            try:
                yield 1
                yield 2
            finally:
                await manyio.sleep(0.01)  # cleanup that awaits needs a task to run in
                steps.append("cleaned up")
                closed.set()

        async def first() -> int:
            async for n in numbers():
                return n  # abandons the generator, suspended at its first yield
            raise AssertionError

        assert await first() == 1
        gc.collect()
        with manyio.fail_after(5):
            await closed.wait()
        assert steps == ["cleaned up"]

    manyio.run(main(), threads=2)


def test_many_generators_abandoned_on_every_worker_are_all_closed() -> None:
    async def main() -> None:
        closed: list[int] = []

        async def gen(i: int):  # type: ignore[no-untyped-def]
            try:
                yield i
                yield i
            finally:
                await manyio.checkpoint()
                closed.append(i)

        async def take_one(i: int) -> None:
            async for _ in gen(i):
                break

        async with manyio.TaskGroup() as tg:
            for i in range(200):
                tg.start_soon(take_one, i)
        gc.collect()
        with manyio.fail_after(5):
            while len(closed) < 200:
                await manyio.sleep(0.005)
        assert sorted(closed) == list(range(200))

    manyio.run(main(), threads=2)


def test_a_failing_cleanup_reaches_the_task_error_handler() -> None:
    errors: list[BaseException] = []

    async def main() -> None:
        async def broken():  # type: ignore[no-untyped-def]
            try:
                yield 1
            finally:
                await manyio.checkpoint()
                raise ValueError("cleanup failed")

        async def first() -> None:
            async for _ in broken():
                break

        await first()
        gc.collect()
        with manyio.fail_after(5):
            while not errors:
                await manyio.sleep(0.005)

    def handler(context: dict[str, object]) -> None:
        errors.append(context["exception"])  # type: ignore[arg-type]

    with manyio.Runtime(threads=2, exception_handler=handler) as rt:
        rt.block_on(main())
    assert [str(e) for e in errors] == ["cleanup failed"]
