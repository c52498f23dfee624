"""asyncpg: unmodified asyncpg code on manyio vs asyncio and uvloop (issue 5).

64 tasks share one pool of 8 connections and split N fetches between them (``pool.fetchrow`` /
``pool.fetch``: acquire, query, release with asyncpg's reset, as applications do), checking
each result. Kinds, against pgbench's ``pgbench_accounts`` (scale 1, created if missing):

* ``1-row``: ``SELECT ... WHERE aid = $1`` (the query of ``pgbench -S``);
* ``100-row``: ``SELECT ... WHERE aid BETWEEN $1 AND $1 + 99``.

Implementations: ``asyncio`` and ``uvloop`` run the tasks with ``asyncio.gather``; ``manyio``
runs the same code in manyio tasks (``manyio_asyncpg.patch()``); ``pgbench -M prepared``
(``-S``, or the 100-row query as a script; 8 clients, no pool, no reset) is the ceiling. The
server is the one at ``MANYIO_PG_DSN`` (default 127.0.0.1:5432, database ``test``), without
TLS (``sslmode=disable``: the runtimes' own overhead, not the cipher's, is compared).
PostgreSQL shares the machine's cores with the client: client CPU spent is throughput lost.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlparse

NAME = "asyncpg"
TASKS = 64
POOL = 8
ROWS = 100_000  # pgbench_accounts at scale 1
KINDS = ("1-row", "100-row")
_BASE = os.environ.get("MANYIO_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
DSN = _BASE + ("&" if "?" in _BASE else "?") + "sslmode=disable"
_ONE = "SELECT aid, abalance FROM pgbench_accounts WHERE aid = $1"
_MANY = "SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN $1 AND $1 + 99"


def cases(quick: bool) -> list[tuple[int, dict[str, Any], str]]:
    scale = 5 if quick else 1
    sizes = {"1-row": 50_000, "100-row": 20_000}
    return [(sizes[k] // scale, {"kind": k}, f"{k} {sizes[k] // scale // 1000}k fetches") for k in KINDS]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == size // TASKS * TASKS, (result, size)


def _pgbench_args() -> list[str]:
    parsed = urlparse(_BASE)
    return [
        "-h", parsed.hostname or "127.0.0.1", "-p", str(parsed.port or 5432),
        "-U", parsed.username or "postgres", (parsed.path.strip("/") or "test"),
    ]  # fmt: skip


@contextlib.contextmanager
def service() -> Iterator[dict[str, str]]:
    """Creates pgbench's tables (scale 1) unless they are there; nothing to tear down."""
    binary = shutil.which("pgbench")
    if binary is None:
        raise SystemExit("the asyncpg workload needs pgbench (Debian: postgresql-client)")
    env = dict(os.environ, PGSSLMODE="disable")
    check = [binary, "-S", "-t", "1", "-n", *_pgbench_args()]
    if subprocess.run(check, capture_output=True, env=env).returncode != 0:
        subprocess.run(
            [binary, "-i", "-s", "1", "-q", *_pgbench_args()], check=True, capture_output=True, env=env
        )
    yield {}


def prepare(impl: str) -> None:
    """Imports asyncpg (and patches it for manyio) before the clock starts."""
    import asyncpg  # noqa: F401

    if impl == "manyio":
        import manyio_asyncpg

        manyio_asyncpg.patch()


async def _task(pool: Any, i: int, n: int, many: bool) -> int:
    done = 0
    for j in range(n):
        aid = (i * 7919 + j * 104729) % (ROWS - 100) + 1
        if many:
            rows = await pool.fetch(_MANY, aid)
            assert len(rows) == 100 and rows[0]["aid"] == aid
        else:
            row = await pool.fetchrow(_ONE, aid)
            assert row["aid"] == aid
        done += 1
    return done


async def main_asyncio(size: int, params: dict[str, Any]) -> int:
    import asyncio

    import asyncpg

    many = params["kind"] == "100-row"
    async with asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL) as pool:
        counts = await asyncio.gather(*(_task(pool, i, size // TASKS, many) for i in range(TASKS)))
    return sum(counts)


async def main_manyio(size: int, params: dict[str, Any]) -> int:
    import asyncpg
    import manyio
    import manyio_asyncpg

    manyio_asyncpg.patch()
    many = params["kind"] == "100-row"
    async with asyncpg.create_pool(DSN, min_size=POOL, max_size=POOL) as pool:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(_task(pool, i, size // TASKS, many)) for i in range(TASKS)]
    return sum(t.result() for t in tasks)


_PGBENCH_100 = """\\set aid random(1, 99900)
SELECT aid, bid, abalance, filler FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 99;
"""


def pgbench(threads: int, size: int, params: dict[str, Any]) -> int:
    """The ceiling: ``pgbench -S -M prepared`` (the 100-row query as a pgbench script), 8
    clients, no pool and no reset between queries."""
    binary = shutil.which("pgbench")
    if binary is None:
        raise ImportError("pgbench is not installed")
    n = size // TASKS * TASKS
    cmd = [binary, "-M", "prepared", "-n", "-c", str(POOL), "-j", str(threads), "-t", str(n // POOL)]
    env = dict(os.environ, PGSSLMODE="disable")
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as script:
        script.write(_PGBENCH_100)
        script.flush()
        cmd += ["-S"] if params["kind"] == "1-row" else ["-f", script.name]
        out = subprocess.run(
            [*cmd, *_pgbench_args()], capture_output=True, text=True, check=True, env=env
        ).stdout
    processed = re.search(r"number of transactions actually processed: (\d+)", out)
    assert processed is not None and int(processed.group(1)) == n // POOL * POOL, out
    return n


VARIANTS = {
    "asyncio": ("asyncio", main_asyncio),
    "uvloop": ("uvloop", main_asyncio),
    "manyio": ("manyio", main_manyio),
    "pgbench": ("threading", pgbench),
}
