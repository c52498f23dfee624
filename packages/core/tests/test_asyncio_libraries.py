"""A pure-asyncio library adapted nowhere else, unchanged on the asyncio facade: aiohttp."""

from __future__ import annotations

import asyncio
import hashlib
import sys

import aiohttp
import manyio
import manyio.asyncio
import pytest
from aiohttp import web

pytestmark = pytest.mark.timeout(60)


def _app() -> web.Application:
    async def digest(request: web.Request) -> web.Response:
        body = await request.read()
        await asyncio.sleep(0.001)
        return web.Response(text=hashlib.sha256(body).hexdigest())

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for i in range(int(request.query["n"])):
            await response.write(b"chunk %d\n" % i)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/digest", digest)
    app.router.add_get("/stream", stream)
    return app


async def _serve() -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


async def _client(port: int, n: int) -> int:
    ok = 0
    async with aiohttp.ClientSession() as session:
        for i in range(n):
            body = b"request %d " % i * 50
            async with session.post(f"http://127.0.0.1:{port}/digest", data=body) as resp:
                assert await resp.text() == hashlib.sha256(body).hexdigest()
                ok += 1
        async with session.get(f"http://127.0.0.1:{port}/stream", params={"n": "200"}) as resp:
            lines = [line async for line in resp.content]
            assert lines == [b"chunk %d\n" % i for i in range(200)]
    return ok


def test_aiohttp_server_and_client_in_one_asyncio_program() -> None:
    async def main() -> list[int]:
        runner, port = await _serve()
        try:
            return await asyncio.gather(*(_client(port, 20) for i in range(10)))
        finally:
            await runner.cleanup()

    assert manyio.asyncio.run(main(), threads=2) == [20] * 10


def test_aiohttp_clients_in_many_strands_against_a_server_strand() -> None:
    async def main() -> list[int]:
        server_strand = manyio.Strand()
        runner, port = await manyio.asyncio.run_in_strand(_serve(), strand=server_strand)
        try:
            async with manyio.TaskGroup() as tg:
                # Each client session lives in a strand of its own: they run in parallel.
                tasks = [tg.spawn(manyio.asyncio.run_in_strand(_client(port, 20))) for _ in range(8)]
            return [t.result() for t in tasks]
        finally:
            await manyio.asyncio.run_in_strand(runner.cleanup(), strand=server_strand)
            await manyio.asyncio._run.shutdown(manyio.asyncio.loop_for(server_strand))

    assert manyio.run(main, threads=2) == [20] * 8


def test_aiohttp_keeps_the_gil_disabled() -> None:
    assert not sys._is_gil_enabled()
