"""``open_signal_receiver``: receive Unix signals as an async iterator.

Python runs signal handlers on the main thread only. While a manyio program runs, the main
thread waits inside ``manyio.run`` and wakes every few milliseconds to run them; the handlers
installed here just queue the signal number for the receiving task. Handlers are installed
and restored on the main thread, whichever worker the task runs on.

Example::

    with manyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            print("got", signal.Signals(signum).name)
            break
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from . import _core
from ._core import Event, checkpoint

__all__ = ["SignalReceiver", "open_signal_receiver"]

T = TypeVar("T")


class SignalReceiver:
    """Yields signal numbers as they arrive. A signal that arrives again before it was
    received is delivered once (like the kernel's own pending set)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._pending: dict[int, None] = {}
        self._event = Event()

    def _deliver(self, signum: int, frame: Any = None) -> None:
        with self._mutex:
            self._pending[signum] = None
            self._event.set()

    def __aiter__(self) -> SignalReceiver:
        return self

    async def __anext__(self) -> int:
        while True:
            with self._mutex:
                if self._pending:
                    signum = next(iter(self._pending))
                    del self._pending[signum]
                    if not self._pending:
                        self._event.clear()
                    break
            await self._event.wait()
        await checkpoint()
        return signum


def _on_main_thread(fn: Callable[[], T]) -> T:
    if threading.current_thread() is threading.main_thread():
        return fn()
    return _core.call_on_main_thread(fn)


@contextmanager
def open_signal_receiver(*signals: int) -> Iterator[SignalReceiver]:
    """Routes ``signals`` to the returned receiver for the duration of the ``with`` block,
    then restores the previous handlers. Needs the program to run under ``manyio.run`` (or
    ``Runtime.block_on``) on the main thread.
    """
    if not signals:
        raise TypeError("open_signal_receiver() needs at least one signal")
    receiver = SignalReceiver()

    def install() -> dict[int, Any]:
        previous: dict[int, Any] = {}
        try:
            for s in signals:
                previous[s] = signal.signal(s, receiver._deliver)
        except BaseException:
            for s, h in previous.items():
                signal.signal(s, h)
            raise
        return previous

    previous = _on_main_thread(install)
    try:
        yield receiver
    finally:

        def restore() -> None:
            for s, h in previous.items():
                signal.signal(s, h)

        _on_main_thread(restore)
