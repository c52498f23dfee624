"""redis: redis-py's ``redis.asyncio`` client, unmodified, on manyio vs asyncio and uvloop (issue 6).

50 tasks share one client (``Redis`` with its connection pool) and split N commands between
them: SET of a key of their own, then GET of it, checking the value each time. Kinds:

* ``unpipelined``: one command per round trip;
* ``pipelined``: ``pipeline(transaction=False)`` batches of 16 commands (8 SET + 8 GET).

Implementations: ``asyncio`` and ``uvloop`` run the tasks with ``asyncio.gather``; ``manyio``
runs the same client code in manyio tasks (``manyio_redis.patch()``), in parallel on the
workers; ``redis-benchmark`` (the server's own C client, ``-c 50``, ``-P 16`` when pipelined,
SET and GET) is the ceiling. No hiredis anywhere: asyncio and uvloop parse with redis-py's
pure-Python parser, manyio with manyio-redis's (RESP parsing and command packing in Rust).
The server is the one at ``MANYIO_REDIS_URL`` (default 127.0.0.1:6379, database 9).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any
from urllib.parse import urlparse

NAME = "redis"
TASKS = 50
BATCH = 16
KINDS = ("unpipelined", "pipelined")
URL = os.environ.get("MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9")


def cases(quick: bool) -> list[tuple[int, dict[str, Any], str]]:
    scale = 5 if quick else 1
    sizes = {"unpipelined": 100_000, "pipelined": 400_000}
    return [(sizes[k] // scale, {"kind": k}, f"{k} {sizes[k] // scale // 1000}k cmds") for k in KINDS]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == size // (TASKS * BATCH) * TASKS * BATCH, (result, size)


def prepare(impl: str) -> None:
    """Imports redis-py (and patches it for manyio) before the clock starts."""
    import redis.asyncio  # noqa: F401

    if impl == "manyio":
        import manyio_redis

        manyio_redis.patch()


async def _task(r: Any, i: int, n: int, pipelined: bool) -> int:
    key = f"bench:{i}"
    done = 0
    if pipelined:
        for b in range(n // BATCH):
            async with r.pipeline(transaction=False) as p:
                for j in range(BATCH // 2):
                    p.set(f"{key}:{j}", f"{b}-{j}")
                for j in range(BATCH // 2):
                    p.get(f"{key}:{j}")
                replies = await p.execute()
            assert replies[BATCH // 2 :] == [f"{b}-{j}".encode() for j in range(BATCH // 2)]
            done += BATCH
    else:
        for b in range(n // 2):
            value = f"{i}-{b}"
            await r.set(key, value)
            assert await r.get(key) == value.encode()
            done += 2
    return done


def _per_task(size: int) -> int:
    return size // (TASKS * BATCH) * BATCH


async def main_asyncio(size: int, params: dict[str, Any]) -> int:
    import asyncio

    import redis.asyncio as redis

    async with redis.Redis.from_url(URL) as r:
        pipelined = params["kind"] == "pipelined"
        counts = await asyncio.gather(*(_task(r, i, _per_task(size), pipelined) for i in range(TASKS)))
    return sum(counts)


async def main_manyio(size: int, params: dict[str, Any]) -> int:
    import manyio
    import manyio_redis
    import redis.asyncio as redis

    manyio_redis.patch()
    async with redis.Redis.from_url(URL) as r:
        pipelined = params["kind"] == "pipelined"
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(_task(r, i, _per_task(size), pipelined)) for i in range(TASKS)]
    return sum(t.result() for t in tasks)


def redis_benchmark(threads: int, size: int, params: dict[str, Any]) -> int:
    """The ceiling: redis-benchmark, SET and GET, 50 clients (a plain function: "threading")."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        raise ImportError("redis-benchmark is not installed")
    parsed = urlparse(URL)
    n = _per_task(size) * TASKS
    pipeline = BATCH if params["kind"] == "pipelined" else 1
    cmd = [
        binary, "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 6379),
        "--dbnum", parsed.path.strip("/") or "0", "-c", str(TASKS), "-n", str(n // 2),
        "-P", str(pipeline), "--threads", str(threads), "-t", "set,get", "-q", "--csv",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    tests = [line for line in out.splitlines() if line.startswith(('"SET"', '"GET"'))]
    assert len(tests) == 2, out
    return n


VARIANTS = {
    "asyncio": ("asyncio", main_asyncio),
    "uvloop": ("uvloop", main_asyncio),
    "manyio": ("manyio", main_manyio),
    "redis-benchmark": ("threading", redis_benchmark),
}
