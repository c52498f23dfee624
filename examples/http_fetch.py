"""httpx's AsyncClient on manyio: one client shared by tasks on every worker.

A small HTTP server (the standard library's, on a thread) stands in for a real site, so the
example needs no network. ``manyio_httpx.patch()`` makes ``httpx.AsyncClient()`` use manyio
sockets when called from manyio tasks; the requests, its keep-alive pool and its timeouts are
httpx's own. Needs the ``manyio-httpx`` package (and httpx).

    python examples/http_fetch.py [--requests 200]
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import manyio
import manyio_httpx

manyio_httpx.patch()  # or manyio.compat.patch_all()


class Squares(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool reuses connections

    def do_GET(self) -> None:
        n = int(self.path.rsplit("/", 1)[1])
        body = json.dumps({"n": n, "square": n * n}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


async def main(base: str, silent: str, requests: int) -> None:
    limits = httpx.Limits(max_connections=10)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=5) as client:
        total = 0

        async def fetch(n: int) -> None:
            nonlocal total
            response = await client.get(f"/square/{n}")
            response.raise_for_status()
            async with lock:  # tasks run in parallel: `total += ...` needs the lock
                total += response.json()["square"]

        lock = manyio.Lock()
        async with manyio.TaskGroup() as tg:
            for n in range(requests):
                tg.start_soon(fetch, n)
    assert total == sum(n * n for n in range(requests))
    print(f"{requests} requests, sum of squares {total}")

    # httpx's own timeout exceptions work too: this server accepts but never answers.
    try:
        async with httpx.AsyncClient(timeout=0.2) as client:
            await client.get(silent)
    except httpx.ReadTimeout:
        print("ReadTimeout raised by httpx")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Squares)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # the kernel accepts; nobody answers
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        manyio.run(main(base, silent_url, args.requests), threads=2)
    finally:
        server.shutdown()
        silent.close()
