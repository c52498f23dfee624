"""Entering asyncio code from manyio: ``run`` (a whole program) and ``run_in_strand``."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, TypeVar

from .. import _core
from .._exceptions import Cancelled
from .._run import run as _manyio_run
from .._strand import Strand
from ._loop import EventLoop, loop_for

__all__ = ["from_manyio", "run", "run_in_strand"]

T = TypeVar("T")


async def run_in_strand(coro: Coroutine[Any, Any, T], *, strand: Strand | None = None) -> T:
    """Runs ``coro`` as an ``asyncio.Task`` on ``strand``'s asyncio loop; returns its result.

    Without ``strand``: the caller's strand if it has a loop, else a new strand whose loop is
    closed (remaining tasks cancelled) when ``coro`` ends. Cancelling the caller cancels the
    asyncio task and waits for it to finish, as a parent waits for a cancelled child.
    """
    running = asyncio._get_running_loop()
    own_loop = False
    if strand is None:
        if isinstance(running, EventLoop) and not running.is_closed():
            strand = running.strand
        else:
            strand, own_loop = Strand(), True
    loop = loop_for(strand)
    try:
        if running is loop:
            task = loop.create_task(coro)
        else:
            task = await strand.run(_create_task, loop, coro)
        try:
            return await task
        except Cancelled:
            with _core.CancelScope(shield=True):
                await _settled(task)
            raise
    finally:
        if own_loop:
            with _core.CancelScope(shield=True):
                await shutdown(loop)


async def _create_task(loop: EventLoop, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    return loop.create_task(coro)


async def _settled(fut: asyncio.Future[Any]) -> None:
    try:
        await fut
    except BaseException:
        pass


async def shutdown(loop: EventLoop) -> None:
    """Cancels the loop's remaining tasks, finalizes async generators and the default
    executor, then closes the loop (what ``asyncio.run`` does at the end)."""
    if loop.is_closed():
        return
    # As asyncio tasks: asyncio's own shutdown steps use asyncio.timeout, which needs one.
    await run_in_strand(_drain(loop), strand=loop.strand)
    await loop.strand.run(_close, loop)


async def _drain(loop: EventLoop) -> None:
    me = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks(loop) if not t.done() and t is not me]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)
    for task in pending:
        if not task.cancelled() and task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during manyio.asyncio shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
    await loop.shutdown_asyncgens()
    await loop.shutdown_default_executor()


async def _close(loop: EventLoop) -> None:
    loop.close()


def run(main: Coroutine[Any, Any, T], *, threads: int | None = None, debug: bool | None = None) -> T:
    """Runs an asyncio program on manyio: ``main`` becomes an ``asyncio.Task`` on a new
    strand's loop, inside a manyio runtime with ``threads`` workers. Like ``asyncio.run``,
    remaining tasks are cancelled and the loop is closed at the end.

    Example::

        async def main():
            await asyncio.sleep(0.1)
            return "done"

        assert manyio.asyncio.run(main()) == "done"
    """

    async def body() -> T:
        strand = Strand()
        loop = loop_for(strand)
        if debug is not None:
            loop.set_debug(debug)
        try:
            return await run_in_strand(main, strand=strand)
        finally:
            with _core.CancelScope(shield=True):
                await shutdown(loop)

    return _manyio_run(body(), threads=threads)


async def from_manyio(awaitable: Awaitable[T]) -> T:
    """Awaits a manyio awaitable (``manyio.sleep``, a manyio ``Event``/``Lock``/``Queue``
    operation, a manyio task...) from asyncio code running in a strand.

    It runs as a manyio task in the same strand; cancelling the asyncio side cancels it and
    waits for it to finish.

    Example::

        async def handler():                      # an asyncio task on a facade loop
            await manyio.asyncio.from_manyio(shared_manyio_event.wait())
    """
    loop = asyncio.get_running_loop()
    if not isinstance(loop, EventLoop):
        raise RuntimeError("from_manyio() needs a manyio.asyncio loop (asyncio code inside a strand)")
    done: asyncio.Future[T] = loop.create_future()

    async def bridge() -> None:
        try:
            value = await awaitable
        except BaseException as exc:
            loop.call_soon_threadsafe(_settle, done, None, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            loop.call_soon_threadsafe(_settle, done, value, None)

    task = _core.spawn(bridge(), strand=loop.strand._core)
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        if done.done():
            raise
        task.cancel()
        finished = loop.create_future()
        done.add_done_callback(lambda _: finished.done() or finished.set_result(None))
        await finished
        raise


def _settle(fut: asyncio.Future[Any], value: Any, exc: BaseException | None) -> None:
    if fut.done():
        return
    if isinstance(exc, Cancelled):
        fut.cancel()
    elif exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(value)
