"""facade: unmodified asyncio code on manyio's loop facade vs stock asyncio and uvloop (issue 4).

The same asyncio program is split into K = 4 independent parts (``PARTS``):

* ``call_soon``: K chains of callbacks, each scheduling the next with ``loop.call_soon``;
* ``gather``: ``create_task`` + ``gather`` of trivial coroutines, in batches of 500;
* ``echo``: per part a stream server and 4 clients exchanging 64-byte frames
  (``open_connection``/``start_server``, ``readexactly``);
* ``echo+cpu``: the same with a ~50 µs pure-Python step per frame on the server.

Implementations: stock ``asyncio`` and ``uvloop`` run the K parts as tasks on one loop;
``manyio-facade`` runs that very program with ``manyio.asyncio.run`` (one strand);
``manyio-strands`` runs each part in a strand of its own (``run_in_strand``), so the parts
run in parallel on the workers while each stays single-threaded inside.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .cpu import burn

NAME = "facade"
PARTS = 4
CONNS_PER_PART = 4
FRAME = 64
ITERS = 1200  # ~50 µs of pure-Python work per frame in echo+cpu
KINDS = ("call_soon", "gather", "echo", "echo+cpu")
BASELINE = ("asyncio", 1)


def cases(quick: bool) -> list[tuple[int, dict[str, Any], str]]:
    scale = 5 if quick else 1
    sizes = {"call_soon": 400_000, "gather": 100_000, "echo": 32_000, "echo+cpu": 16_000}
    return [
        (sizes[k] // scale, {"kind": k}, f"{k} {sizes[k] // scale // 1000}k x{PARTS} parts") for k in KINDS
    ]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    per_part = size // PARTS
    if params["kind"] == "echo+cpu":
        want = [sum(burn(ITERS, i % 251) for i in range(per_part // CONNS_PER_PART)) * CONNS_PER_PART]
        assert result == want * PARTS, (result, want)
    else:
        assert result == [per_part] * PARTS, (result, per_part)


async def _call_soon_part(n: int) -> int:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0

    def hop() -> None:
        nonlocal count
        count += 1
        if count < n:
            loop.call_soon(hop)
        else:
            done.set_result(count)

    loop.call_soon(hop)
    return await done


async def _nothing(i: int) -> int:
    return i


async def _gather_part(n: int) -> int:
    total = 0
    for start in range(0, n, 500):
        total += len(
            await asyncio.gather(
                *(asyncio.create_task(_nothing(i)) for i in range(start, min(n, start + 500)))
            )
        )
    return total


async def _echo_part(n: int, cpu: bool) -> int:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                frame = await reader.readexactly(FRAME)
                if cpu:
                    frame = bytes([burn(ITERS, frame[0]) % 251]) + frame[1:]
                writer.write(frame)
        except asyncio.IncompleteReadError:
            pass
        writer.close()

    async def client(port: int, frames: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        total = 0
        for i in range(frames):
            writer.write(bytes([i % 251]) * FRAME)
            reply = await reader.readexactly(FRAME)
            total += reply[0] if cpu else 1
        writer.close()
        await writer.wait_closed()
        return total

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        results = await asyncio.gather(*(client(port, n // CONNS_PER_PART) for _ in range(CONNS_PER_PART)))
    return sum(results)


def _part(kind: str, n: int) -> Any:
    if kind == "call_soon":
        return _call_soon_part(n)
    if kind == "gather":
        return _gather_part(n)
    return _echo_part(n, cpu=kind == "echo+cpu")


async def main(size: int, params: dict[str, Any]) -> list[int]:
    """The asyncio program: K parts as tasks of one loop."""
    return list(await asyncio.gather(*(_part(params["kind"], size // PARTS) for _ in range(PARTS))))


async def main_strands(size: int, params: dict[str, Any]) -> list[int]:
    """On manyio: each part runs on the loop of a strand of its own."""
    import manyio
    import manyio.asyncio

    async with manyio.TaskGroup() as tg:
        tasks = [
            tg.spawn(manyio.asyncio.run_in_strand(_part(params["kind"], size // PARTS))) for _ in range(PARTS)
        ]
    return [t.result() for t in tasks]


VARIANTS = {
    "asyncio": ("asyncio", main),
    "uvloop": ("uvloop", main),
    "manyio-facade": ("asyncio-manyio", main),
    "manyio-strands": ("manyio", main_strands),
}
