"""An AnyIO program on manyio: ``anyio.run(main, backend="manyio")``.

The program is plain AnyIO (task groups, memory object streams, ``fail_after``,
``to_thread``, a TCP server and client); importing ``manyio_anyio`` registers the backend.
Needs the ``manyio-anyio`` package (and anyio).

    python examples/anyio_app.py
"""

from __future__ import annotations

import time

import anyio
import manyio_anyio  # noqa: F401  (registers the "manyio" backend; or manyio.compat.patch_all())
import sniffio
from anyio.abc import SocketStream


async def producer(send: anyio.abc.ObjectSendStream[int], count: int) -> None:
    async with send:
        for i in range(count):
            await send.send(i)


async def consumer(receive: anyio.abc.ObjectReceiveStream[int], results: list[int]) -> None:
    async with receive:
        async for item in receive:
            results.append(item * item)


async def shout(stream: SocketStream) -> None:
    async with stream:
        await stream.send((await stream.receive()).upper())


async def main() -> None:
    print("async library:", sniffio.current_async_library())

    send, receive = anyio.create_memory_object_stream[int](max_buffer_size=4)
    results: list[int] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(producer, send, 10)
        tg.start_soon(consumer, receive, results)
    print("squares:", results)

    with anyio.move_on_after(0.05) as scope:
        await anyio.sleep(10)
    print("timed out:", scope.cancelled_caught)

    slept = await anyio.to_thread.run_sync(lambda: time.sleep(0.01) or "done")
    print("thread:", slept)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, shout)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            await client.send(b"hello")
            print("server said:", (await client.receive()).decode())
        tg.cancel_scope.cancel()


if __name__ == "__main__":
    anyio.run(main, backend="manyio", backend_options={"threads": 2})
