"""Libraries built on AnyIO, unmodified, on the manyio backend: httpx and Starlette."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anyio
import httpx
import manyio_anyio  # noqa: F401  (registers the backend)
import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_httpx_async_client(http_server: str) -> None:
    # httpcore accepts the "manyio" sniffio name once the backend is registered, and uses its
    # AnyIO code path (locks, events, shields, sockets) on our backend. In the default mode
    # the run's tasks share a strand, which httpcore's pool needs: its bookkeeping "lock" is
    # a no-op and its primitives are created lazily without a lock (sharing one client across
    # parallel tasks is manyio-httpx's job).
    async def main() -> list[str]:
        results: list[str] = []
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=http_server, limits=limits) as client:

            async def fetch(i: int) -> None:
                response = await client.get(f"/item/{i}", timeout=10)
                results.append(response.text)

            async with anyio.create_task_group() as tg:
                for i in range(100):
                    tg.start_soon(fetch, i)
        return sorted(results)

    got = anyio.run(main, backend="manyio", backend_options={"threads": 2})
    assert got == sorted(f"/item/{i}" for i in range(100))


def _app() -> Starlette:
    done: list[str] = []

    async def hello(request: Request) -> PlainTextResponse:
        await anyio.sleep(0)
        return PlainTextResponse(f"hello {request.path_params['name']}")

    def blocking(request: Request) -> JSONResponse:  # runs in a worker thread
        return JSONResponse({"thread": threading.current_thread().name, "done": done})

    async def with_background(request: Request) -> PlainTextResponse:
        return PlainTextResponse("queued", background=BackgroundTask(done.append, "task"))

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        async for message in websocket.iter_text():
            await websocket.send_text(message[::-1])

    return Starlette(
        routes=[
            Route("/hello/{name}", hello),
            Route("/blocking", blocking),
            Route("/background", with_background),
            WebSocketRoute("/ws", echo),
        ]
    )


def test_starlette_test_client_on_manyio() -> None:
    with TestClient(_app(), backend="manyio") as client:
        assert client.get("/hello/world").text == "hello world"
        assert client.get("/background").text == "queued"
        assert client.get("/blocking").json()["done"] == ["task"]
        with client.websocket_connect("/ws") as ws:
            ws.send_text("manyio")
            assert ws.receive_text() == "oiynam"
