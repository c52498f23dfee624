"""Memory channels: ``send, receive = manyio.channel(max_buffer)``, many producers and consumers.

Both ends can be cloned; the channel is closed for receivers once every send end is closed
(:class:`EndOfChannel` after the buffer drains), and broken for senders once every receive
end is closed (:class:`BrokenResourceError`). A value handed to a receiver that was cancelled
at that moment goes to the next receiver or into the buffer; it is never dropped.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any, Generic, TypeVar

from ._core import Waiter, checkpoint
from ._exceptions import BrokenResourceError, ClosedResourceError, EndOfChannel, WouldBlock

__all__ = ["ReceiveChannel", "SendChannel", "channel"]

T = TypeVar("T")

_CLOSED = object()


class _State:
    def __init__(self, max_buffer: float) -> None:
        self.mutex = threading.Lock()
        self.max_buffer = max_buffer
        self.buffer: deque[Any] = deque()
        # Each waiter remembers the end it waits on: closing that end wakes it.
        self.senders: deque[tuple[Waiter, Any, object]] = deque()
        self.receivers: deque[tuple[Waiter, object]] = deque()
        self.open_send = 0
        self.open_receive = 0


class SendChannel(Generic[T]):
    """The sending end of a :func:`channel`."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._closed = False
        with state.mutex:
            state.open_send += 1

    def clone(self) -> SendChannel[T]:
        """Another send end; the channel stays open until every send end is closed."""
        if self._closed:
            raise ClosedResourceError
        return SendChannel(self._state)

    def _check(self) -> None:
        if self._closed:
            raise ClosedResourceError
        if self._state.open_receive == 0:
            raise BrokenResourceError("every receive end of the channel is closed")

    def send_nowait(self, value: T) -> None:
        """Sends ``value`` if a receiver waits or the buffer has room, else raises :class:`WouldBlock`."""
        s = self._state
        with s.mutex:
            self._check()
            if not self._deliver(value):
                raise WouldBlock

    def _deliver(self, value: T) -> bool:
        """Under the mutex: gives ``value`` to a waiting receiver or the buffer."""
        s = self._state
        while s.receivers:
            if s.receivers.popleft()[0].complete(value):
                return True
        if len(s.buffer) < s.max_buffer:
            s.buffer.append(value)
            return True
        return False

    async def send(self, value: T) -> None:
        """Sends ``value``, waiting while the buffer is full."""
        await checkpoint()
        s = self._state
        with s.mutex:
            self._check()
            if self._deliver(value):
                return
            waiter = Waiter()
            record = (waiter, value, self)
            s.senders.append(record)
        try:
            result = await waiter
        except BaseException:
            with s.mutex:
                try:
                    s.senders.remove(record)
                except ValueError:
                    pass
            raise
        if result is _CLOSED:
            raise BrokenResourceError("every receive end of the channel is closed")

    def close(self) -> None:
        """Closes this end: tasks blocked sending on it get :class:`ClosedResourceError`."""
        s = self._state
        with s.mutex:
            if self._closed:
                return
            self._closed = True
            s.open_send -= 1
            mine = [r for r in s.senders if r[2] is self]
            for record in mine:
                s.senders.remove(record)
                record[0].fail(ClosedResourceError())
            if s.open_send == 0:
                receivers, s.receivers = s.receivers, deque()
                for waiter, _ in receivers:
                    waiter.fail(EndOfChannel())

    async def aclose(self) -> None:
        """Closes this end (see :meth:`close`)."""
        self.close()
        await checkpoint()

    def __enter__(self) -> SendChannel[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> SendChannel[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def statistics(self) -> dict[str, Any]:
        """Buffer use, open ends and waiting tasks of the channel."""
        return _statistics(self._state)


class ReceiveChannel(Generic[T]):
    """The receiving end of a :func:`channel`; ``async for value in receive:`` drains it."""

    def __init__(self, state: _State) -> None:
        self._state = state
        self._closed = False
        with state.mutex:
            state.open_receive += 1

    def clone(self) -> ReceiveChannel[T]:
        """Another receive end; receivers share the values (each value goes to one of them)."""
        if self._closed:
            raise ClosedResourceError
        return ReceiveChannel(self._state)

    def _take(self) -> tuple[bool, Any]:
        """Under the mutex: a value from the buffer or a blocked sender."""
        s = self._state
        if s.buffer:
            value = s.buffer.popleft()
            # Room freed: move a blocked sender's value in.
            while s.senders:
                waiter, pending, _ = s.senders.popleft()
                if waiter.complete():
                    s.buffer.append(pending)
                    break
            return True, value
        while s.senders:
            waiter, pending, _ = s.senders.popleft()
            if waiter.complete():
                return True, pending
        return False, None

    def receive_nowait(self) -> T:
        """The next value, or :class:`WouldBlock` (:class:`EndOfChannel` once every sender closed)."""
        s = self._state
        with s.mutex:
            if self._closed:
                raise ClosedResourceError
            ok, value = self._take()
            if ok:
                return value
            if s.open_send == 0:
                raise EndOfChannel
            raise WouldBlock

    async def receive(self) -> T:
        """The next value; raises :class:`EndOfChannel` once every sender closed and it is drained."""
        await checkpoint()
        s = self._state
        with s.mutex:
            if self._closed:
                raise ClosedResourceError
            ok, value = self._take()
            if ok:
                return value
            if s.open_send == 0:
                raise EndOfChannel
            waiter = Waiter()
            record = (waiter, self)
            s.receivers.append(record)
        try:
            return await waiter
        except BaseException:
            with s.mutex:
                try:
                    s.receivers.remove(record)
                except ValueError:
                    pass
            raise

    def close(self) -> None:
        """Closes this end: tasks blocked receiving on it get :class:`ClosedResourceError`."""
        s = self._state
        with s.mutex:
            if self._closed:
                return
            self._closed = True
            s.open_receive -= 1
            mine = [r for r in s.receivers if r[1] is self]
            for record in mine:
                s.receivers.remove(record)
                record[0].fail(ClosedResourceError())
            if s.open_receive == 0:
                senders, s.senders = s.senders, deque()
                for waiter, _, _ in senders:
                    waiter.complete(_CLOSED)
                s.buffer.clear()

    async def aclose(self) -> None:
        """Closes this end (see :meth:`close`)."""
        self.close()
        await checkpoint()

    def __aiter__(self) -> ReceiveChannel[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.receive()
        except EndOfChannel:
            raise StopAsyncIteration from None

    def __enter__(self) -> ReceiveChannel[T]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> ReceiveChannel[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def statistics(self) -> dict[str, Any]:
        """Buffer use, open ends and waiting tasks of the channel."""
        return _statistics(self._state)


def _statistics(s: _State) -> dict[str, Any]:
    return {
        "current_buffer_used": len(s.buffer),
        "max_buffer_size": s.max_buffer,
        "open_send_channels": s.open_send,
        "open_receive_channels": s.open_receive,
        "tasks_waiting_send": len(s.senders),
        "tasks_waiting_receive": len(s.receivers),
    }


def channel(max_buffer: float = 0) -> tuple[SendChannel[Any], ReceiveChannel[Any]]:
    """Creates a channel holding up to ``max_buffer`` values (0: every send waits for a receiver).

    Example::

        send, receive = manyio.channel(16)
        async with manyio.TaskGroup() as tg:
            tg.start_soon(producer, send)
            async for item in receive:
                ...
    """
    if max_buffer != math.inf and (not isinstance(max_buffer, int) or max_buffer < 0):
        raise ValueError("max_buffer must be a non-negative int or math.inf")
    state = _State(max_buffer)
    return SendChannel(state), ReceiveChannel(state)
