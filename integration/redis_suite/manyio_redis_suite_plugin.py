"""pytest plugin that runs redis-py's asyncio tests on manyio instead of pytest-asyncio.

* ``pytest_asyncio`` is provided here (its ``fixture`` decorator is pytest's own): manyio's
  pytest plugin runs every async test and async fixture on a 2-thread runtime.
* :func:`manyio_redis.patch` is applied, and the test modules' own ``asyncio`` (they call
  ``asyncio.sleep``, ``asyncio.create_task``, ``asyncio.wait_for``... directly) is pointed at
  the same shim, so the tests drive redis-py from manyio tasks exactly as its code does.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import manyio_redis
import pytest
from manyio_redis import _patch_module

manyio_redis.patch()


def _fixture(fixture_function: Any = None, *, loop_scope: str | None = None, **kwargs: Any) -> Any:
    if fixture_function is not None:
        return pytest.fixture(fixture_function, **kwargs)
    return pytest.fixture(**kwargs)


_pytest_asyncio = types.ModuleType("pytest_asyncio")
_pytest_asyncio.fixture = _fixture  # type: ignore[attr-defined]
_pytest_asyncio.is_async_test = lambda item: False  # type: ignore[attr-defined]
sys.modules.setdefault("pytest_asyncio", _pytest_asyncio)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "asyncio: accepted for redis-py's tests; they run on manyio")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    seen: set[str] = set()
    for item in items:
        item.add_marker(pytest.mark.manyio(threads=2))
        module = getattr(item, "module", None)
        if module is not None and module.__name__ not in seen:
            seen.add(module.__name__)
            _patch_module(module)
    for name, module in list(sys.modules.items()):
        if name.startswith("tests.") and module is not None and name not in seen:
            _patch_module(module)
