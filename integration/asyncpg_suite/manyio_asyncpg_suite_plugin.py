"""pytest plugin that runs asyncpg's own tests on manyio, through manyio-asyncpg.

asyncpg's test base (``asyncpg._testbase``) gives each TestCase class an event loop and runs
every async test with ``self.loop.run_until_complete(...)``. Here that loop is a
:class:`SuiteLoop`: ``run_until_complete`` runs the coroutine on a 2-thread manyio runtime,
so the test body, the connections and pools it makes (passing ``loop=self.loop``) and the
tasks it creates all run on manyio's workers, with asyncpg patched by manyio-asyncpg.

The test modules' own ``asyncio`` (they call ``asyncio.sleep``, ``asyncio.wait_for``,
``asyncio.gather``, ``asyncio.Event``... directly) is pointed at :mod:`manyio._aioshim`, as
asyncpg's modules are.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg._testbase as testbase
import manyio
import manyio_asyncpg
import pytest
from manyio import _aioshim
from manyio_asyncpg import SerialLoop

manyio_asyncpg.patch()  # after importing _testbase, so that it is patched too

THREADS = 2
_logger = logging.getLogger("manyio_asyncpg_suite")
_SHIM_TABLE = _aioshim.replacements(_aioshim, ())

Handler = Callable[[Any, dict[str, Any]], object]


class SuiteLoop(_aioshim._Loop):
    """The loop a TestCase class gets: a manyio runtime behind asyncio's loop methods."""

    def __init__(self) -> None:
        self._runtime = manyio.Runtime(threads=THREADS)
        # Futures and callbacks the tests ask of the loop itself go to a serial loop of its own.
        self._serial: SerialLoop = self._runtime.block_on(_new_serial_loop())
        self._handler: Handler | None = None

    def run_until_complete(self, aw: Awaitable[Any]) -> Any:
        return self._runtime.block_on(_await(aw))

    def create_future(self) -> Any:
        return self._serial.create_future()

    def call_soon(self, callback: Callable[..., object], *args: Any, context: Any = None) -> Any:
        return self._serial.call_soon(callback, *args, context=context)

    call_soon_threadsafe = call_soon

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any, context: Any = None):
        return self._serial.call_later(delay, callback, *args, context=context)

    def call_at(self, when: float, callback: Callable[..., object], *args: Any, context: Any = None):
        return self._serial.call_at(when, callback, *args, context=context)

    def set_exception_handler(self, handler: Handler | None) -> None:
        self._handler = handler

    def get_exception_handler(self) -> Handler | None:
        return self._handler

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        if self._handler is None:
            self.default_exception_handler(context)
        else:
            self._handler(self, context)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        _logger.error(context.get("message", "unhandled error"), exc_info=context.get("exception"))

    def is_closed(self) -> bool:
        return self._runtime.closed

    def close(self) -> None:
        self._runtime.close()


async def _new_serial_loop() -> SerialLoop:
    return SerialLoop()


async def _await(aw: Awaitable[Any]) -> Any:
    return await aw


def _set_up_class(cls: type) -> None:
    cls.loop = SuiteLoop()  # type: ignore[attr-defined]


def _tear_down_class(cls: type) -> None:
    cls.loop.close()  # type: ignore[attr-defined]


testbase.TestCase.setUpClass = classmethod(_set_up_class)  # type: ignore[assignment]
testbase.TestCase.tearDownClass = classmethod(_tear_down_class)  # type: ignore[assignment]


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for name, module in list(sys.modules.items()):
        if name.startswith("tests") and module is not None:
            _aioshim.patch_module(module, _SHIM_TABLE)
