"""Async generators abandoned part-way are closed in a task of their own.

An ``async for`` that stops early (``break``, an exception, a cancellation) leaves its
generator suspended; when the generator is then collected, Python calls the finalizer
hook of the thread that first iterated it. With no hook, Python closes it on the spot by
throwing ``GeneratorExit`` into it, and a ``finally`` or ``async with`` exit that awaits
(a ROLLBACK, a socket close) fails with "async generator ignored GeneratorExit". As asyncio
and trio do, each worker installs a finalizer that runs ``aclose()`` in a new task on the
worker's runtime instead, so every ``finally`` runs and may await.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncGenerator
from typing import Any

from manyio import _core


def install() -> None:
    """Called by each worker thread as it starts."""
    runtime = _core.current_runtime()

    def finalizer(agen: AsyncGenerator[Any, Any]) -> None:
        name = getattr(agen, "__qualname__", "async generator")
        try:
            runtime.spawn(_aclose(agen), name=f"aclose {name}")
        except RuntimeError:
            pass  # the runtime is closed: no task can run the generator's cleanup any more

    sys.set_asyncgen_hooks(finalizer=finalizer)


async def _aclose(agen: AsyncGenerator[Any, Any]) -> None:
    # An error raised by the cleanup goes to the runtime's handler for unobserved task errors.
    await agen.aclose()
