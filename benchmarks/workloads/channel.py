"""channel: 4 producers x 4 consumers move ``size`` integers through a bounded channel (64).

asyncio/uvloop use ``asyncio.Queue(64)`` with one ``None`` sentinel per consumer; trio and
manyio clone the channel ends and close them; tonio closes its single sender once the
producers are done. Count, sum and sum of squares are checked so nothing is lost or doubled.
"""

from __future__ import annotations

from typing import Any

NAME = "channel"
PRODUCERS = 4
CONSUMERS = 4
BUFFER = 64

Tally = tuple[int, int, int]


def sizes(quick: bool) -> list[int]:
    return [20_000] if quick else [200_000]


def expected(size: int) -> Tally:
    return size, size * (size - 1) // 2, (size - 1) * size * (2 * size - 1) // 6


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    want = expected(size)
    assert tuple(result) == want, f"(count, sum, sum of squares) {result!r} != {want}"


def _add(tallies: list[Tally]) -> Tally:
    return (sum(t[0] for t in tallies), sum(t[1] for t in tallies), sum(t[2] for t in tallies))


async def _asyncio(size: int, params: dict[str, Any]) -> Tally:
    import asyncio

    queue: asyncio.Queue[int | None] = asyncio.Queue(BUFFER)

    async def producer(p: int) -> None:
        for i in range(p, size, PRODUCERS):
            await queue.put(i)

    async def consumer() -> Tally:
        n = s = sq = 0
        while (v := await queue.get()) is not None:
            n += 1
            s += v
            sq += v * v
        return n, s, sq

    consumers = [asyncio.create_task(consumer()) for _ in range(CONSUMERS)]
    await asyncio.gather(*[producer(p) for p in range(PRODUCERS)])
    for _ in range(CONSUMERS):
        await queue.put(None)
    return _add(await asyncio.gather(*consumers))


async def _trio(size: int, params: dict[str, Any]) -> Tally:
    import trio

    send, receive = trio.open_memory_channel[int](BUFFER)
    tallies: list[Tally] = []

    async def producer(p: int, ch: trio.MemorySendChannel[int]) -> None:
        async with ch:
            for i in range(p, size, PRODUCERS):
                await ch.send(i)

    async def consumer(ch: trio.MemoryReceiveChannel[int]) -> None:
        n = s = sq = 0
        async with ch:
            async for v in ch:
                n += 1
                s += v
                sq += v * v
        tallies.append((n, s, sq))

    async with trio.open_nursery() as nursery, send, receive:
        for _ in range(CONSUMERS):
            nursery.start_soon(consumer, receive.clone())
        for p in range(PRODUCERS):
            nursery.start_soon(producer, p, send.clone())
    return _add(tallies)


async def _manyio(size: int, params: dict[str, Any]) -> Tally:
    import manyio

    send, receive = manyio.channel(BUFFER)

    async def producer(p: int, ch: manyio.SendChannel[int]) -> None:
        with ch:
            for i in range(p, size, PRODUCERS):
                await ch.send(i)

    async def consumer(ch: manyio.ReceiveChannel[int]) -> Tally:
        n = s = sq = 0
        with ch:
            async for v in ch:
                n += 1
                s += v
                sq += v * v
        return n, s, sq

    with send, receive:
        consumers = [manyio.spawn(consumer(receive.clone())) for _ in range(CONSUMERS)]
        producers = [manyio.spawn(producer(p, send.clone())) for p in range(PRODUCERS)]
    for t in producers:
        await t
    return _add([await t for t in consumers])


async def _tonio(size: int, params: dict[str, Any]) -> Tally:
    import tonio.colored as tc
    from tonio.colored.sync.channel import channel

    send, receive = channel(BUFFER)

    async def producer(p: int) -> None:
        for i in range(p, size, PRODUCERS):
            await send.send(i)

    async def consumer() -> Tally:
        n = s = sq = 0
        while True:
            try:
                v = await receive.receive()
            except BrokenPipeError:  # tonio's "channel closed" once drained
                return n, s, sq
            n += 1
            s += v
            sq += v * v

    consumers = tc.spawn(*[consumer() for _ in range(CONSUMERS)])
    await tc.spawn(*[producer(p) for p in range(PRODUCERS)])
    send.close()
    return _add(await consumers)


VARIANTS = {
    "manyio": ("manyio", _manyio),
    "asyncio": ("asyncio", _asyncio),
    "uvloop": ("uvloop", _asyncio),
    "trio": ("trio", _trio),
    "tonio": ("tonio", _tonio),
}
