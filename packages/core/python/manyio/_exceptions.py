"""Exceptions raised by manyio."""

from __future__ import annotations

import asyncio

__all__ = [
    "BrokenResourceError",
    "BusyResourceError",
    "Cancelled",
    "ClosedResourceError",
    "EndOfChannel",
    "WouldBlock",
]


class Cancelled(asyncio.CancelledError):
    """Raised at checkpoints inside a cancelled scope.

    It subclasses :class:`asyncio.CancelledError`, so code written for asyncio that catches
    cancellation keeps working. Let it propagate: the cancel scope that caused it catches it.
    """


class WouldBlock(Exception):
    """A ``*_nowait`` operation could not complete immediately."""


class ClosedResourceError(Exception):
    """This end of the resource was closed (by this side)."""


class BrokenResourceError(Exception):
    """The other side went away: every receiver (or the peer) is closed."""


class EndOfChannel(Exception):
    """Every sender of the channel closed and its buffer is drained."""


class BusyResourceError(Exception):
    """Another task is already waiting on this resource in the same direction."""
