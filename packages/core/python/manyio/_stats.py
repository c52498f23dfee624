"""Runtime counters for the calling task's runtime."""

from __future__ import annotations

from typing import Any

from . import _core

__all__ = ["stats"]


def stats() -> dict[str, Any]:
    """Workers, run-queue depths, steals, parks, live tasks and timers of the current runtime.

    ``poller_wakeups`` counts how often a worker sleeping in the I/O poller was woken from
    another thread (for new work or a nearer timer deadline).

    Example::

        print(manyio.stats()["live_tasks"])
    """
    return _core.current_runtime().stats()
