"""Benchmark workloads: one module per workload, each with ``NAME``, ``sizes(quick)``,
``verify(result, size, params)``, optional ``label(size)``, and ``VARIANTS`` mapping an
implementation name to ``(runtime, async main(size, params))``.

Optional: ``cases(quick)`` returning ``(size, params, label)`` triples replaces ``sizes`` when a
workload varies more than one parameter; ``SERVER = True`` marks a workload whose cells are
servers driven by ``loadgen.py`` (see ``echo``) rather than timed runs; ``service()``, a
context manager yielding environment variables for the cells, runs a server the workload's
cells talk to (see ``httpx``) for as long as the run lasts; ``prepare(impl)``, called in the
cell before the clock starts, imports the client library (and applies manyio's adapter for
the manyio variant) so that one-time import costs are not timed for any variant.
"""

from __future__ import annotations

import importlib
from types import ModuleType

WORKLOAD_NAMES = (
    "spawn",
    "pingpong",
    "lock",
    "channel",
    "cpu",
    "echo",
    "anyio",
    "facade",
    "redis",
    "httpx",
    "asyncpg",
)


def load(name: str) -> ModuleType:
    if name not in WORKLOAD_NAMES:
        raise ValueError(f"unknown workload {name!r}; known: {', '.join(WORKLOAD_NAMES)}")
    return importlib.import_module(f"{__name__}.{name}")


def human(n: int) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


def label(module: ModuleType, size: int) -> str:
    fn = getattr(module, "label", None)
    return f"{module.NAME} {fn(size) if fn else human(size)}"
