"""echo: a TCP echo server per implementation, driven by one external load generator.

The cell (``cell.py``) runs only the server. Each variant opens two listeners on 127.0.0.1:
the echo port and a control port, prints one ``READY_MARK`` line naming both, echoes until
the control connection reaches EOF, and returns how many echo connections ended cleanly
(peer EOF seen, stream closed). ``run.py`` starts the cell, then ``loadgen.py`` in another
process (pinned to a different core), which opens C connections, sends S-byte messages one
at a time per connection, verifies every echoed byte and counts completed requests; then it
connects to the control port and closes it to stop the server.

Every server reads with the same 64 KiB buffer and echoes what it got before reading again;
TCP_NODELAY is on everywhere (manyio, TonIO and asyncio transports set it themselves; the
``asyncio-sock`` variant sets it on accepted sockets).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

NAME = "echo"
SERVER = True  # run.py drives this workload with loadgen.py instead of timing the run call
READY_MARK = "@@manyio-bench-ready@@ "
CHUNK = 65536

KIB = 1024
FULL_SIZES = (1 * KIB, 10 * KIB, 100 * KIB)
FULL_CONNS = (4, 64)
# Seconds of load before the measured window, and the window itself.
FULL_WINDOW = {"warmup": 0.5, "duration": 2.0}
QUICK_WINDOW = {"warmup": 0.2, "duration": 0.5}


def cases(quick: bool) -> list[tuple[int, dict[str, Any], str]]:
    """``(message bytes, params, label)`` per group; params carry the connection count."""
    if quick:
        return [(KIB, {"conns": 4, **QUICK_WINDOW}, "echo 1KiB x4")]
    return [
        (size, {"conns": conns, **FULL_WINDOW}, f"echo {size // KIB}KiB x{conns}")
        for size in FULL_SIZES
        for conns in FULL_CONNS
    ]


def sizes(quick: bool) -> list[int]:
    return sorted({size for size, _, _ in cases(quick)})


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    want = params["conns"]
    assert result == want, f"server saw {result!r} echo connections end cleanly, expected {want}"


def _ready(port: int, ctl_port: int) -> None:
    check = getattr(sys, "_is_gil_enabled", None)
    info = {
        "port": port,
        "ctl_port": ctl_port,
        "pid": os.getpid(),
        "gil_enabled_listening": check and check(),
    }
    print(READY_MARK + json.dumps(info), flush=True)


async def _manyio(size: int, params: dict[str, Any]) -> int:
    import manyio

    done: list[int] = []  # list.append is atomic on the free-threaded build

    async def echo(stream: manyio.net.SocketStream) -> None:
        while data := await stream.receive(CHUNK):
            await stream.send_all(data)
        done.append(1)

    listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
    ctl = await manyio.net.create_tcp_listener("127.0.0.1", 0)
    _ready(listener.port, ctl.port)
    async with manyio.TaskGroup() as tg:
        tg.start_soon(manyio.net.serve, listener, echo)
        async with await ctl.accept() as control:
            while await control.receive():
                pass
        tg.cancel_scope.cancel()
    listener.close()
    ctl.close()
    return len(done)


async def _tonio(size: int, params: dict[str, Any]) -> int:
    import tonio.colored as tc
    import tonio.colored.net as tnet

    done: list[int] = []

    async def echo(stream: Any) -> None:
        # serve_listeners spawns handlers untracked and never closes their streams.
        try:
            while data := await stream.receive_some(CHUNK):
                await stream.send_all(data)
            done.append(1)
        finally:
            stream.close()

    (listener,) = await tnet.open_tcp_listeners(0, host="127.0.0.1")
    (ctl,) = await tnet.open_tcp_listeners(0, host="127.0.0.1")
    _ready(listener.socket.getsockname()[1], ctl.socket.getsockname()[1])
    async with tc.scope() as sc:
        sc.spawn(tnet.serve_listeners(echo, [listener]))
        control = await ctl.accept()
        while await control.receive_some(CHUNK):
            pass
        control.close()
        sc.cancel()
    ctl.close()
    return len(done)


async def _asyncio_streams(size: int, params: dict[str, Any]) -> int:
    import asyncio

    done: list[int] = []
    stop = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                writer.write(data)
                await writer.drain()
            done.append(1)
        finally:
            writer.close()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(CHUNK):
            pass
        writer.close()
        stop.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    ctl = await asyncio.start_server(control, "127.0.0.1", 0)
    _ready(server.sockets[0].getsockname()[1], ctl.sockets[0].getsockname()[1])
    await stop.wait()
    server.close()
    ctl.close()
    return len(done)


def _listen() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(65535)
    sock.setblocking(False)
    return sock


async def _asyncio_sock(size: int, params: dict[str, Any]) -> int:
    import asyncio

    loop = asyncio.get_running_loop()
    done: list[int] = []
    handlers: set[asyncio.Task[None]] = set()

    async def echo(conn: socket.socket) -> None:
        with conn:
            while data := await loop.sock_recv(conn, CHUNK):
                await loop.sock_sendall(conn, data)
            done.append(1)

    async def accept_loop(lsock: socket.socket) -> None:
        while True:
            conn, _ = await loop.sock_accept(lsock)
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = loop.create_task(echo(conn))
            handlers.add(task)
            task.add_done_callback(handlers.discard)

    with _listen() as lsock, _listen() as ctl:
        _ready(lsock.getsockname()[1], ctl.getsockname()[1])
        acceptor = loop.create_task(accept_loop(lsock))
        control, _ = await loop.sock_accept(ctl)
        with control:
            control.setblocking(False)
            while await loop.sock_recv(control, CHUNK):
                pass
        acceptor.cancel()
        try:
            await acceptor
        except asyncio.CancelledError:
            pass
    return len(done)


VARIANTS = {
    "manyio": ("manyio", _manyio),
    "tonio": ("tonio", _tonio),
    "asyncio-streams": ("asyncio", _asyncio_streams),
    "asyncio-sock": ("asyncio", _asyncio_sock),
    "uvloop-streams": ("uvloop", _asyncio_streams),
}
