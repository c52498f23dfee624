"""One program using httpx, redis.asyncio and asyncpg at once, from manyio tasks on 2 workers.

    python integration/e2e_app.py [--orders 200] [--threads 2]

Each "order" is a task that fetches ``/hello?id=I`` over HTTP/1.1 in the clear and over
HTTP/2 with TLS (one shared ``httpx.AsyncClient`` each), counts itself in Redis (``INCR``)
and keeps its reply in a Redis hash (one shared client and pool), and inserts a row in
PostgreSQL inside a transaction (one shared asyncpg pool). A tenth of the orders are
cancelled in the middle by a deadline and must leave nothing behind in PostgreSQL. Then
the program cross-checks all three stores and prints one JSON line with what it saw.

HTTP servers come from ``MANYIO_HTTP_URL`` / ``MANYIO_HTTPS_URL`` (+ ``MANYIO_HTTPS_CA``,
e.g. the Caddy of ``integration/docker-compose.yml``); unset, the program starts Hypercorn
in a thread of its own with a trustme certificate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import manyio
import redis.asyncio as redis

REDIS_URL = os.environ.get("MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_DSN = os.environ.get("MANYIO_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = "manyio_e2e_orders"
KEY = "manyio:e2e"


async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI: ``/hello?id=I`` -> ``hello I`` (what the compose file's Caddy answers too)."""
    if scope["type"] != "http":
        return
    query = dict(p.split("=", 1) for p in scope["query_string"].decode().split("&") if "=" in p)
    body = f"hello {query.get('id', '')}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def http_servers() -> Iterator[tuple[str, str, ssl.SSLContext]]:
    """(plain URL, TLS URL, client SSL context): from the environment, or Hypercorn in a thread."""
    if os.environ.get("MANYIO_HTTP_URL") and os.environ.get("MANYIO_HTTPS_URL"):
        ctx = ssl.create_default_context(cafile=os.environ.get("MANYIO_HTTPS_CA"))
        yield os.environ["MANYIO_HTTP_URL"], os.environ["MANYIO_HTTPS_URL"], ctx
        return
    import tempfile

    import trustme
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    ca = trustme.CA()
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    plain, tls = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cert = os.path.join(tmp, "cert.pem")
        ca.issue_cert("localhost").private_key_and_cert_chain_pem.write_to_path(cert)
        config = Config()
        config.insecure_bind = [f"127.0.0.1:{plain}"]
        config.bind = [f"127.0.0.1:{tls}"]
        config.certfile = config.keyfile = cert
        config.alpn_protocols = ["h2", "http/1.1"]
        config.accesslog = config.errorlog = None
        started, stop = threading.Event(), threading.Event()
        loop = asyncio.new_event_loop()

        async def run() -> None:
            stopped = asyncio.Event()
            threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(stopped.set))).start()
            started.set()
            await serve(hello_app, config, shutdown_trigger=stopped.wait)

        server = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
        server.start()
        started.wait(10)
        _wait_for_ports(plain, tls)
        try:
            yield f"http://127.0.0.1:{plain}/", f"https://localhost:{tls}/", ctx
        finally:
            stop.set()
            server.join(10)


def _wait_for_ports(*ports: int) -> None:
    import time

    deadline = time.monotonic() + 10
    for port in ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the test HTTP server did not listen on {port}") from None
                time.sleep(0.05)


async def run_orders(orders: int, plain_url: str, tls_url: str, ctx: ssl.SSLContext) -> dict[str, Any]:
    cancelled = set(range(0, orders, 10))  # every tenth order: cut off by a deadline
    threads: set[int] = set()
    protocols: set[str] = set()
    async with (
        httpx.AsyncClient(base_url=plain_url) as http1,
        httpx.AsyncClient(base_url=tls_url, http2=True, verify=ctx) as http2,
        redis.Redis.from_pool(redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=16)) as r,
        asyncpg.create_pool(PG_DSN, min_size=2, max_size=8) as pool,
    ):
        await r.delete(KEY, f"{KEY}:replies")
        await pool.execute(f"DROP TABLE IF EXISTS {TABLE}")
        await pool.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, reply text NOT NULL)")

        async def order(i: int) -> None:
            threads.add(threading.get_ident())
            a, b = await http1.get("hello", params={"id": i}), await http2.get("hello", params={"id": i})
            for resp in (a, b):
                resp.raise_for_status()
                if resp.text != f"hello {i}":
                    raise AssertionError(f"order {i}: {resp.text!r}")
                protocols.add(resp.http_version)
            await r.incr(KEY)
            await r.hset(f"{KEY}:replies", str(i), b.text)
            async with pool.acquire() as con, con.transaction():
                await con.execute(f"INSERT INTO {TABLE} VALUES ($1, $2)", i, a.text)
                if i in cancelled:  # the deadline hits inside the transaction: rolled back
                    with manyio.move_on_after(0.01):
                        await con.execute("SELECT pg_sleep(5)")
                    raise _Abandoned

        async def guarded(i: int) -> None:
            try:
                await order(i)
            except _Abandoned:
                pass

        async with manyio.TaskGroup() as tg:
            for i in range(orders):
                tg.start_soon(guarded, i)

        count = int(await r.get(KEY))
        replies = await r.hgetall(f"{KEY}:replies")
        rows = await pool.fetch(f"SELECT id, reply FROM {TABLE} ORDER BY id")
        await pool.execute(f"DROP TABLE {TABLE}")
        await r.delete(KEY, f"{KEY}:replies")

    expected_rows = [i for i in range(orders) if i not in cancelled]
    checks = {
        "redis_count": count == orders,
        "redis_replies": replies == {str(i).encode(): f"hello {i}".encode() for i in range(orders)},
        "pg_rows": [row["id"] for row in rows] == expected_rows
        and all(row["reply"] == f"hello {row['id']}" for row in rows),
        "http2_used": "HTTP/2" in protocols and "HTTP/1.1" in protocols,
    }
    return {
        "orders": orders,
        "rolled_back": len(cancelled),
        "pg_rows": len(rows),
        "worker_threads_seen": len(threads),
        "protocols": sorted(protocols),
        "checks": checks,
        "ok": all(checks.values()),
        "gil_enabled": sys._is_gil_enabled(),
    }


class _Abandoned(Exception):
    """An order whose transaction a deadline cut off (and so rolled back)."""


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    patched = manyio.compat.patch_all()
    with http_servers() as (plain_url, tls_url, ctx):
        result = manyio.run(run_orders(args.orders, plain_url, tls_url, ctx), threads=args.threads)
    result["patched"] = patched
    print(json.dumps(result))
    return 0 if result["ok"] and not result["gil_enabled"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
