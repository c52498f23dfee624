"""Strands: serial domains for code that assumes nothing else runs between its awaits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from . import _core

__all__ = ["Strand"]

T = TypeVar("T")


class Strand:
    """At most one task of a strand runs at any instant, on whichever worker is free; its
    runnable tasks take turns in FIFO order, and different strands run in parallel.

    Tasks spawned from a strand task stay in that strand (pass ``strand=None`` to
    ``manyio.spawn`` to leave it). Code written for a single-threaded event loop (shared
    state mutated between awaits without locks) is safe inside one strand.

    Example::

        strand = manyio.Strand()
        result = await strand.run(legacy_client.fetch, "key")
    """

    __slots__ = ("_core",)

    def __init__(self) -> None:
        self._core = _core.Strand()

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> _core.Task[T]:
        """Starts ``coro`` as a task in this strand."""
        return _core.spawn(coro, name=name, strand=self._core)

    async def run(self, async_fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Runs ``async_fn(*args)`` in this strand and returns its result."""
        return await self.spawn(_call(async_fn, args))

    @property
    def queued(self) -> int:
        """Runnable tasks waiting for their turn."""
        return self._core.queued()

    @property
    def steps(self) -> int:
        """Steps run in this strand so far."""
        return self._core.steps()

    def __repr__(self) -> str:
        return f"<manyio.Strand queued={self.queued} steps={self.steps}>"


async def _call(async_fn: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
    return await async_fn(*args)
