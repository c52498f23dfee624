"""A local HTTP/1.1 server that answers ``GET /?ms=D&id=I`` with ``I`` after D milliseconds.

It runs in a thread of the process that drives the benchmark (asyncio, keep-alive), so the
measured processes only wait on it: its cost is a few microseconds per request on the
driver's side.
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from urllib.parse import parse_qs, urlsplit


class DelayServer:
    """``with DelayServer() as server: server.url`` -- listening on 127.0.0.1, any free port."""

    def __init__(self) -> None:
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="delay-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def __enter__(self) -> DelayServer:
        self._thread.start()
        self._ready.wait(10)
        if not self.port:
            raise RuntimeError("the delay server did not start")
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(_handle, "127.0.0.1", 0, backlog=1024)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while head := await reader.readuntil(b"\r\n\r\n"):
            target = head.split(b" ", 2)[1].decode()
            query = parse_qs(urlsplit(target).query)
            await asyncio.sleep(float(query.get("ms", ["0"])[0]) / 1000)
            body = query.get("id", [""])[0].encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
    except asyncio.IncompleteReadError, ConnectionError:
        pass  # the client closed its keep-alive connection
    finally:
        writer.close()
