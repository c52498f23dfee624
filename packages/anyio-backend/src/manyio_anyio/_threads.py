"""Worker threads (``anyio.to_thread``) and calls back into the runtime (``anyio.from_thread``)."""

from __future__ import annotations

import concurrent.futures
import contextvars
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import manyio
import sniffio
from anyio import RunFinishedError
from anyio._core._eventloop import claim_worker_thread, threadlocals
from manyio import _core

from ._token import RunToken, current_token

T = TypeVar("T")


class _ThreadState(threading.local):
    # The cancel status of the task waiting for this worker thread (for check_cancelled).
    host: _core.CancelStatus | None = None
    # Where calls back into the runtime run: inside the host's cancel scopes while it waits
    # for the thread; not when it may abandon the thread (the calls then outlive its scopes).
    within: _core.CancelStatus | None = None


_thread_state = _ThreadState()


async def run_sync_in_worker_thread(
    backend: type, func: Callable[..., T], args: tuple[Any, ...], abandon_on_cancel: bool, limiter: Any
) -> T:
    await _core.checkpoint()
    token = current_token()
    host = _core.current_cancel_status()
    if limiter is None:
        limiter = token.default_thread_limiter()

    def in_thread() -> T:
        # The thread runs in a copy of the task's context: it is not in the event loop.
        sniffio.current_async_library_cvar.set(None)
        _thread_state.host = host
        _thread_state.within = None if abandon_on_cancel else host
        try:
            with claim_worker_thread(backend, token):
                return func(*args)
        finally:
            _thread_state.host = _thread_state.within = None

    return await manyio.to_thread(in_thread, limiter=limiter, abandon_on_cancel=abandon_on_cancel)


def check_cancelled() -> None:
    host = _thread_state.host
    if host is None:
        # Not in a worker thread: in a task, this is manyio's own check.
        _core.check_cancelled()
        return
    if host.cancelled():
        raise manyio.Cancelled


def run_sync_from_thread(func: Callable[..., T], args: tuple[Any, ...], token: RunToken | None) -> T:
    async def call() -> T:
        return func(*args)

    return _call_and_wait(call, token)


def run_async_from_thread(
    func: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...], token: RunToken | None
) -> T:
    async def call() -> T:
        return await func(*args)

    return _call_and_wait(call, token)


def _call_and_wait(call: Callable[[], Coroutine[Any, Any, T]], token: RunToken | None) -> T:
    """Runs ``call()`` as a task of the token's runtime and blocks this thread for its result."""
    token, within = _resolve(token)
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    async def deliver() -> None:
        try:
            result = await call()
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    _spawn_or_finished(token, deliver(), within)
    return future.result()


def run_sync_soon(func: Callable[..., object], args: tuple[Any, ...], token: RunToken) -> None:
    context = contextvars.copy_context()

    async def call() -> None:
        context.run(func, *args)

    _spawn(token, call())


def _resolve(token: RunToken | None) -> tuple[RunToken, _core.CancelStatus | None]:
    if token is None:
        # AnyIO passes no token from its own worker threads: the thread knows its loop, and
        # the call runs inside the cancel scopes of the task that started the thread.
        token = threadlocals.current_token.native_token
        assert isinstance(token, RunToken)
        return token, _thread_state.within
    assert isinstance(token, RunToken)
    return token, None


def _spawn_or_finished(
    token: RunToken, coro: Coroutine[Any, Any, None], within: _core.CancelStatus | None
) -> None:
    if token.runs_current_task():
        # Blocking a worker until a task (maybe queued behind us on it) finishes could hang.
        coro.close()
        raise RuntimeError("This function cannot be called from a task of the event loop; await instead")
    _spawn(token, coro, within)


def _spawn(
    token: RunToken, coro: Coroutine[Any, Any, None], within: _core.CancelStatus | None = None
) -> None:
    try:
        token.spawn(coro, within=within)
    except RuntimeError as exc:
        raise RunFinishedError from exc
