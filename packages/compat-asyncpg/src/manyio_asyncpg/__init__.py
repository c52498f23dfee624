"""manyio-asyncpg: unmodified asyncpg code on manyio, one pool shared by tasks on every core.

Example::

    import asyncpg, manyio

    manyio.compat.patch_all()          # or: import manyio_asyncpg; manyio_asyncpg.patch()

    async def main():
        pool = await asyncpg.create_pool("postgresql://postgres@127.0.0.1/test", max_size=8)
        async with manyio.TaskGroup() as tg:
            for i in range(1000):
                tg.start_soon(pool.fetchval, "SELECT $1::int + 1", i)
        await pool.close()

    manyio.run(main(), threads=2)

asyncpg's protocol is not thread-safe, so each connection is a serial domain: its socket
reader, its timers, its futures' callbacks and each step of every protocol operation run one
at a time, holding the connection's lock (never across an await), on whichever worker the
caller is on, while different connections are parsed in parallel on all cores. A pool's
connection shares that domain with its pool slot (acquire and release take no pool-wide lock);
the pool's own bookkeeping (init, close, expiry) is serialized the same way. Bytes travel
over manyio's own sockets (TLS through :class:`manyio.TLSStream`).

asyncio programs in the same process keep stock asyncpg: the patch only changes what
happens inside manyio tasks.
"""

from __future__ import annotations

import threading

from ._loop import SerialLoop

__all__ = ["SerialLoop", "patch", "patched_modules"]

_lock = threading.Lock()
_patched: list[str] = []


def patch() -> list[str]:
    """Makes asyncpg run on manyio inside manyio tasks (idempotent); returns the modules it
    rewired."""
    from ._install import install

    with _lock:
        if not _patched:
            _patched.extend(install())
        return list(_patched)


def patched_modules() -> list[str]:
    """The modules :func:`patch` rewired (empty before it ran)."""
    return list(_patched)
