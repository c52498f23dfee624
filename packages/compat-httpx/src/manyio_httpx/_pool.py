"""httpcore's pool bookkeeping, fixed where many concurrent requests break it (httpcore 1.0.9).

``AsyncConnectionPool._assign_requests_to_connections`` runs, under the pool's lock, every
time a request arrives or leaves. We replace it with a version that keeps its rules (drop
closed connections, close expired and surplus idle ones, then hand each queued request an
available connection, a new one, or a new one in place of an idle one) and fixes three faults:

* **Orphans** (encode/httpcore#1093): a connection created for a request that is cancelled
  before it starts connecting stays in the pool for ever (not idle, closed, expired nor
  available); enough of them and every request fails with ``PoolTimeout``. Connections no
  request holds that are in that state are closed.
* **Double hand-out**: an idle HTTP/1.1 connection stays "available" until its new request
  starts on it, so one pass handed it to every queued request; all but one then failed with
  ``ConnectionNotAvailable`` and went round again. Under load (64 tasks, 64 connections) that
  was 13 passes per request. A connection already handed to a request is not handed out again
  unless it multiplexes (HTTP/2).
* **Quadratic idle count**: the surplus-idle check built a list of every connection for every
  connection (and counted all of them, idle or not).
* **A system call per idle connection per request**: every pass probed every idle connection
  (``poll``) for a close by the server. Now the connection about to be handed out is probed,
  and all idle ones at most every 0.25 s.
* **Probing connections in use**: with requests on several workers, a connection's owner may
  be changing its state while the pool looks at it (``has_expired`` read ``_expire_at`` twice
  and saw it become None in between). Connections a request holds are left to that request.

The same code serves asyncio and Trio callers (it runs no I/O and does not await).
"""

from __future__ import annotations

import time
from typing import Any

from httpcore._async.connection_pool import AsyncConnectionPool
from httpcore._async.http2 import AsyncHTTP2Connection

__all__ = ["install"]

# How often idle connections are all probed for expiry; the one about to be handed out is
# always probed.
_SWEEP_INTERVAL = 0.25


def install() -> None:
    cls = AsyncConnectionPool
    if getattr(cls, "_manyio_installed", False):
        return
    cls._assign_requests_to_connections = _assign_requests_to_connections  # type: ignore[method-assign]
    cls._manyio_installed = True  # type: ignore[attr-defined]


def _multiplexed(connection: Any) -> bool:
    return isinstance(getattr(connection, "_connection", connection), AsyncHTTP2Connection)


def _assign_requests_to_connections(self: Any) -> list[Any]:
    closing: list[Any] = []
    held = {r.connection for r in self._requests if r.connection is not None}
    now = time.monotonic()
    sweep = now >= self.__dict__.get("_manyio_next_sweep", 0.0)
    if sweep:
        self._manyio_next_sweep = now + _SWEEP_INTERVAL

    # Drop closed connections; close expired ones, surplus idle ones and orphans. Connections
    # a request holds are its owner's business: their state may be changing on another
    # worker right now, so they are not probed (a response arriving on an active connection
    # must not pass for a server's close of an idle one).
    kept: list[Any] = []
    idle = 0
    for connection in self._connections:
        if connection in held:
            kept.append(connection)  # (if it closed, it goes once its request lets go of it)
        elif connection.is_closed():
            continue
        elif sweep and connection.has_expired():
            closing.append(connection)
        elif connection.is_idle():
            if idle < self._max_keepalive_connections:
                idle += 1
                kept.append(connection)
            else:
                closing.append(connection)
        elif not connection.is_available():
            closing.append(connection)  # an orphan: nobody will ever use it
        else:
            kept.append(connection)
    self._connections[:] = kept

    # Hand each queued request a connection.
    for pool_request in [r for r in self._requests if r.is_queued()]:
        origin = pool_request.request.url.origin
        connection = _available(self, origin, held, closing)
        if connection is None:
            if len(self._connections) >= self._max_connections:
                spare = next((c for c in self._connections if c not in held and c.is_idle()), None)
                if spare is None:
                    continue  # stays queued until a connection frees up
                self._connections.remove(spare)
                closing.append(spare)
            connection = self.create_connection(origin)
            self._connections.append(connection)
        pool_request.assign_to_connection(connection)
        held.add(connection)
    return closing


def _available(pool: Any, origin: Any, held: set[Any], closing: list[Any]) -> Any:
    """A connection that can take a request for ``origin`` now. An idle one is checked for
    expiry (keep-alive timeout, or the server closed it) before it is handed out."""
    for connection in list(pool._connections):
        if connection in held and not _multiplexed(connection):
            continue
        if not (connection.can_handle_request(origin) and connection.is_available()):
            continue
        if connection not in held and connection.has_expired():
            pool._connections.remove(connection)
            closing.append(connection)
            continue
        return connection
    return None
