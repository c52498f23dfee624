"""spawn: N x (spawn a task that yields once and returns 3**2), then await them all.

``coroutines`` is the floor every runtime pays and none can beat: the same N coroutines,
created up front as every variant creates them, then stepped to their checkpoint and on to
their return by plain threads, with no task objects, contexts, queues or wake-ups. It
shows how much of a variant's time is the interpreter's own (allocating, stepping and
garbage-collecting N live coroutines) and how much is the runtime's.
``coroutines-in-contexts`` adds the one thing every manyio task must also have: its own copy
of the spawner's context, entered for each step.
"""

from __future__ import annotations

from typing import Any

NAME = "spawn"


def sizes(quick: bool) -> list[int]:
    return [10_000] if quick else [100_000, 1_000_000]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == 9 * size, f"sum of results {result!r} != {9 * size}"


async def _asyncio(n: int, params: dict[str, Any]) -> int:
    import asyncio

    async def one() -> int:
        await asyncio.sleep(0)
        return 3**2

    tasks = [asyncio.create_task(one()) for _ in range(n)]
    return sum(await asyncio.gather(*tasks))


async def _trio(n: int, params: dict[str, Any]) -> int:
    import trio

    results: list[int] = []

    async def one() -> None:
        await trio.lowlevel.checkpoint()
        results.append(3**2)

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
    assert len(results) == n
    return sum(results)


def _manyio_one() -> Any:
    # A closure over the imported module, as in every peer's variant: an import statement in
    # the task's body would cost each of the N tasks a module lookup the peers do not pay.
    import manyio

    async def one() -> int:
        await manyio.checkpoint()
        return 3**2

    return one


async def _manyio(n: int, params: dict[str, Any]) -> int:
    import manyio

    one = _manyio_one()
    tasks = [manyio.spawn(one()) for _ in range(n)]
    total = 0
    for t in tasks:
        total += await t
    return total


async def _manyio_taskgroup(n: int, params: dict[str, Any]) -> int:
    import manyio

    one = _manyio_one()
    async with manyio.TaskGroup() as tg:
        tasks = [tg.spawn(one()) for _ in range(n)]
    return sum(t.result() for t in tasks)


async def _tonio(n: int, params: dict[str, Any]) -> int:
    import tonio.colored as tc

    async def one() -> int:
        await tc.yield_now()
        return 3**2

    return sum(await tc.spawn(*[one() for _ in range(n)]))


class _Yield:
    """One bare suspension, like every runtime's ``checkpoint``: ``await _YIELD`` yields None."""

    __slots__ = ()

    def __await__(self) -> Any:
        yield None


_YIELD = _Yield()


async def _bare_one() -> int:
    await _YIELD
    return 3**2


def _coroutines(threads: int, n: int, params: dict[str, Any], contexts: bool = False) -> int:
    """The floor (a plain function: runtime "threading"): each thread steps its share of the
    coroutines to their checkpoint, then steps them again to their return. With ``contexts``,
    each coroutine also gets its own copy of the context and runs in it, as a manyio task
    does by default (issue 2 requires it). Nothing else is kept per coroutine: one more
    object each (a pair, say) would add its own garbage-collection cost to the floor."""
    import contextvars
    import threading

    coros = [_bare_one() for _ in range(n)]
    ctxs = [contextvars.copy_context() for _ in range(n)] if contexts else None
    totals = [0] * threads

    def step(k: int) -> None:
        mine = coros[k::threads]
        total = 0
        if ctxs is None:
            for c in mine:
                c.send(None)
            for c in mine:
                try:
                    c.send(None)
                except StopIteration as done:
                    total += done.value
        else:
            theirs = ctxs[k::threads]
            for c, ctx in zip(mine, theirs, strict=True):
                ctx.run(c.send, None)
            for c, ctx in zip(mine, theirs, strict=True):
                try:
                    ctx.run(c.send, None)
                except StopIteration as done:
                    total += done.value
        totals[k] = total

    workers = [threading.Thread(target=step, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(totals)


def _coroutines_in_contexts(threads: int, n: int, params: dict[str, Any]) -> int:
    return _coroutines(threads, n, params, contexts=True)


VARIANTS = {
    "manyio": ("manyio", _manyio),
    "manyio-taskgroup": ("manyio", _manyio_taskgroup),
    "asyncio": ("asyncio", _asyncio),
    "uvloop": ("uvloop", _asyncio),
    "trio": ("trio", _trio),
    "tonio": ("tonio", _tonio),
    "coroutines": ("threading", _coroutines),
    "coroutines-in-contexts": ("threading", _coroutines_in_contexts),
}
