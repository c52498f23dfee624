"""asyncio on manyio: an asyncio event loop per strand, and ways in and out.

Code written for asyncio assumes nothing else runs between its awaits. Inside a strand that
holds: the strand's loop (``loop_for(strand)``) runs every asyncio callback and task step of
that strand serially, on whichever worker is free, while other strands run in parallel.

Example::

    import asyncio, manyio.asyncio

    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", 6379)
        ...

    manyio.asyncio.run(main())          # a whole asyncio program on manyio

From manyio tasks, ``await manyio.asyncio.run_in_strand(coro)`` runs asyncio code in a strand
and returns its result; manyio tasks may also ``await`` asyncio futures and tasks directly.
The other way, asyncio code awaits manyio awaitables through ``from_manyio(awaitable)``.
"""

from __future__ import annotations

from ._loop import EventLoop as EventLoop
from ._loop import loop_for as loop_for
from ._loop import new_event_loop as new_event_loop
from ._run import from_manyio as from_manyio
from ._run import run as run
from ._run import run_in_strand as run_in_strand

__all__ = ["EventLoop", "from_manyio", "loop_for", "new_event_loop", "run", "run_in_strand"]
