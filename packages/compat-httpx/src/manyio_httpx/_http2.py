"""One strand per HTTP/2 connection.

Many requests share an HTTP/2 connection, and httpcore drives its ``h2`` state machine from
all of them, assuming (as on an event loop) that nothing else runs between two awaits: one
task takes a stream id and another sends headers before the first has used it, a read on
behalf of one stream dispatches frames to all. Under manyio those tasks run on different
workers at once. So every step that touches a connection's state runs in that connection's
:class:`manyio.Strand` (at most one of its tasks runs at a time, on any worker), which gives
httpcore exactly the interleaving it was written for; different connections still run in
parallel. HTTP/1.1 connections need none of this: the pool hands each to one request at a
time.

The caller's task waits for the strand task; if the caller is cancelled, so is the strand
task, and the caller waits for it to finish before the cancellation goes on (no step is left
running behind a caller that has gone).
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import manyio
from httpcore import Response
from httpcore._async.http2 import AsyncHTTP2Connection
from manyio.compat import on_manyio

__all__ = ["install"]

T = TypeVar("T")

# The connection whose strand the current task is serving (steps nested in a step run inline).
_serving: contextvars.ContextVar[object | None] = contextvars.ContextVar("manyio_httpx_h2", default=None)


def install() -> None:
    cls = AsyncHTTP2Connection
    if getattr(cls, "_manyio_installed", False):
        return
    init = cls.__init__
    handle = cls.handle_async_request
    body = cls._receive_response_body
    closed = cls._response_closed
    aclose = cls.aclose

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self._manyio_strand = manyio.Strand() if on_manyio() else None

    async def handle_async_request(self: Any, request: Any) -> Response:
        return await _serialized(self, handle, (self, request), orphan=_close_response)

    async def _receive_response_body(self: Any, request: Any, stream_id: int) -> AsyncIterator[bytes]:
        if not _needs_strand(self):
            async for chunk in body(self, request, stream_id):
                yield chunk
            return
        chunks = body(self, request, stream_id)
        finished = False
        try:
            while True:
                try:
                    chunk = await _serialized(self, _next, (chunks,))
                except StopAsyncIteration:
                    finished = True
                    return
                yield chunk
        finally:
            if not finished:  # stopped early: close the body reader in the strand too
                with manyio.CancelScope(shield=True):
                    await _serialized(self, _close_generator, (chunks,))

    async def _response_closed(self: Any, stream_id: int) -> None:
        await _serialized(self, closed, (self, stream_id))

    async def patched_aclose(self: Any) -> None:
        await _serialized(self, aclose, (self,))

    cls.__init__ = __init__  # type: ignore[method-assign]
    cls.handle_async_request = handle_async_request  # type: ignore[method-assign]
    cls._receive_response_body = _receive_response_body  # type: ignore[method-assign,assignment]
    cls._response_closed = _response_closed  # type: ignore[method-assign]
    cls.aclose = patched_aclose  # type: ignore[method-assign]
    cls._manyio_installed = True  # type: ignore[attr-defined]


def _needs_strand(conn: Any) -> bool:
    return conn.__dict__.get("_manyio_strand") is not None and _serving.get() is not conn


async def _serialized(
    conn: Any,
    fn: Callable[..., Awaitable[T]],
    args: tuple[Any, ...],
    *,
    orphan: Callable[[Any], Awaitable[None]] | None = None,
) -> T:
    """``await fn(*args)`` as a task of ``conn``'s strand (inline when already there)."""
    if not _needs_strand(conn):
        return await fn(*args)
    task = conn._manyio_strand.spawn(_step(conn, fn, args))
    try:
        return await task
    finally:
        if not task.done():
            task.cancel()
            with manyio.CancelScope(shield=True):
                try:
                    result = await task
                except BaseException:
                    pass
                else:
                    # It finished before it saw the cancellation: nobody will use the result.
                    if orphan is not None:
                        await orphan(result)


async def _step(conn: Any, fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    _serving.set(conn)
    return await fn(*args)


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await anext(chunks)


async def _close_generator(chunks: Any) -> None:
    await chunks.aclose()


async def _close_response(response: Response) -> None:
    await response.aclose()
