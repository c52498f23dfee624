"""Coroutines in parallel: N CPU-heavy coroutines on 1 worker thread, then on every core.

Each coroutine does pure-Python arithmetic with a checkpoint now and then, the way a request
handler does CPU work between awaits. On asyncio (or manyio with one thread) they take turns
on one core; with more worker threads manyio runs them at the same time.

    python examples/parallel_demo.py [--tasks 8] [--work 0.25] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import manyio


def calibrate(seconds: float) -> int:
    """Loop iterations of `burn` that take about `seconds` on this machine, on one thread."""
    n = 20_000
    while True:
        t0 = time.perf_counter()
        burn(n)
        elapsed = time.perf_counter() - t0
        if elapsed > 0.05:
            return max(1, int(n * seconds / elapsed))
        n *= 2


def burn(n: int) -> int:
    # Only small-int constants: on 3.14t, float and large-int constants are shared objects
    # whose reference counts the threads would fight over, and the loop would not scale.
    acc = 0
    for i in range(n):
        acc = (acc * 31 + i) & 0xFF
    return acc


async def worker(iterations: int, slices: int) -> int:
    total = 0
    step = max(1, iterations // slices)
    done = 0
    while done < iterations:
        total += burn(min(step, iterations - done))
        done += step
        await manyio.checkpoint()  # a real await point: other tasks may run here
    return total


async def batch(tasks: int, iterations: int) -> list[int]:
    async with manyio.TaskGroup() as tg:
        handles = [tg.spawn(worker(iterations, 20)) for _ in range(tasks)]
    return [h.result() for h in handles]


def timed(threads: int, tasks: int, iterations: int) -> tuple[float, list[int]]:
    t0 = time.perf_counter()
    results = manyio.run(batch(tasks, iterations), threads=threads)
    return time.perf_counter() - t0, results


def main() -> int:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=4 * cores, help="number of coroutines")
    parser.add_argument("--work", type=float, default=0.25, help="CPU seconds per coroutine (on one thread)")
    parser.add_argument("--threads", type=int, default=cores, help="worker threads for the parallel run")
    args = parser.parse_args()

    iterations = calibrate(args.work)
    print(f"Python {sys.version.split()[0]}, GIL enabled: {sys._is_gil_enabled()}, cores: {cores}")
    print(f"{args.tasks} coroutines x ~{args.work:.2f} s of pure-Python CPU each\n")
    serial, r1 = timed(1, args.tasks, iterations)
    parallel, rn = timed(args.threads, args.tasks, iterations)
    assert r1 == rn, "both runs must compute the same results"
    ideal = serial / min(args.threads, args.tasks)
    print(f"{'threads':>8} {'wall s':>8} {'speed-up':>9}")
    print(f"{1:>8} {serial:>8.2f} {1.0:>8.2f}x")
    print(f"{args.threads:>8} {parallel:>8.2f} {serial / parallel:>8.2f}x   (ideal {serial / ideal:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
