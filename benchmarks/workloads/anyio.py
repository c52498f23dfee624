"""anyio: one AnyIO program on every AnyIO backend (issue 8's workload).

A TCP echo service and its clients in one process, written only against AnyIO: a task group
per side; per connection, the server's reader passes each 64-byte frame through a memory
object stream to a worker task that does a CPU step (``cpu.burn``, ~50 µs) and sends the
reply; 16 clients send frames one at a time and check every reply. ``size`` is the number of
frames in all. Backends: manyio (default mode: the run's tasks share a strand; parallel mode:
tasks on every worker), asyncio, uvloop and trio.
"""

from __future__ import annotations

from typing import Any

from .cpu import burn

NAME = "anyio"
CONNECTIONS = 16
FRAME = 64
ITERS = 1200  # the CPU step: ~50 µs of pure-Python work on these machines
# Ratios in this workload are against AnyIO on asyncio (there is no plain manyio cell).
BASELINE = ("anyio-asyncio", 1)


def sizes(quick: bool) -> list[int]:
    return [3_200] if quick else [16_000]


def label(size: int) -> str:
    return f"{size // 1000}k frames x{CONNECTIONS} conns + CPU step"


def _reply_byte(seed: int) -> int:
    return burn(ITERS, seed) % 251


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    frames, checksum = result
    per_conn = size // CONNECTIONS
    want = sum(_reply_byte(i % 251) for i in range(per_conn)) * CONNECTIONS
    assert frames == per_conn * CONNECTIONS, f"{frames} frames, expected {per_conn * CONNECTIONS}"
    assert checksum == want, f"checksum {checksum} != {want}"


async def main(size: int, params: dict[str, Any]) -> tuple[int, int]:
    import anyio
    from anyio.abc import SocketAttribute, SocketStream
    from anyio.streams.buffered import BufferedByteReceiveStream

    per_conn = size // CONNECTIONS
    expected = [_reply_byte(seed) for seed in range(251)]
    totals = [0, 0]  # frames, checksum (each client adds once, at its end)

    async def serve(stream: SocketStream) -> None:
        send, receive = anyio.create_memory_object_stream[bytes](8)

        async def work() -> None:
            async with receive:
                async for frame in receive:
                    reply = bytes([burn(ITERS, frame[0]) % 251]) + frame[1:]
                    await stream.send(reply)

        async with stream, anyio.create_task_group() as tg:
            tg.start_soon(work)
            buffered = BufferedByteReceiveStream(stream)
            async with send:
                try:
                    while True:
                        await send.send(await buffered.receive_exactly(FRAME))
                except anyio.EndOfStream, anyio.IncompleteRead:
                    pass

    async def client(port: int) -> tuple[int, int]:
        frames = checksum = 0
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            buffered = BufferedByteReceiveStream(stream)
            for i in range(per_conn):
                seed = i % 251
                await stream.send(bytes([seed]) * FRAME)
                reply = await buffered.receive_exactly(FRAME)
                assert reply[0] == expected[seed], (reply[0], expected[seed])
                frames += 1
                checksum += reply[0]
        return frames, checksum

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    results: list[tuple[int, int]] = []

    async def run_client() -> None:
        results.append(await client(port))

    async with listener, anyio.create_task_group() as server_tg:
        server_tg.start_soon(listener.serve, serve)
        async with anyio.create_task_group() as clients:
            for _ in range(CONNECTIONS):
                clients.start_soon(run_client)
        server_tg.cancel_scope.cancel()
    for frames, checksum in results:
        totals[0] += frames
        totals[1] += checksum
    return totals[0], totals[1]


VARIANTS = {
    "anyio-manyio": ("anyio-manyio", main),
    "anyio-manyio-parallel": ("anyio-manyio-parallel", main),
    "anyio-asyncio": ("anyio-asyncio", main),
    "anyio-uvloop": ("anyio-uvloop", main),
    "anyio-trio": ("anyio-trio", main),
}
