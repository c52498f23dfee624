"""spawn: N x (spawn a task that yields once and returns 3**2), then await them all."""

from __future__ import annotations

from typing import Any

NAME = "spawn"


def sizes(quick: bool) -> list[int]:
    return [10_000] if quick else [100_000, 1_000_000]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == 9 * size, f"sum of results {result!r} != {9 * size}"


async def _asyncio(n: int, params: dict[str, Any]) -> int:
    import asyncio

    async def one() -> int:
        await asyncio.sleep(0)
        return 3**2

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    return sum(await asyncio.gather(*tasks))


async def _trio(n: int, params: dict[str, Any]) -> int:
    import trio

    results: list[int] = []

    async def one() -> None:
        await trio.lowlevel.checkpoint()
        results.append(3**2)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    assert len(results) == n
    return sum(results)


def _manyio_one() -> Any:
    # A closure over the imported module, as in every peer's variant: an import statement in
    # the task's body would cost each of the N tasks a module lookup the peers do not pay.
    import manyio

    async def one() -> int:
        await manyio.checkpoint()
        return 3**2

    return one


async def _manyio(n: int, params: dict[str, Any]) -> int:
    import manyio

    one = _manyio_one()
    tasks = [manyio.spawn(one()) for _ in range(n)]
    total = 0
    for t in tasks:
        total += await t
    return total


async def _manyio_taskgroup(n: int, params: dict[str, Any]) -> int:
    import manyio

    one = _manyio_one()
    async with manyio.TaskGroup() as tg:
        tasks = [tg.spawn(one()) for _ in range(n)]
    return sum(t.result() for t in tasks)


async def _tonio(n: int, params: dict[str, Any]) -> int:
    import tonio.colored as tc

    async def one() -> int:
        await tc.yield_now()
        return 3**2

    return sum(await tc.spawn(*[one() for _ in range(n)]))


VARIANTS = {
    "manyio": ("manyio", _manyio),
    "manyio-taskgroup": ("manyio", _manyio_taskgroup),
    "asyncio": ("asyncio", _asyncio),
    "uvloop": ("uvloop", _asyncio),
    "trio": ("trio", _trio),
    "tonio": ("tonio", _tonio),
}
