"""How each runtime runs a main coroutine, and how it reports its version.

Imports are lazy: a cell imports only the runtime it measures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

RUNTIMES = (
    "manyio",
    "asyncio",
    "uvloop",
    "trio",
    "tonio",
    "threading",
    # AnyIO code on each AnyIO backend (the anyio workload).
    "anyio-manyio",
    "anyio-manyio-parallel",
    "anyio-asyncio",
    "anyio-uvloop",
    "anyio-trio",
    # asyncio programs on manyio's asyncio loop facade (the asyncio workload).
    "asyncio-manyio",
)
MULTI_THREADED = frozenset(
    {"manyio", "tonio", "threading", "anyio-manyio", "anyio-manyio-parallel", "asyncio-manyio"}
)


def import_runtime(runtime: str) -> str:
    """Imports ``runtime`` and returns its version string (raises ImportError if unavailable)."""
    if runtime in ("manyio", "asyncio-manyio"):
        import manyio
        import manyio.asyncio

        return manyio.__version__
    if runtime == "asyncio":
        import asyncio

        return f"stdlib {sys.version.split()[0]}"
    if runtime == "uvloop":
        import asyncio  # noqa: F401

        import uvloop

        return uvloop.__version__
    if runtime == "trio":
        import trio

        return trio.__version__
    if runtime == "tonio":
        import tonio
        import tonio.colored

        return tonio.__version__
    if runtime == "threading":
        import threading  # noqa: F401

        return f"stdlib {sys.version.split()[0]}"
    if runtime.startswith("anyio-"):
        import anyio  # noqa: F401

        backend = runtime.split("-")[1]
        if backend == "manyio":
            import manyio_anyio  # noqa: F401  (registers the backend)
        else:
            import_runtime(backend)
        return f"anyio {_version('anyio')} on {backend}"
    raise ValueError(f"unknown runtime {runtime!r}")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def run(runtime: str, threads: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Runs ``await fn(*args)`` as the main task of ``runtime`` with ``threads`` workers.

    For ``threading`` (a no-event-loop reference) ``fn`` is a plain function called as
    ``fn(threads, *args)``.
    """
    if runtime == "manyio":
        import manyio

        return manyio.run(fn(*args), threads=threads)
    if runtime == "asyncio":
        import asyncio

        return asyncio.run(fn(*args))
    if runtime == "asyncio-manyio":
        import manyio.asyncio

        return manyio.asyncio.run(fn(*args), threads=threads)
    if runtime == "uvloop":
        import asyncio

        import uvloop

        return asyncio.run(fn(*args), loop_factory=uvloop.new_event_loop)
    if runtime == "trio":
        import trio

        return trio.run(fn, *args)
    if runtime == "tonio":
        import tonio.colored

        return tonio.colored.run(fn(*args), threads=threads)
    if runtime == "threading":
        return fn(threads, *args)  # a plain function that starts its own threads
    if runtime.startswith("anyio-"):
        import anyio

        options: dict[str, Any] = {}
        backend = runtime.removeprefix("anyio-")
        if backend == "uvloop":
            backend, options = "asyncio", {"use_uvloop": True}
        elif backend.startswith("manyio"):
            import manyio_anyio  # noqa: F401  (registers the backend)

            options = {"threads": threads, "parallel": backend.endswith("parallel")}
            backend = "manyio"
        return anyio.run(fn, *args, backend=backend, backend_options=options)
    raise ValueError(f"unknown runtime {runtime!r}")
