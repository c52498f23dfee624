"""Cancel scopes, task groups and task introspection for AnyIO, on manyio's own.

manyio's cancel scopes and task groups already have trio's semantics (level-triggered
cancellation, shields, deadlines, children awaited, errors raised as an exception group), so
these classes mostly translate names and error messages to AnyIO's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from contextvars import Context
from types import TracebackType
from typing import Any, Literal

import manyio
from anyio import TaskInfo
from anyio._core._tasks import CancelScope as BaseCancelScope
from anyio._core._tasks import TaskHandle
from anyio.abc import TaskGroup as BaseTaskGroup
from anyio.abc import TaskStatus as BaseTaskStatus
from anyio.abc._tasks import call_for_coroutine, get_callable_name, get_coro_name
from manyio import _core


class CancelScope(BaseCancelScope):
    """AnyIO's view of a :class:`manyio.CancelScope`."""

    __slots__ = ("_scope",)

    def __new__(cls, original: manyio.CancelScope | None = None, **kwargs: Any) -> CancelScope:
        return object.__new__(cls)

    def __init__(
        self, original: manyio.CancelScope | None = None, *, deadline: float = math.inf, shield: bool = False
    ) -> None:
        if original is None:
            _check_deadline(deadline)
            original = manyio.CancelScope(deadline=deadline, shield=shield)
        self._scope = original

    def __enter__(self) -> CancelScope:
        self._scope.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        return self._scope.__exit__(exc_type, exc, tb)

    def cancel(self, reason: str | None = None) -> None:
        # The message of the Cancelled raised inside says who cancelled, and why.
        message = f"Cancelled via cancel scope {id(self):x}"
        try:
            message += f" by task {_core.current_task().name!r}"
        except RuntimeError:
            pass  # cancelled from outside the runtime (another thread)
        if reason:
            message += f"; reason: {reason}"
        self._scope.cancel(message)

    @property
    def deadline(self) -> float:
        return self._scope.deadline

    @deadline.setter
    def deadline(self, value: float) -> None:
        _check_deadline(value)
        self._scope.deadline = value

    @property
    def cancel_called(self) -> bool:
        return self._scope.cancel_called

    @property
    def cancelled_caught(self) -> bool:
        return self._scope.cancelled_caught

    @property
    def shield(self) -> bool:
        return self._scope.shield

    @shield.setter
    def shield(self, value: bool) -> None:
        self._scope.shield = value


def _check_deadline(value: float) -> None:
    if math.isnan(value):
        raise ValueError("deadline must not be NaN")


class _TaskStatus(BaseTaskStatus[Any]):
    """What :meth:`TaskGroup.start` passes as ``task_status``."""

    def __init__(self) -> None:
        self._event = manyio.Event()
        self._started = False
        self._value: Any = None
        self._error: BaseException | None = None
        # False while a sync function is making the coroutine: a started() there is only
        # reported once the function returned, since it may still fail.
        self._body_running = False

    def started(self, value: Any = None) -> None:
        if self._started:
            raise RuntimeError("called 'started' twice on the same task status")
        self._started = True
        self._value = value
        if self._body_running:
            self._event.set()


class TaskGroup(BaseTaskGroup):
    def __init__(self) -> None:
        self._group = manyio.TaskGroup()
        self._entered = False
        self._active = False
        self.cancel_scope = CancelScope(self._group.cancel_scope)

    async def __aenter__(self) -> TaskGroup:
        if self._entered:
            raise RuntimeError("TaskGroup cannot be entered more than once")
        self._entered = True
        await self._group.__aenter__()
        self._active = True
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return await self._group.__aexit__(exc_type, exc, tb)
        finally:
            self._active = False
            del exc, tb

    def _check_active(self, coro: Coroutine[Any, Any, Any] | None = None) -> None:
        if not self._active:
            if coro is not None:
                coro.close()
            raise RuntimeError("This task group is not active; no new tasks can be started.")

    def create_task(
        self, coro: Coroutine[Any, Any, Any], *, name: object = None, context: Context | None = None
    ) -> TaskHandle[Any]:
        if not isinstance(coro, Coroutine):
            raise TypeError(f"expected a coroutine, got {coro.__class__.__qualname__}")
        self._check_active(coro)
        handle: TaskHandle[Any] = TaskHandle(coro, get_coro_name(coro, name))
        if context is not None:
            context.run(self._group.spawn, handle._run_coro(), name=handle.name)
        else:
            self._group.spawn(handle._run_coro(), name=handle.name)
        return handle

    async def start(
        self,
        func: Callable[..., Coroutine[Any, Any, Any]],
        *args: object,
        name: object = None,
        return_handle: Literal[False, True] = False,
    ) -> Any:
        self._check_active()
        final_name = get_callable_name(func, name)
        status = _TaskStatus()
        holder: list[TaskHandle[Any]] = []
        task = self._group.spawn(_run_until_started(func, args, status, final_name, holder), name=final_name)
        try:
            await status._event.wait()
        except BaseException:
            task.cancel()
            raise
        if status._error is not None:
            try:
                raise status._error
            finally:
                status._error = None
        if not status._started:
            raise RuntimeError("Child exited without calling task_status.started()")
        if return_handle:
            handle = holder[0]
            handle._start_value = status._value
            return handle
        return status._value


async def _run_until_started(
    func: Callable[..., Coroutine[Any, Any, Any]],
    args: tuple[object, ...],
    status: _TaskStatus,
    name: str,
    holder: list[TaskHandle[Any]],
) -> None:
    try:
        try:
            coro = call_for_coroutine(func, args, task_status=status)
        except BaseException as exc:
            status._started = False
            status._error = exc
            return
        status._body_running = True
        if status._started:
            status._event.set()
        handle: TaskHandle[Any] = TaskHandle(coro, name)
        holder.append(handle)
        await handle._run_coro()
    except BaseException as exc:
        if status._started:
            raise
        # Before started(), a failure belongs to the caller of start(), not to the group.
        status._error = exc
    finally:
        if not status._started:
            status._event.set()


class ManyioTaskInfo(TaskInfo):
    """AnyIO's description of a manyio task."""

    __slots__ = ("_task",)

    def __init__(self, task: manyio.Task[Any]) -> None:
        super().__init__(task.id, task.parent_id, task.name, task.get_coro())
        self._task = task

    def has_pending_cancellation(self) -> bool:
        return self._task.cancellation_pending()


def current_task_info() -> ManyioTaskInfo:
    return ManyioTaskInfo(_core.current_task())
