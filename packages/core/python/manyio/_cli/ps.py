"""``python -m manyio ps PID`` and ``pstree PID``: the tasks of another, running, process.

How the data is obtained: ``sys.remote_exec`` (PEP 768) makes the target run a script we
write to a private temporary directory. The target runs it on its main thread at the next
safe point (for a manyio program: within ~20 ms, from ``block_on``'s periodic signal check),
and :mod:`manyio._introspect` there writes ``answer.json`` into the same directory. We poll for
that file until ``timeout``. See ``_introspect`` for the target's side.

Failures are reported as one line on stderr with exit status 1: no such process, not
allowed to inspect it (ptrace rules), not a compatible Python, manyio not loaded, no runtime
running, or no answer in time.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

from .._introspect import ABANDONED, FORMAT_VERSION

__all__ = ["InspectError", "format_table", "format_tree", "inspect_process", "snapshot"]

ANSWER = "answer.json"
POLL_INTERVAL = 0.01

# Runs inside the target. Only touches what is already loaded: importing manyio into a
# process that does not use it would be a side effect, and would answer nothing anyway.
_SCRIPT = """\
import sys
_directory = {directory!r}
_introspect = sys.modules.get("manyio._introspect")
if _introspect is not None:
    _introspect.request_snapshot(_directory)
else:
    import json, os, shutil
    if os.path.exists(os.path.join(_directory, {abandoned!r})):
        shutil.rmtree(_directory, ignore_errors=True)
    else:
        with open(os.path.join(_directory, "answer.json.tmp"), "w") as _f:
            json.dump({{"error": "manyio is not loaded in this process"}}, _f)
        os.replace(os.path.join(_directory, "answer.json.tmp"), os.path.join(_directory, {answer!r}))
"""


class InspectError(Exception):
    """Why a process could not be inspected; printed as one line."""


def _check_process(pid: int) -> None:
    if pid <= 0:
        raise InspectError(f"invalid process id {pid}")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        raise InspectError(f"no process with PID {pid}")
    except PermissionError:
        # It exists but belongs to someone else; remote_exec will fail the same way.
        raise InspectError(_permission_message(pid))


def _ptrace_scope() -> str | None:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return f.read().strip()
    except OSError:
        return None


def _permission_message(pid: int) -> str:
    message = (
        f"permission denied to inspect process {pid}: reading and writing another process's "
        "memory needs the same rights as a debugger (same user, or root / CAP_SYS_PTRACE)"
    )
    scope = _ptrace_scope()
    if scope is not None and scope != "0":
        message += (
            f"; /proc/sys/kernel/yama/ptrace_scope is {scope}, so only a parent process or root "
            "may do that (run with sudo, or set it to 0)"
        )
    return message


def _target_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _send(pid: int, script: str) -> None:
    remote_exec = getattr(sys, "remote_exec", None)
    if remote_exec is None:
        raise InspectError("this Python has no sys.remote_exec (Python 3.14+ is needed)")
    try:
        remote_exec(pid, script)
    except PermissionError:
        raise InspectError(_permission_message(pid))
    except ProcessLookupError:
        raise InspectError(f"no process with PID {pid}")
    except (OSError, RuntimeError, ValueError) as exc:
        raise InspectError(
            f"cannot inject into process {pid} ({exc}); it must be a running Python "
            f"{sys.version_info.major}.{sys.version_info.minor} with remote debugging enabled"
        )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return True


def _wait_for_answer(pid: int, directory: str, timeout: float) -> dict[str, Any]:
    path = os.path.join(directory, ANSWER)
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            pass
        if not _alive(pid):
            raise InspectError(f"process {pid} exited before answering")
        if time.monotonic() >= deadline:
            raise InspectError(
                f"process {pid} did not answer within {timeout:g} s. The request runs on its main "
                "thread: that thread must be running Python code or waiting in manyio.run() / "
                "Runtime.block_on() (a main thread blocked in other native code, such as input() or "
                "a long time.sleep(), never picks it up)"
            )
        time.sleep(POLL_INTERVAL)


def snapshot(pid: int, timeout: float = 5.0) -> dict[str, Any]:
    """The task snapshot of process ``pid``, as written by :mod:`manyio._introspect`."""
    _check_process(pid)
    directory = tempfile.mkdtemp(prefix="manyio-ps-")
    answered = False
    try:
        uid = _target_uid(pid)
        if uid is not None and uid != os.geteuid() and os.geteuid() == 0:
            # Root inspecting another user's process: that process must write here.
            os.chown(directory, uid, -1)
        script = os.path.join(directory, "request.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(_SCRIPT.format(directory=directory, abandoned=ABANDONED, answer=ANSWER))
        os.chmod(script, 0o644)
        _send(pid, script)
        try:
            answer = _wait_for_answer(pid, directory, timeout)
        except InspectError:
            # The target may still run the request later: tell it to clean up after itself.
            open(os.path.join(directory, ABANDONED), "w").close()
            if not os.path.exists(os.path.join(directory, ANSWER)):
                raise
            with open(os.path.join(directory, ANSWER), encoding="utf-8") as f:
                answer = json.load(f)
        answered = True
    finally:
        if answered or not os.path.exists(os.path.join(directory, ABANDONED)):
            shutil.rmtree(directory, ignore_errors=True)
    if "error" in answer:
        raise InspectError(f"process {pid}: {answer['error'].rstrip()}")
    if answer.get("version") != FORMAT_VERSION:
        raise InspectError(
            f"process {pid} runs another manyio version (snapshot format {answer.get('version')})"
        )
    return answer


# ===== formatting =====


def _short_path(path: str, cwd: str) -> str:
    if cwd and path.startswith(cwd.rstrip(os.sep) + os.sep):
        return path[len(cwd.rstrip(os.sep)) + 1 :]
    return path


def _where(task: dict[str, Any], cwd: str) -> str:
    """Where the task waits: its innermost frame outside manyio, and what that frame awaits."""
    stack: list[dict[str, Any]] = task["stack"]
    if not stack:
        return "-" if task["state"] != "running" else "(running)"
    user = [i for i, frame in enumerate(stack) if not frame["internal"]]
    at = user[-1] if user else len(stack) - 1
    frame = stack[at]
    text = f"{frame['qualname']} at {_short_path(frame['file'], cwd)}:{frame['line']}"
    awaited = stack[at + 1]["qualname"] if at + 1 < len(stack) else task["awaiting"]
    return f"{text}, awaiting {awaited}" if awaited else text


def _rows(answer: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for runtime in answer["runtimes"]:
        for task in runtime["tasks"]:
            yield runtime, task


def format_table(answer: dict[str, Any]) -> str:
    cwd = answer.get("cwd", "")
    header = ("RUNTIME", "TASK ID", "PARENT", "STATE", "NAME", "COROUTINE", "SUSPENDED AT")
    rows = [
        (
            f"#{rt['index']}",
            str(task["id"]),
            "-" if task["parent_id"] is None else str(task["parent_id"]),
            task["state"],
            task["name"],
            task["coroutine"] or "-",
            _where(task, cwd),
        )
        for rt, task in _rows(answer)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = [_summary(answer)]
    for row in [header, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def _summary(answer: dict[str, Any]) -> str:
    runtimes = answer["runtimes"]
    tasks = sum(len(rt["tasks"]) for rt in runtimes)
    argv = " ".join(answer.get("argv") or [])
    described = ", ".join(f"#{rt['index']} with {rt['threads']} worker threads" for rt in runtimes)
    return (
        f"process {answer['pid']} ({argv}): {tasks} task{'s' * (tasks != 1)} in "
        f"{len(runtimes)} runtime{'s' * (len(runtimes) != 1)} ({described})"
    )


def format_tree(answer: dict[str, Any]) -> str:
    cwd = answer.get("cwd", "")
    lines = [_summary(answer)]
    for rt in answer["runtimes"]:
        lines.append(f"runtime #{rt['index']}")
        ids = {task["id"] for task in rt["tasks"]}
        children: dict[int | None, list[dict[str, Any]]] = {}
        for task in rt["tasks"]:
            # A task whose parent has finished goes at the top, marked as such.
            parent = task["parent_id"] if task["parent_id"] in ids else None
            children.setdefault(parent, []).append(task)
        _tree_lines(children, None, "", cwd, lines)
    return "\n".join(lines)


def _tree_lines(
    children: dict[int | None, list[dict[str, Any]]],
    parent: int | None,
    prefix: str,
    cwd: str,
    out: list[str],
) -> None:
    kids = children.get(parent, [])
    for i, task in enumerate(kids):
        last = i == len(kids) - 1
        orphan = (
            f" (parent {task['parent_id']} finished)"
            if parent is None and task["parent_id"] is not None
            else ""
        )
        out.append(
            f"{prefix}{'└── ' if last else '├── '}{task['name']} [id {task['id']}, {task['state']}]"
            f"{orphan} {task['coroutine'] or '-'}: {_where(task, cwd)}"
        )
        _tree_lines(children, task["id"], prefix + ("    " if last else "│   "), cwd, out)


def inspect_process(pid: int, *, tree: bool, timeout: float = 5.0, as_json: bool = False) -> int:
    """Prints the tasks of ``pid`` as a table (or a tree); returns the exit status."""
    command = "pstree" if tree else "ps"
    try:
        answer = snapshot(pid, timeout)
    except InspectError as exc:
        print(f"python -m manyio {command}: error: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(answer, indent=2))
    else:
        print(format_tree(answer) if tree else format_table(answer))
    for error in answer.get("errors", []):
        print(f"python -m manyio {command}: warning: {error.rstrip()}", file=sys.stderr)
    return 0
