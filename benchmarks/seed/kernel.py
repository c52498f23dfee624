"""The CPU half of a request: the essay's pure-Python loop, calibrated to milliseconds."""

from __future__ import annotations

import time


def burn(iterations: int, noise: float) -> float:
    """``result += (12345.6789 * noise) ** 0.5``, ``iterations`` times.

    The constants and ``noise`` are copied into fresh local objects first. On 3.14t a code
    object's float constants (and a caller's float shared by every request) are not immortal,
    and threads running a loop that touches the same float objects fight over their reference
    counts and stop scaling; objects of its own keep each thread on its own cache lines.
    """
    scale = (12345.6789).__mul__(1.0)
    half = (0.5).__mul__(1.0)
    noise = noise.__mul__(1.0)
    result = noise.__mul__(0.0)
    for _ in range(iterations):
        result += (scale * noise) ** half
    return result


def calibrate(target_s: float = 0.2) -> float:
    """Iterations of :func:`burn` per millisecond on this machine, on one thread (best of 3)."""
    n = 10_000
    while True:
        t0 = time.perf_counter()
        burn(n, 1.5)
        if time.perf_counter() - t0 > target_s / 4:
            break
        n *= 2
    best = min(_timed(n) for _ in range(3))
    return n / (best * 1000)


def _timed(n: int) -> float:
    t0 = time.perf_counter()
    burn(n, 1.5)
    return time.perf_counter() - t0
