"""pytest plugin (entry point ``manyio``): async tests and async fixtures run on manyio.

An ``async def`` test runs on a manyio runtime unless another async plugin claims it (a test
marked ``asyncio``/``anyio`` or using ``anyio_backend``). ``@pytest.mark.manyio(threads=2)``
picks the number of worker threads (default: 2). Async fixtures (coroutines and async
generators) used by such tests run on the same runtime. Runtimes are kept for the session.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from ._run import Runtime

DEFAULT_THREADS = 2

_runtimes: dict[int, Runtime] = {}


def _runtime(threads: int) -> Runtime:
    rt = _runtimes.get(threads)
    if rt is None:
        rt = _runtimes[threads] = Runtime(threads)
    return rt


def _threads(node: pytest.Item | pytest.Collector | Any) -> int:
    marker = node.get_closest_marker("manyio") if hasattr(node, "get_closest_marker") else None
    if marker is not None:
        return int(marker.kwargs.get("threads", DEFAULT_THREADS))
    return DEFAULT_THREADS


def _ours(node: Any, fixturenames: Iterator[str] | list[str]) -> bool:
    if node.get_closest_marker("manyio") is not None:
        return True
    if node.get_closest_marker("asyncio") is not None or node.get_closest_marker("anyio") is not None:
        return False
    return "anyio_backend" not in fixturenames


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "manyio(threads=2): run this async test (and its async fixtures) on a manyio runtime"
    )


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    while _runtimes:
        _, rt = _runtimes.popitem()
        rt.close()


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn) or not _ours(pyfuncitem, pyfuncitem.fixturenames):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    _runtime(_threads(pyfuncitem)).block_on(fn(**kwargs))
    return True


def _sync_fixture(func: Callable[..., Any], rt: Runtime) -> Callable[..., Any]:
    if inspect.isasyncgenfunction(func):

        @functools.wraps(func)
        def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any]:
            agen = func(*args, **kwargs)
            value = rt.block_on(agen.__anext__())
            try:
                yield value
            finally:
                try:
                    rt.block_on(agen.__anext__())
                except StopAsyncIteration:
                    pass
                else:
                    raise RuntimeError(f"async fixture {func.__name__} yielded more than once")

        return gen_wrapper

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return rt.block_on(func(*args, **kwargs))

    return wrapper


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None, Any]:
    func = fixturedef.func
    node = request.node
    is_async = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    if is_async and hasattr(node, "get_closest_marker") and _ours(node, request.fixturenames):
        fixturedef.func = _sync_fixture(func, _runtime(_threads(node)))
        try:
            yield
        finally:
            fixturedef.func = func
    else:
        yield
