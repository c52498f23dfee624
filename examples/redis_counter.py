"""redis.asyncio on manyio: one client shared by tasks running in parallel.

Many tasks increment a counter with INCR (atomic on the server), record who they are in a
set through a MULTI/EXEC pipeline, and finally read everything back. A redis-py ``Lock``
guards a read-modify-write that is *not* atomic on the server. Needs the ``manyio-redis``
package (and redis-py) and a Redis server: ``MANYIO_REDIS_URL``, default
``redis://127.0.0.1:6379/9``. The keys it uses are deleted at the end.

    python examples/redis_counter.py [--tasks 200]
"""

from __future__ import annotations

import argparse
import os

import manyio
import manyio_redis
import redis.asyncio as redis

manyio_redis.patch()  # or manyio.compat.patch_all()

URL = os.environ.get("MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9")
PREFIX = f"manyio-example:{os.getpid()}:"


async def main(tasks: int) -> None:
    pool = redis.BlockingConnectionPool.from_url(URL, max_connections=16, socket_timeout=2.0)
    async with redis.Redis(connection_pool=pool) as r:
        counter, members, total = PREFIX + "counter", PREFIX + "members", PREFIX + "total"

        async def visit(i: int) -> None:
            await r.incr(counter)
            async with r.pipeline(transaction=True) as p:
                await p.sadd(members, i).expire(members, 60).execute()
            # GET then SET is two round trips: without the lock, updates would be lost.
            async with r.lock(PREFIX + "lock", timeout=5, blocking_timeout=5):
                value = int(await r.get(total) or 0)
                await r.set(total, value + i)

        try:
            async with manyio.TaskGroup() as tg:
                for i in range(tasks):
                    tg.start_soon(visit, i)
            count = int(await r.get(counter))
            size = await r.scard(members)
            locked_total = int(await r.get(total))
        finally:
            await r.delete(counter, members, total)
    assert (count, size, locked_total) == (tasks, tasks, sum(range(tasks)))
    print(f"counter={count} members={size} total={locked_total}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=200)
    args = parser.parse_args()
    manyio.run(main(args.tasks), threads=2)
