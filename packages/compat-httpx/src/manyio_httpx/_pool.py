"""Reclaiming connections orphaned by a cancelled request (httpcore 1.0.9, encode/httpcore#1093).

The pool may create a connection for a queued request and hand it over; if that request is
cancelled before it starts connecting, the connection stays in the pool for ever: not yet
connected, so neither idle, closed, expired nor available. Enough of them and every request
fails with ``PoolTimeout`` against a healthy server. Under asyncio it takes a cancellation in
a narrow window; with requests cancelled on several workers at once it is easy to hit.

Before the pool assigns requests to connections (always under its lock), connections that no
request holds and that are neither idle, available nor closed are taken out and closed.
"""

from __future__ import annotations

from typing import Any

from httpcore._async.connection_pool import AsyncConnectionPool

__all__ = ["install"]


def install() -> None:
    cls = AsyncConnectionPool
    if getattr(cls, "_manyio_installed", False):
        return
    assign = cls._assign_requests_to_connections

    def _assign_requests_to_connections(self: Any) -> list[Any]:
        orphans = _orphans(self)
        for connection in orphans:
            self._connections.remove(connection)
        return orphans + assign(self)

    cls._assign_requests_to_connections = _assign_requests_to_connections  # type: ignore[method-assign]
    cls._manyio_installed = True  # type: ignore[attr-defined]


def _orphans(pool: Any) -> list[Any]:
    held = {id(request.connection) for request in pool._requests if request.connection is not None}
    return [
        c
        for c in pool._connections
        if id(c) not in held and not (c.is_idle() or c.is_available() or c.is_closed())
    ]
