"""The event-loop token AnyIO asks for: which runtime (and strand) other threads call into.

``anyio.run(..., backend="manyio")`` makes a runtime and, by default, one strand that all
the run's tasks share; its token carries both. Tasks of a plain ``manyio.run`` that use AnyIO
get one token per runtime, kept in the runtime's ``locals`` (no strand: they run in
parallel). AnyIO keys its ``RunVar`` storage on the token, so it is hashable and weakly
referenceable.
"""

from __future__ import annotations

import threading
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any

import manyio
from manyio import _core

_LOCALS_KEY = "manyio_anyio.token"


class RunToken:
    """One AnyIO "event loop": a manyio runtime, and the strand its tasks share (if any)."""

    __slots__ = ("__weakref__", "_limiter", "_lock", "runtime", "strand")

    def __init__(self, runtime: manyio.Runtime | None, strand: manyio.Strand | None) -> None:
        self.runtime = runtime
        self.strand = strand
        self._lock = threading.Lock()
        self._limiter: Any = None

    def core(self) -> _core.Runtime:
        return self.runtime._core if self.runtime is not None else _core.from_thread_runtime()

    def runs_current_task(self) -> bool:
        """True if the caller is a task of this token's runtime."""
        try:
            here = _core.current_runtime()
        except RuntimeError:
            return False
        return self.runtime is None or here.locals is self.runtime._core.locals

    def spawn(
        self,
        coro: Coroutine[Any, Any, Any],
        name: str | None = None,
        within: _core.CancelStatus | None = None,
    ) -> manyio.Task[Any]:
        """Starts ``coro`` on this token's runtime (in its strand) from any thread.

        Raises RuntimeError if the runtime has closed.
        """
        core = self.core()
        if core.closed:
            coro.close()
            raise RuntimeError("the runtime has closed")
        return core.spawn(coro, name=name, within=within, strand=self.strand)

    def default_thread_limiter(self) -> Any:
        with self._lock:
            if self._limiter is None:
                from ._sync import CapacityLimiter

                self._limiter = CapacityLimiter(40)
            return self._limiter

    def __repr__(self) -> str:
        mode = "strand" if self.strand is not None else "parallel"
        return f"<manyio_anyio.RunToken {mode} {self.runtime!r}>"


current_run: ContextVar[RunToken] = ContextVar("manyio_anyio.current_run")


def current_token() -> RunToken:
    try:
        return current_run.get()
    except LookupError:
        pass
    local = _core.current_runtime().locals
    token = local.get(_LOCALS_KEY)
    if token is None:
        token = local.setdefault(_LOCALS_KEY, RunToken(None, None))
    return token
