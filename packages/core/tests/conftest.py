"""Shared fixtures for manyio's core tests.

Most tests are plain functions that call :func:`manyio.run` themselves, so each one gets a
fresh runtime and a leak in one test cannot hide in another. The async tests in
``test_pytest_plugin.py`` exercise the pytest plugin instead.

The suite runs with ``--import-mode=importlib``, so test modules cannot import helpers from
here: helpers are handed out as fixtures.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Awaitable, Callable

import manyio
import pytest

WaitUntil = Callable[..., Awaitable[None]]
BusyUntil = Callable[..., None]

# A shell starts background jobs with SIGINT ignored, and an ignored signal stays ignored in
# the children the Ctrl-C tests start (Python then installs no KeyboardInterrupt handler).
# Those tests need Ctrl-C to work, however this suite was started.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


async def _wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s: {predicate!r}")
        await manyio.sleep(0.001)


@pytest.fixture
def wait_until() -> WaitUntil:
    """``await wait_until(predicate, timeout=5.0)``: sleeps in small steps until it holds."""
    return _wait_until


def _busy_until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not reached within {timeout} s: {predicate!r}")


@pytest.fixture
def busy_until() -> BusyUntil:
    """``busy_until(predicate, timeout=5.0)``: polls without yielding, so the calling task keeps
    running (holding what it holds) until the predicate holds."""
    return _busy_until
