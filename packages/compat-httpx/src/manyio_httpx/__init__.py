"""manyio-httpx: unmodified ``httpx.AsyncClient`` code on manyio.

Example::

    import httpx
    import manyio
    import manyio_httpx

    manyio_httpx.patch()          # or manyio.compat.patch_all()

    async def main():
        async with httpx.AsyncClient(http2=True) as client:
            r = await client.get("https://www.example.org/", timeout=5)

    manyio.run(main(), threads=2)

One client and its connection pool can be shared by tasks on every worker. After
:func:`patch`, httpx's default transport opens its connections with manyio's sockets when
called from a manyio task, its pool is guarded by real locks, its shielded connection release
really is shielded, and each HTTP/2 connection runs its protocol steps in its own strand.
Timeouts raise httpx's own exceptions (``ConnectTimeout``, ``ReadTimeout``, ``WriteTimeout``,
``PoolTimeout``). asyncio and Trio programs in the same process keep httpcore's own behaviour.

:class:`AsyncTransport` does the same for one client without :func:`patch`.
"""

from __future__ import annotations

from . import _install
from ._backend import ManyioBackend, ManyioStream, ManyioTLSStream
from ._transport import AsyncTransport

__all__ = ["AsyncTransport", "ManyioBackend", "ManyioStream", "ManyioTLSStream", "patch"]


def patch() -> list[str]:
    """Makes ``httpx.AsyncClient()`` (and httpcore's async pools) run on manyio from manyio
    tasks (idempotent); returns the names of the patched libraries."""
    _install.httpcore()
    return ["httpcore"]
