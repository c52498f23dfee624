"""A TCP echo server and its clients in one program, on manyio.net.

The server (``manyio.net.serve``) runs each connection's handler in a task of its own; the
clients connect in parallel, send lines and check the echoes. When every client is done the
program cancels the server and exits.

    python examples/echo_server.py [--clients 20] [--messages 50]
"""

from __future__ import annotations

import argparse

import manyio
import manyio.net


async def echo(stream: manyio.net.SocketStream) -> None:
    async for chunk in stream:  # ends when the client closes its side
        await stream.send_all(chunk)


async def client(port: int, ident: int, messages: int) -> int:
    async with await manyio.net.connect_tcp("127.0.0.1", port) as stream:
        for i in range(messages):
            line = f"client {ident} message {i}\n".encode()
            await stream.send_all(line)
            received = b""
            while len(received) < len(line):  # TCP may split or join writes
                received += await stream.receive()
            assert received == line, (received, line)
    return messages


async def main(clients: int, messages: int) -> None:
    listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
    async with manyio.TaskGroup() as server_group:
        server_group.start_soon(manyio.net.serve, listener, echo)
        async with manyio.TaskGroup() as tg:
            results = [tg.spawn(client(listener.port, i, messages)) for i in range(clients)]
        print(f"{clients} clients echoed {sum(t.result() for t in results)} messages")
        server_group.cancel_scope.cancel()  # stop serving; the handlers have all returned
    await listener.aclose()
    print("server stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50)
    args = parser.parse_args()
    manyio.run(main(args.clients, args.messages), threads=2)
