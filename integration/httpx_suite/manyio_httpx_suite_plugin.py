"""pytest plugin for httpx's own test suite on manyio (loaded with ``-p``).

httpx's async tests are AnyIO tests (``@pytest.mark.anyio``): AnyIO's pytest plugin runs them
on the backend the ``anyio_backend`` fixture names. This plugin names manyio's AnyIO backend
(2 worker threads, tasks spread over both: ``parallel``) and applies manyio-httpx, so every
request the tests make goes through httpx's default transport on manyio's sockets.

If ``MANYIO_SUITE_STATS`` names a file, the plugin writes there, as JSON, how many
connections manyio-httpx opened and on how many worker threads: the runner checks that the
suite really went through the adapter.
"""

from __future__ import annotations

import json
import os
import threading
import types
from typing import Any

import manyio_anyio
import manyio_httpx
import pytest

manyio_anyio.patch()
manyio_httpx.patch()

_connections: list[int] = []  # the thread that opened each connection
_connect_tcp = manyio_httpx.ManyioBackend.connect_tcp


async def _counting_connect_tcp(self: Any, *args: Any, **kwargs: Any) -> Any:
    _connections.append(threading.get_ident())
    return await _connect_tcp(self, *args, **kwargs)


manyio_httpx.ManyioBackend.connect_tcp = _counting_connect_tcp  # type: ignore[method-assign]


def _manyio_backend() -> tuple[str, dict[str, object]]:
    return ("manyio", {"threads": 2, "parallel": True})


def pytest_configure(config: pytest.Config) -> None:
    # Registered after AnyIO's own plugin, so this anyio_backend replaces its fixture (which
    # would run every test once per installed backend).
    backend = types.ModuleType("manyio_httpx_suite_backend")
    backend.anyio_backend = pytest.fixture(scope="module", name="anyio_backend")(_manyio_backend)  # type: ignore[attr-defined]
    config.pluginmanager.register(backend, "manyio-httpx-suite-backend")


def pytest_unconfigure(config: pytest.Config) -> None:
    path = os.environ.get("MANYIO_SUITE_STATS")
    if path:
        with open(path, "w") as f:
            json.dump({"connections": len(_connections), "threads": len(set(_connections))}, f)
