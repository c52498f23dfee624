"""Adapters that make existing async libraries run on manyio.

Each adapter package (``manyio-httpx``, ``manyio-redis``, ``manyio-asyncpg``, ``manyio-anyio``)
registers a patch function in the ``manyio.compat`` entry-point group. :func:`patch_all`
applies every installed one, once.

Example::

    import manyio
    manyio.compat.patch_all()   # -> ["httpx", "redis", ...] for what is installed
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from ._core import on_manyio

__all__ = ["available", "on_manyio", "patch", "patch_all"]

GROUP = "manyio.compat"

_applied: dict[str, object] = {}
_lock = threading.Lock()


def available() -> dict[str, EntryPoint]:
    """Installed adapters, by name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def patch(name: str) -> object:
    """Applies the adapter called ``name`` (idempotent) and returns what its patch returned."""
    eps = available()
    if name not in eps:
        raise ModuleNotFoundError(
            f"no manyio adapter named {name!r} is installed; "
            f"install it with: pip install 'manyio[{name}]' (package manyio-{name})",
            name=f"manyio_{name}",
        )
    with _lock:
        if name not in _applied:
            fn: Callable[[], object] = eps[name].load()
            _applied[name] = fn()
        return _applied[name]


def patch_all() -> list[str]:
    """Applies every installed adapter; returns their names."""
    names = sorted(available())
    for name in names:
        patch(name)
    return names
