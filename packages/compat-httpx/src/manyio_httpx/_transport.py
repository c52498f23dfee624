"""``AsyncTransport``: httpx's own transport with its connections on manyio."""

from __future__ import annotations

from typing import Any

import httpx

from . import _install
from ._backend import ManyioBackend

__all__ = ["AsyncTransport"]


class AsyncTransport(httpx.AsyncHTTPTransport):
    """:class:`httpx.AsyncHTTPTransport` (same arguments: ``verify``, ``cert``, ``http2``,
    ``limits``, ``proxy``, ``uds``, ``retries``...) whose connections are manyio sockets.

    Works without :func:`manyio_httpx.patch`: creating one makes httpcore's locks thread-safe
    (as ``patch`` does). Use it from manyio tasks; one client may serve tasks on every worker.

    Example::

        async with httpx.AsyncClient(transport=manyio_httpx.AsyncTransport(http2=True)) as client:
            r = await client.get("https://127.0.0.1:8443/")
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _install.httpcore()
        super().__init__(*args, **kwargs)
        # httpx builds the pool (or the HTTP/SOCKS proxy pool) without a network_backend
        # parameter; every httpcore pool keeps the backend it passes to new connections here.
        self._pool._network_backend = ManyioBackend()
