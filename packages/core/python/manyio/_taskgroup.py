"""Structured concurrency: :class:`TaskGroup`, with trio's semantics.

Children run under the group's cancel scope. The first child to fail records its error and
cancels the scope, which cancels the siblings and the body of the ``async with``. Leaving the
block waits for every child; errors come out together as an :class:`ExceptionGroup`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import Any, Generic, TypeVar

from ._core import CancelScope, Event, Task, TaskGroupCore, cancel_shielded_checkpoint, checkpoint
from ._exceptions import Cancelled

__all__ = ["TaskGroup", "TaskStatus"]

T = TypeVar("T")


class TaskStatus(Generic[T]):
    """Passed as ``task_status`` to functions started with :meth:`TaskGroup.start`."""

    def __init__(self) -> None:
        self._event = Event()
        self._started = False
        self._value: Any = None
        self._error: BaseException | None = None
        self._exited = False

    def started(self, value: T | None = None) -> None:
        """Tells :meth:`TaskGroup.start` that the task is ready; ``value`` is returned from it."""
        if self._started:
            raise RuntimeError("task_status.started() was already called")
        self._started = True
        self._value = value
        self._event.set()


class TaskGroup:
    """A nursery: ``async with manyio.TaskGroup() as tg: tg.start_soon(fn, arg)``.

    ``tg.cancel_scope`` is the group's :class:`CancelScope`: cancelling it cancels every child
    and the body of the ``async with``.

    Example::

        async with manyio.TaskGroup() as tg:
            for url in urls:
                tg.start_soon(fetch, url)
        # every fetch has finished here
    """

    def __init__(self) -> None:
        self.cancel_scope = CancelScope()
        self._core: TaskGroupCore | None = None
        self._closed = False
        self._had_children = False

    async def __aenter__(self) -> TaskGroup:
        if self._core is not None:
            raise RuntimeError("a TaskGroup can only be entered once")
        self.cancel_scope.__enter__()
        self._core = TaskGroupCore(self.cancel_scope)
        return self

    def _live_core(self) -> TaskGroupCore:
        if self._core is None:
            raise RuntimeError("enter the TaskGroup with 'async with' before starting tasks")
        if self._closed:
            raise RuntimeError("this TaskGroup has finished; it cannot start new tasks")
        self._had_children = True
        return self._core

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> Task[T]:
        """Starts ``coro`` in the group and returns its :class:`Task`."""
        return self._live_core().spawn(coro, name)

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> None:
        """Starts ``fn(*args)`` in the group."""
        core = self._live_core()
        core.spawn(fn(*args), name or getattr(fn, "__qualname__", None))

    async def start(self, fn: Callable[..., Awaitable[Any]], *args: Any, name: str | None = None) -> Any:
        """Starts ``fn(*args, task_status=...)`` and waits until it calls ``task_status.started()``.

        Returns the value passed to ``started``. If the task fails before that, its exception is
        raised here instead of going to the group.
        """
        core = self._live_core()
        status: TaskStatus[Any] = TaskStatus()
        task = core.spawn(_run_until_started(fn, args, status), name or getattr(fn, "__qualname__", None))
        try:
            await status._event.wait()
        except BaseException:
            task.cancel()
            raise
        if status._error is not None:
            raise status._error
        if not status._started:
            raise RuntimeError(f"{fn!r} returned without calling task_status.started()")
        return status._value

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        core = self._core
        assert core is not None
        pending_cancel: BaseException | None = None
        if isinstance(exc, Cancelled):
            pending_cancel = exc
        elif exc is not None:
            core.add_error(exc)
        # Wait for the children. If we are cancelled while waiting, the children are being
        # cancelled too; keep waiting (shielded) so no child outlives the block.
        while core.pending():
            try:
                if pending_cancel is None:
                    await core.wait()
                else:
                    with CancelScope(shield=True):
                        await core.wait()
            except Cancelled as c:
                pending_cancel = c
                self.cancel_scope.cancel()
        self._closed = True
        errors = core.take_errors()
        if pending_cancel is None and not errors:
            if self._had_children:
                # Children that were cancelled would, in trio, raise their Cancelled out of
                # the block: deliver the cancellation here.
                try:
                    await checkpoint()
                except Cancelled as c:
                    pending_cancel = c
            else:
                # As in trio, an empty group lets other tasks run on the way out without
                # delivering a cancellation (the next checkpoint will).
                await cancel_shielded_checkpoint()
        if errors:
            to_raise: BaseException | None = BaseExceptionGroup("unhandled errors in a TaskGroup", errors)
        else:
            to_raise = pending_cancel
        try:
            swallowed = self.cancel_scope.__exit__(
                type(to_raise) if to_raise else None, to_raise, to_raise.__traceback__ if to_raise else None
            )
        except BaseException as replacement:
            # The scope kept what was not its own cancellation.
            raise replacement from None
        try:
            if to_raise is None or swallowed:
                return exc is not None
            if to_raise is exc:
                return False
            # The group is new, not caused by whatever was being handled around the block.
            raise to_raise from None
        finally:
            # This frame ends up in the traceback: keep it from holding the errors alive.
            del to_raise, exc, tb, errors, pending_cancel


async def _run_until_started(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], status: TaskStatus[Any]
) -> Any:
    try:
        return await fn(*args, task_status=status)
    except BaseException as e:
        if status._started:
            raise
        # Before started(), failures belong to the caller of start(), not to the group.
        status._error = e
        return None
    finally:
        status._exited = True
        if not status._started:
            status._event.set()
