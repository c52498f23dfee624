"""An unchanged asyncio program on manyio: ``manyio.asyncio.run(main())``.

``main`` below is ordinary asyncio (a stream server, clients, ``asyncio.gather``,
``asyncio.timeout``, a queue, a subprocess). ``manyio.asyncio.run`` runs it on a manyio
runtime, in a strand: one step at a time, on whichever worker is free, so code that assumes
nothing else runs between its awaits stays correct. The second half runs four copies of the
program at once, each in a strand of its own, in parallel.

    python examples/asyncio_program.py
"""

from __future__ import annotations

import asyncio
import sys

import manyio
import manyio.asyncio


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line[::-1].strip() + b"\n")
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def client(port: int, word: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(word.encode() + b"\n")
    reply = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return reply.decode().strip()


async def main() -> list[str]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, asyncio.timeout(5):
        replies = await asyncio.gather(*(client(port, w) for w in ("manyio", "asyncio", "strand")))

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(3):
        queue.put_nowait(i)
    drained = [queue.get_nowait() for _ in range(queue.qsize())]

    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "print('child ok')", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    return [*replies, str(drained), out.decode().strip()]


async def four_programs() -> list[list[str]]:
    async with manyio.TaskGroup() as tg:
        tasks = [tg.spawn(manyio.asyncio.run_in_strand(main())) for _ in range(4)]
    return [t.result() for t in tasks]


if __name__ == "__main__":
    result = manyio.asyncio.run(main(), threads=2)
    print("one program:", result)
    results = manyio.run(four_programs, threads=2)
    print("four programs agree:", all(r == result for r in results))
