"""cpu: 8 tasks, each ~0.25 s (on one thread) of pure-Python CPU work, yielding every ~2 ms.

The only workload that can scale with threads. ``run.py`` calibrates the chunk size once
(``calibrate``) and passes the same ``iters``/``chunks``/``expected`` to every cell, so every
implementation does identical work and each task's final value is checked.

The kernel uses only small-int constants (-5..256) on purpose: on 3.14.7t the other constants
of a code object (big ints, floats) are not immortal, so threads running the same loop fight
over their reference counts and a kernel like ``acc * 1103515245`` or ``x ** 0.5`` does not
scale even on plain threads. ``threads`` (plain ``threading.Thread``s, no event loop) is the
interpreter's own scaling ceiling for this kernel.
"""

from __future__ import annotations

import time
from typing import Any

NAME = "cpu"
TASKS = 8
SEED = 7
TASK_SECONDS = 0.25
CHUNK_SECONDS = 0.002


def sizes(quick: bool) -> list[int]:
    return [TASKS]


def label(size: int) -> str:
    return f"{size}x{TASK_SECONDS}s"


def burn(iters: int, acc: int) -> int:
    """Pure-Python integer work over ``iters`` steps; small-int constants only (see above)."""
    for i in range(iters):
        acc = (acc * 75 + 74 + i) % 251
    return acc


def task_value(iters: int, chunks: int) -> int:
    """What one task returns: every chunk's result, packed base 251 (so no chunk is skipped)."""
    acc = check = SEED
    for _ in range(chunks):
        acc = burn(iters, acc)
        check = check * 251 + acc
    return check


def calibrate() -> dict[str, Any]:
    """Finds ``iters`` per ~2 ms chunk on this machine and the value one task must return."""
    iters = 1000
    while True:
        t0 = time.perf_counter()
        burn(iters, SEED)
        dt = time.perf_counter() - t0
        if dt > 0.05:
            break
        iters *= 2
    best = dt
    for _ in range(4):
        t0 = time.perf_counter()
        burn(iters, SEED)
        best = min(best, time.perf_counter() - t0)
    per_chunk = max(1, round(iters * CHUNK_SECONDS / best))
    chunks = max(1, round(TASK_SECONDS / CHUNK_SECONDS))
    return {"iters": per_chunk, "chunks": chunks, "expected": task_value(per_chunk, chunks)}


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    want = [params["expected"]] * size
    assert list(result) == want, f"task values {result!r} != {want}"


def _body(checkpoint: Any) -> Any:
    async def task(iters: int, chunks: int) -> int:
        acc = check = SEED
        for _ in range(chunks):
            acc = burn(iters, acc)
            check = check * 251 + acc
            await checkpoint()
        return check

    return task


async def _asyncio(size: int, params: dict[str, Any]) -> list[int]:
    import asyncio

    task = _body(lambda: asyncio.sleep(0))
    return list(await asyncio.gather(*[task(params["iters"], params["chunks"]) for _ in range(size)]))


async def _trio(size: int, params: dict[str, Any]) -> list[int]:
    import trio

    task = _body(trio.lowlevel.checkpoint)
    results: list[int] = [0] * size

    async def store(k: int) -> None:
        results[k] = await task(params["iters"], params["chunks"])

    async with trio.open_nursery() as nursery:
        for k in range(size):
            nursery.start_soon(store, k)
    return results


async def _manyio(size: int, params: dict[str, Any]) -> list[int]:
    import manyio

    task = _body(manyio.checkpoint)
    tasks = [manyio.spawn(task(params["iters"], params["chunks"])) for _ in range(size)]
    return [await t for t in tasks]


async def _tonio(size: int, params: dict[str, Any]) -> list[int]:
    import tonio.colored as tc

    task = _body(tc.yield_now)
    return list(await tc.spawn(*[task(params["iters"], params["chunks"]) for _ in range(size)]))


def _threads(threads: int, size: int, params: dict[str, Any]) -> list[int]:
    import threading

    results: list[int] = [0] * size

    def worker(first: int) -> None:
        for k in range(first, size, threads):
            results[k] = task_value(params["iters"], params["chunks"])

    workers = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


VARIANTS = {
    "threads": ("threading", _threads),
    "manyio": ("manyio", _manyio),
    "asyncio": ("asyncio", _asyncio),
    "uvloop": ("uvloop", _asyncio),
    "trio": ("trio", _trio),
    "tonio": ("tonio", _tonio),
}
