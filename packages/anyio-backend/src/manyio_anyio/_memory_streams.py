"""Thread-safe AnyIO memory object streams, for tasks that run in parallel.

AnyIO implements memory object streams once for every backend, for one event-loop thread:
the buffer and the queues of waiting senders and receivers change without a lock, and a
task checks "nothing to receive" and then queues itself as a waiter in two steps. With
tasks on several worker threads (``parallel=True`` runs, AnyIO code in plain ``manyio.run``
tasks) a sender could slip between those steps and the receiver would sleep forever.

``install()`` gives each stream state a re-entrant lock and runs every state change under
it, including "check, then queue as a waiter" as one step. The behaviour is AnyIO's own;
with one thread (other backends in the same process) the lock is never contended.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from anyio import BrokenResourceError, ClosedResourceError, EndOfStream, Event, WouldBlock
from anyio.lowlevel import checkpoint
from anyio.streams import memory
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

_installed = False
_install_lock = threading.Lock()


def _state_lock(state: Any) -> threading.RLock:
    lock = state.__dict__.get("_manyio_lock")
    if lock is None:
        lock = state.__dict__.setdefault("_manyio_lock", threading.RLock())
    return lock


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def locked(self: Any, *args: Any) -> Any:
        with _state_lock(self._state):
            return method(self, *args)

    return locked


def install() -> None:
    """Makes AnyIO's memory object streams safe across threads (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        receive_nowait = MemoryObjectReceiveStream.receive_nowait
        send_nowait = MemoryObjectSendStream.send_nowait

        async def receive(self: MemoryObjectReceiveStream[Any]) -> Any:
            await checkpoint()
            lock = _state_lock(self._state)
            with lock:
                try:
                    return receive_nowait(self)
                except WouldBlock:
                    if self._waiters is None:
                        self._waiters = set()
                    event = Event()
                    self._waiters.add(event)
                    receiver = memory._MemoryObjectItemReceiver()
                    self._state.waiting_receivers[event] = receiver
            try:
                await event.wait()
            finally:
                with lock:
                    self._state.waiting_receivers.pop(event, None)
                    if self._waiters is not None:
                        self._waiters.discard(event)
            try:
                return receiver.item
            except AttributeError:
                if self._closed:
                    raise ClosedResourceError from None
                raise EndOfStream from None

        async def send(self: MemoryObjectSendStream[Any], item: Any) -> None:
            await checkpoint()
            lock = _state_lock(self._state)
            with lock:
                try:
                    send_nowait(self, item)
                    return
                except WouldBlock:
                    if self._waiters is None:
                        self._waiters = set()
                    event = Event()
                    self._waiters.add(event)
                    self._state.waiting_senders[event] = item
            try:
                await event.wait()
            finally:
                with lock:
                    not_consumed = self._state.waiting_senders.pop(event, _MISSING) is not _MISSING
                    withdrawn = self._closed and event in self._waiters
                    self._waiters.discard(event)
            if not_consumed:
                raise BrokenResourceError from None
            if withdrawn:
                raise ClosedResourceError from None

        for cls in (MemoryObjectReceiveStream, MemoryObjectSendStream):
            for name in ("close", "clone", "statistics"):
                setattr(cls, name, _locked(getattr(cls, name)))
        MemoryObjectReceiveStream.receive_nowait = _locked(receive_nowait)  # type: ignore[method-assign]
        MemoryObjectSendStream.send_nowait = _locked(send_nowait)  # type: ignore[method-assign]
        MemoryObjectReceiveStream.receive = receive  # type: ignore[method-assign]
        MemoryObjectSendStream.send = send  # type: ignore[method-assign]
        _installed = True


_MISSING = object()
