"""pingpong: two tasks alternating via events, N round trips.

Runtimes whose Event can be cleared (asyncio, manyio, tonio) reuse two events; trio's cannot,
so each side replaces the event it woke on before signalling the other. A shared ``ball``
checks that the two sides strictly alternate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

NAME = "pingpong"


def sizes(quick: bool) -> list[int]:
    return [10_000] if quick else [100_000]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == (size, size), f"round trips {result!r} != {(size, size)}"


def _check(ball: list[int], want: int) -> None:
    if ball[0] != want:
        raise AssertionError(f"ball is {ball[0]}, expected {want}: the tasks did not alternate")


async def _rally(n: int, ping: Any, pong: Any, spawn: Callable[[Any], Any]) -> tuple[int, int]:
    """The ping-pong loop for runtimes whose events wait with ``await event.wait()``."""
    ball = [0]

    async def ponger() -> int:
        for i in range(n):
            await ping.wait()
            ping.clear()
            _check(ball, i)
            ball[0] = -i - 1
            pong.set()
        return n

    task = spawn(ponger())
    for i in range(n):
        ball[0] = i
        ping.set()
        await pong.wait()
        pong.clear()
        _check(ball, -i - 1)
    return n, await task


async def _asyncio(n: int, params: dict[str, Any]) -> tuple[int, int]:
    import asyncio

    return await _rally(n, asyncio.Event(), asyncio.Event(), asyncio.create_task)


async def _manyio(n: int, params: dict[str, Any]) -> tuple[int, int]:
    import manyio

    return await _rally(n, manyio.Event(), manyio.Event(), manyio.spawn)


async def _tonio(n: int, params: dict[str, Any]) -> tuple[int, int]:
    import tonio.colored as tc

    ping, pong = tc.Event(), tc.Event()
    ball = [0]

    async def ponger() -> int:
        for i in range(n):
            await ping.waiter(None)
            ping.clear()
            _check(ball, i)
            ball[0] = -i - 1
            pong.set()
        return n

    joined = tc.spawn(ponger())
    for i in range(n):
        ball[0] = i
        ping.set()
        await pong.waiter(None)
        pong.clear()
        _check(ball, -i - 1)
    return n, await joined


async def _trio(n: int, params: dict[str, Any]) -> tuple[int, int]:
    import trio

    ev = {"ping": trio.Event(), "pong": trio.Event()}
    ball = [0]
    done = [0]

    async def ponger() -> None:
        for i in range(n):
            await ev["ping"].wait()
            ev["ping"] = trio.Event()
            _check(ball, i)
            ball[0] = -i - 1
            ev["pong"].set()
        done[0] = n

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ponger)
        for i in range(n):
            ball[0] = i
            ev["ping"].set()
            await ev["pong"].wait()
            ev["pong"] = trio.Event()
            _check(ball, -i - 1)
    return n, done[0]


VARIANTS = {
    "manyio": ("manyio", _manyio),
    "asyncio": ("asyncio", _asyncio),
    "uvloop": ("uvloop", _asyncio),
    "trio": ("trio", _trio),
    "tonio": ("tonio", _tonio),
}
