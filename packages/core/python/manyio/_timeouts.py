"""Deadline helpers over :class:`CancelScope`."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from ._core import CancelScope, current_time

__all__ = ["fail_after", "fail_at", "move_on_after", "move_on_at"]


def _check(value: float, what: str) -> None:
    if math.isnan(value):
        raise ValueError(f"{what} must not be NaN")


def move_on_at(deadline: float, *, shield: bool = False) -> CancelScope:
    """A scope that stops its body at ``deadline`` (on :func:`current_time`'s clock).

    Check ``scope.cancelled_caught`` afterwards to know whether it timed out.
    """
    _check(deadline, "deadline")
    return CancelScope(deadline=deadline, shield=shield)


def move_on_after(seconds: float, *, shield: bool = False) -> CancelScope:
    """A scope that stops its body after ``seconds``."""
    _check(seconds, "seconds")
    if seconds < 0:
        raise ValueError("seconds must be non-negative")
    return CancelScope(deadline=current_time() + seconds, shield=shield)


@contextmanager
def fail_at(deadline: float, *, shield: bool = False) -> Iterator[CancelScope]:
    """Like :func:`move_on_at`, but raises :class:`TimeoutError` if the deadline stops the body."""
    with move_on_at(deadline, shield=shield) as scope:
        yield scope
    if scope.cancelled_caught:
        raise TimeoutError("deadline exceeded")


@contextmanager
def fail_after(seconds: float, *, shield: bool = False) -> Iterator[CancelScope]:
    """Like :func:`move_on_after`, but raises :class:`TimeoutError` when time runs out.

    Example::

        with manyio.fail_after(1.0):
            await fetch()
    """
    _check(seconds, "seconds")
    if seconds < 0:
        raise ValueError("seconds must be non-negative")
    with fail_at(current_time() + seconds, shield=shield) as scope:
        yield scope
