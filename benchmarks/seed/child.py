"""One implementation's sweep over the grid, in a fresh interpreter; prints one JSON line.

    python child.py '{"impl": "manyio", "threads": 2, "url": ..., "grid": [[n, d_ms, c_ms], ...],
                      "iters_per_ms": ..., "redis_url": null, "pg_dsn": null}'

Every implementation runs the same request: GET ``url?ms=D&id=I`` (the body must be ``I``),
then optionally a Redis GET and a PostgreSQL query (values checked), then ``burn`` for C ms.
Per grid point it records the wall time from starting the N requests to the last one done.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kernel import burn

NOISE = 1.5
REDIS_KEY, REDIS_VALUE = "manyio:seed", b"seed-value"


class Spec:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.impl: str = raw["impl"]
        self.threads: int = raw.get("threads", 1)
        self.url: str = raw["url"]
        self.grid: list[tuple[int, float, float]] = [tuple(p) for p in raw["grid"]]
        self.iters_per_ms: float = raw["iters_per_ms"]
        self.redis_url: str | None = raw.get("redis_url")
        self.pg_dsn: str | None = raw.get("pg_dsn")
        self.max_n = max(n for n, _, _ in self.grid)

    def iterations(self, c_ms: float) -> int:
        return round(c_ms * self.iters_per_ms)


def check_results(values: list[float], n: int) -> None:
    """Every request did its CPU part: the same inputs give one value, N times."""
    if len(values) != n or len(set(values)) > 1:
        raise AssertionError(f"expected {n} equal results, got {values[:4]}...")


# -- async implementations: manyio, asyncio, asyncio with run_in_executor ---------------------


class AsyncClients:
    """httpx (and optionally redis.asyncio and an asyncpg pool) shared by every request."""

    async def __aenter__(self) -> AsyncClients:
        import httpx

        self.http = httpx.AsyncClient(limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        self.redis = self.pg = None
        if SPEC.redis_url:
            import redis.asyncio as aioredis

            self.redis = aioredis.Redis.from_url(SPEC.redis_url, max_connections=64)
            await self.redis.set(REDIS_KEY, REDIS_VALUE)
        if SPEC.pg_dsn:
            import asyncpg

            self.pg = await asyncpg.create_pool(SPEC.pg_dsn, min_size=1, max_size=SPEC.max_n)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        if self.pg is not None:
            await self.pg.close()

    async def io(self, i: int, d_ms: float) -> None:
        r = await self.http.get(SPEC.url, params={"ms": d_ms, "id": i})
        if r.text != str(i):
            raise AssertionError(f"request {i} got {r.text!r}")
        if self.redis is not None and await self.redis.get(REDIS_KEY) != REDIS_VALUE:
            raise AssertionError("wrong Redis value")
        if self.pg is not None and await self.pg.fetchval("SELECT $1::int + 1", i) != i + 1:
            raise AssertionError("wrong PostgreSQL value")


async def sweep_async(gather: Any, cpu: Any) -> list[float]:
    """Runs the grid with ``gather(list of coroutines)`` and ``await cpu(iterations)``."""
    async with AsyncClients() as clients:

        async def request(i: int, d_ms: float, iterations: int) -> float:
            await clients.io(i, d_ms)
            return await cpu(iterations)

        await gather([request(i, 0, 0) for i in range(SPEC.max_n)])  # open the connections
        walls = []
        for n, d_ms, c_ms in SPEC.grid:
            t0 = time.perf_counter()
            values = await gather([request(i, d_ms, SPEC.iterations(c_ms)) for i in range(n)])
            walls.append(time.perf_counter() - t0)
            check_results(values, n)
        return walls


async def inline_cpu(iterations: int) -> float:
    return burn(iterations, NOISE)


def run_manyio() -> list[float]:
    import manyio

    manyio.compat.patch_all()

    async def gather(coros: list[Any]) -> list[Any]:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(c) for c in coros]
        return [t.result() for t in tasks]

    return manyio.run(sweep_async(gather, inline_cpu), threads=SPEC.threads)


async def asyncio_gather(coros: list[Any]) -> list[Any]:
    return await asyncio.gather(*coros)


def run_asyncio() -> list[float]:
    return asyncio.run(sweep_async(asyncio_gather, inline_cpu))


def run_asyncio_executor() -> list[float]:
    async def executor_cpu(iterations: int) -> float:
        return await asyncio.get_running_loop().run_in_executor(None, burn, iterations, NOISE)

    return asyncio.run(sweep_async(asyncio_gather, executor_cpu))


# -- plain threads: blocking clients on a ThreadPoolExecutor ----------------------------------


def run_threads() -> list[float]:
    import httpx

    if SPEC.pg_dsn:
        raise RuntimeError("no blocking PostgreSQL driver is installed (asyncpg is async only)")
    # A client per thread: httpcore's sync pool is not free-threading safe (an idle
    # connection's expiry check, `_expire_at is not None and now > _expire_at`, races with
    # the thread using it setting `_expire_at = None`; seen as a TypeError here).
    local = threading.local()
    clients: list[httpx.Client] = []
    rds = None
    if SPEC.redis_url:
        import redis

        rds = redis.Redis.from_url(SPEC.redis_url, max_connections=64)
        rds.set(REDIS_KEY, REDIS_VALUE)

    def request(i: int, d_ms: float, iterations: int) -> float:
        if (http := getattr(local, "http", None)) is None:
            http = local.http = httpx.Client()
            clients.append(http)
        r = http.get(SPEC.url, params={"ms": d_ms, "id": i})
        if r.text != str(i):
            raise AssertionError(f"request {i} got {r.text!r}")
        if rds is not None and rds.get(REDIS_KEY) != REDIS_VALUE:
            raise AssertionError("wrong Redis value")
        return burn(iterations, NOISE)

    # One thread per concurrent request: the blocking I/O of all N overlaps, as the
    # coroutines' does, and the threads then share the cores for the CPU part.
    with ThreadPoolExecutor(max_workers=SPEC.max_n) as pool:
        list(pool.map(request, range(SPEC.max_n), [0] * SPEC.max_n, [0] * SPEC.max_n))
        walls = []
        for n, d_ms, c_ms in SPEC.grid:
            iterations = SPEC.iterations(c_ms)
            t0 = time.perf_counter()
            values = list(pool.map(request, range(n), [d_ms] * n, [iterations] * n))
            walls.append(time.perf_counter() - t0)
            check_results(values, n)
    for http in clients:
        http.close()
    return walls


RUNNERS = {
    "manyio": run_manyio,
    "asyncio": run_asyncio,
    "asyncio+executor": run_asyncio_executor,
    "threads": run_threads,
}

if __name__ == "__main__":
    SPEC = Spec(json.loads(sys.argv[1]))
    out: dict[str, Any] = {"impl": SPEC.impl, "threads": SPEC.threads}
    try:
        out["walls"] = RUNNERS[SPEC.impl]()
        out["ok"] = True
    except Exception as e:
        out.update(ok=False, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-3000:])
    out["gil_enabled"] = sys._is_gil_enabled()
    print(json.dumps(out))
