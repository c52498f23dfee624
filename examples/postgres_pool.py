"""asyncpg on manyio: one connection pool shared by tasks running in parallel.

Creates a temporary table, inserts rows from many tasks at once (each in a transaction),
reads them back with a prepared statement and a cursor, and shows that cancelling a query
(here: a deadline) leaves its connection usable. Needs the ``manyio-asyncpg`` package (and
asyncpg) and a PostgreSQL server: ``MANYIO_PG_DSN``, default
``postgresql://postgres@127.0.0.1:5432/test``. The table is dropped at the end.

    python examples/postgres_pool.py [--tasks 100]
"""

from __future__ import annotations

import argparse
import os

import asyncpg
import manyio
import manyio_asyncpg

manyio_asyncpg.patch()  # or manyio.compat.patch_all()

DSN = os.environ.get("MANYIO_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
TABLE = f"manyio_example_{os.getpid()}"


async def main(tasks: int) -> None:
    async with asyncpg.create_pool(DSN, min_size=2, max_size=8) as pool:
        await pool.execute(f"CREATE TABLE {TABLE} (id int PRIMARY KEY, square bigint NOT NULL)")
        try:

            async def insert(i: int) -> None:
                async with pool.acquire() as con, con.transaction():
                    await con.execute(f"INSERT INTO {TABLE} VALUES ($1, $2)", i, i * i)

            async with manyio.TaskGroup() as tg:
                for i in range(tasks):
                    tg.start_soon(insert, i)

            async with pool.acquire() as con:
                stmt = await con.prepare(f"SELECT count(*), sum(square) FROM {TABLE} WHERE id < $1")
                count, total = await stmt.fetchrow(tasks)
                async with con.transaction():
                    first = [r["id"] async for r in con.cursor(f"SELECT id FROM {TABLE} ORDER BY id LIMIT 3")]

                # A deadline cancels the query: asyncpg sends PostgreSQL's cancel request.
                with manyio.move_on_after(0.2) as scope:
                    await con.execute("SELECT pg_sleep(5)")
                still_usable = await con.fetchval("SELECT 1")
        finally:
            await pool.execute(f"DROP TABLE IF EXISTS {TABLE}")
    assert (count, total) == (tasks, sum(i * i for i in range(tasks)))
    print(f"rows={count} sum={total} first={first}")
    print(f"slow query cancelled: {scope.cancelled_caught}, connection usable: {still_usable == 1}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    manyio.run(main(args.tasks), threads=2)
