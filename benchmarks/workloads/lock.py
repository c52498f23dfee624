"""lock: 100 tasks x (size / 100) lock acquire/release, each incrementing a shared counter.

The increment is a plain read-modify-write, so with several worker threads a lock that does
not exclude shows up as a wrong count.
"""

from __future__ import annotations

from typing import Any

NAME = "lock"
TASKS = 100


def sizes(quick: bool) -> list[int]:
    return [TASKS * 100] if quick else [TASKS * 1000]


def label(size: int) -> str:
    return f"{TASKS}x{size // TASKS}"


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == size, f"counter {result!r} != {size}"


async def _asyncio(size: int, params: dict[str, Any]) -> int:
    import asyncio

    lock = asyncio.Lock()
    counter = [0]

    async def worker() -> None:
        for _ in range(size // TASKS):
            async with lock:
                counter[0] += 1

    await asyncio.gather(*[worker() for _ in range(TASKS)])
    return counter[0]


async def _trio(size: int, params: dict[str, Any]) -> int:
    import trio

    lock = trio.Lock()
    counter = [0]

    async def worker() -> None:
        for _ in range(size // TASKS):
            async with lock:
                counter[0] += 1

    async with trio.open_nursery() as nursery:
        for _ in range(TASKS):
            nursery.start_soon(worker)
    return counter[0]


async def _manyio(size: int, params: dict[str, Any]) -> int:
    import manyio

    lock = manyio.Lock()
    counter = [0]

    async def worker() -> None:
        for _ in range(size // TASKS):
            async with lock:
                counter[0] += 1

    async with manyio.TaskGroup() as tg:
        for _ in range(TASKS):
            tg.start_soon(worker)
    return counter[0]


async def _tonio(size: int, params: dict[str, Any]) -> int:
    import tonio.colored as tc
    from tonio.colored.sync import Lock

    lock = Lock()
    counter = [0]

    async def worker() -> None:
        for _ in range(size // TASKS):
            async with lock:
                counter[0] += 1

    await tc.spawn(*[worker() for _ in range(TASKS)])
    return counter[0]


VARIANTS = {
    "manyio": ("manyio", _manyio),
    "asyncio": ("asyncio", _asyncio),
    "uvloop": ("uvloop", _asyncio),
    "trio": ("trio", _trio),
    "tonio": ("tonio", _tonio),
}
