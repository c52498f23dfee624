"""What ``python -m manyio ps/pstree`` reads inside the process it inspects.

The CLI cannot read another process's tasks itself, so it asks the process: it uses
``sys.remote_exec`` (PEP 768) to make the target run a small script, which calls
:func:`request_snapshot`. That script runs on the target's *main thread* at its next safe
point. A manyio program's main thread usually sits in ``Runtime.block_on``, which wakes every
few milliseconds to call ``PyErr_CheckSignals``, and that call also runs pending
remote-debugger scripts, so the request is served within a few milliseconds.

The main thread is not a worker, so it cannot call :func:`manyio.all_tasks`. Instead it spawns
a short collector task on each live runtime; the collector lists the runtime's tasks from a
worker and the last collector to finish writes the JSON answer. The main thread never blocks
waiting for the workers, so a busy runtime delays the answer (the CLI times out) instead of
stalling the program.

Runtimes are found through a registry of the live :class:`manyio.Runtime` objects, kept here
so that this module is always loaded once a runtime exists: the script never has to import
anything into the target.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import sys
import threading
import traceback
import weakref
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypedDict

from . import _core

if TYPE_CHECKING:
    from ._run import Runtime

__all__ = ["FORMAT_VERSION", "live_runtimes", "register", "request_snapshot", "unregister"]

FORMAT_VERSION = 1
"""Bumped when the JSON answer changes shape; the CLI checks it."""

# A file the CLI creates when it stops waiting: whoever writes later removes the directory.
ABANDONED = "abandoned"
COLLECTOR_NAME = "manyio-ps-collector"

# Frames in here are manyio's own (TaskGroup.__aexit__...): ps points at the caller's instead.
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Serial number (creation order, and the number ps shows) -> the Runtime, weakly. No Python lock
# guards it: a Ctrl-C that lands just as `with lock:` has acquired its lock, before the block
# starts, leaves the lock held for good (CPython gh-148874, fixed in 3.15), and the next
# manyio.run() would hang in register(). Dict operations and itertools.count are atomic in the
# free-threaded build.
_registry: dict[int, weakref.ref[Runtime]] = {}
_serials = itertools.count()


class FrameInfo(TypedDict):
    qualname: str
    file: str
    line: int | None
    internal: bool


class TaskInfo(TypedDict):
    id: int
    name: str
    parent_id: int | None
    state: str
    coroutine: str | None
    stack: list[FrameInfo]
    awaiting: str | None


class RuntimeInfo(TypedDict):
    index: int
    threads: int
    tasks: list[TaskInfo]


def register(runtime: Runtime) -> int:
    """Lists ``runtime`` until :func:`unregister` or its collection; returns its serial number."""
    serial = next(_serials)
    _registry[serial] = weakref.ref(runtime, lambda _ref: _registry.pop(serial, None))
    return serial


def unregister(serial: int) -> None:
    _registry.pop(serial, None)


def live_runtimes() -> list[tuple[int, Runtime]]:
    """The runtimes of this process that are not closed, with their serial numbers, oldest first."""
    listed = sorted(_registry.copy().items())
    return [(serial, rt) for serial, ref in listed if (rt := ref()) is not None and not rt.closed]


def _coroutine_frames(coro: Any) -> tuple[list[FrameInfo], str | None]:
    """The await chain of a suspended coroutine, outermost first, and what its innermost
    frame awaits when that is not a coroutine (a manyio ``Waiter``, a future...)."""
    frames: list[FrameInfo] = []
    seen: set[int] = set()
    node = coro
    while node is not None and id(node) not in seen:
        seen.add(id(node))
        frame = getattr(node, "cr_frame", None) or getattr(node, "gi_frame", None)
        if frame is None:
            inner = getattr(node, "cr_await", None)
            if inner is not None:
                # A wrapper that says what it awaits (the REPL's statements do).
                node = inner
                continue
            # Not a coroutine or generator (or a finished one): name what is awaited.
            return frames, type(node).__qualname__ if node is not coro else None
        code = frame.f_code
        frames.append(
            {
                "qualname": code.co_qualname,
                "file": code.co_filename,
                "line": frame.f_lineno,
                "internal": code.co_filename.startswith(_PACKAGE_DIR),
            }
        )
        node = getattr(node, "cr_await", None) or getattr(node, "gi_yieldfrom", None)
    return frames, None


def _describe(task: _core.Task[Any]) -> TaskInfo:
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", None) if coro is not None else None
    stack: list[FrameInfo] = []
    awaiting: str | None = None
    if task.done():
        state = "done"
    elif getattr(coro, "cr_running", False) or getattr(coro, "gi_running", False):
        # Its frames are changing on another worker right now: report no stack.
        state = "running"
    else:
        state = "blocked" if task.blocked() else "ready"
        # A best-effort snapshot: a worker may resume the task while we read its frames,
        # in which case the lines shown are a moment old.
        stack, awaiting = _coroutine_frames(coro)
    return {
        "id": task.id,
        "name": task.name,
        "parent_id": task.parent_id,
        "state": state,
        "coroutine": qualname,
        "stack": stack,
        "awaiting": awaiting,
    }


def _write_json(directory: str, payload: dict[str, Any]) -> None:
    if os.path.exists(os.path.join(directory, ABANDONED)):
        shutil.rmtree(directory, ignore_errors=True)
        return
    tmp = os.path.join(directory, f"answer.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(payload, f)
    # Atomic: the CLI never reads a half-written answer.
    os.replace(tmp, os.path.join(directory, "answer.json"))


class _Answer:
    """Gathers one :class:`RuntimeInfo` per runtime; the last one in writes the file."""

    def __init__(self, directory: str, expected: int) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._expected = expected
        self._runtimes: list[RuntimeInfo] = []
        self._errors: list[str] = []

    def add(self, info: RuntimeInfo | None, error: str | None = None) -> None:
        with self._lock:
            if info is not None:
                self._runtimes.append(info)
            if error is not None:
                self._errors.append(error)
            self._expected -= 1
            if self._expected:
                return
        self._runtimes.sort(key=lambda r: r["index"])
        _write_json(
            self._directory,
            {
                "version": FORMAT_VERSION,
                "pid": os.getpid(),
                "argv": sys.argv,
                "cwd": os.getcwd(),
                "runtimes": self._runtimes,
                "errors": self._errors,
            },
        )

    async def collect(self, index: int, threads: int) -> None:
        try:
            me = _core.current_task().id
            tasks = [_describe(t) for t in _core.all_tasks() if t.id != me]
        except BaseException:
            self.add(None, traceback.format_exc())
            raise
        self.add({"index": index, "threads": threads, "tasks": tasks})


def request_snapshot(directory: str) -> None:
    """Writes ``directory/answer.json`` with the tasks of every live runtime (soon, not now).

    Called by the script that ``python -m manyio ps`` injects; it must never raise.
    """
    try:
        runtimes = live_runtimes()
        if not runtimes:
            _write_json(directory, {"version": FORMAT_VERSION, "error": "no manyio runtime is running"})
            return
        answer = _Answer(directory, len(runtimes))
        for index, rt in runtimes:
            coro: Coroutine[Any, Any, None] = answer.collect(index, rt.threads)
            try:
                rt.spawn(coro, name=COLLECTOR_NAME)
            except RuntimeError as exc:
                # Closed between the listing and now.
                coro.close()
                answer.add(None, f"runtime {index}: {exc}")
    except Exception:
        _write_json(directory, {"version": FORMAT_VERSION, "error": traceback.format_exc()})
