"""``python -m manyio``: the REPL, ``run MODULE:FUNCTION`` and ``ps``/``pstree`` on a live process.

Everything runs in child processes, as a user would: the REPL reads a piped stdin, and
``ps`` inspects a separate manyio program through ``sys.remote_exec``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TIMEOUT = 30


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONSTARTUP", None)
    # Plain tracebacks, no escape codes to match around.
    env.update(PYTHON_COLORS="0", NO_COLOR="1", PYTHONUNBUFFERED="1")
    return env


def _manyio(
    *args: str, cwd: Path | None = None, stdin: str | None = None, tmpdir: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = _env()
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    return subprocess.run(
        [sys.executable, "-m", "manyio", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=TIMEOUT,
    )


# ===== REPL =====


def test_repl_runs_top_level_await_on_the_runtime_and_keeps_variables() -> None:
    session = textwrap.dedent(
        """\
        x = await manyio.sleep(0) or 41
        print("X", x + 1)
        async def double(v):
            await manyio.sleep(0.01)
            return v * 2

        t = manyio.spawn(double(21), name="bg")
        print("SPAWNED", t.name)
        print("AWAITED", await t)
        print("IN_TASK", manyio.current_task() is not None)
        import threading
        print("ON_MAIN", threading.current_thread() is threading.main_thread())
        await manyio.sleep(0) or 6 * 7
        """
    )
    proc = _manyio("repl", "--threads", "2", stdin=session)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "X 42" in out
    assert "SPAWNED bg" in out
    assert "AWAITED 42" in out
    # Every statement runs as a task on a worker, also when it does not await.
    assert "IN_TASK True" in out
    assert "ON_MAIN False" in out
    # Expression statements are echoed, also when they await.
    assert "42\n" in out.replace(">>> ", "").replace("... ", "")
    assert "2 worker threads" in proc.stderr


def test_repl_reports_errors_and_carries_on() -> None:
    session = textwrap.dedent(
        """\
        async def boom():
            await manyio.sleep(0)
            raise ValueError("boom")

        await boom()
        print("STILL HERE")
        undefined_name
        print("AND HERE")
        """
    )
    proc = _manyio(stdin=session)
    assert proc.returncode == 0, proc.stderr
    assert "ValueError: boom" in proc.stderr
    assert "NameError" in proc.stderr
    assert "STILL HERE" in proc.stdout
    assert "AND HERE" in proc.stdout


def test_repl_exit_status_comes_from_exit() -> None:
    proc = _manyio(stdin="await manyio.sleep(0)\nraise SystemExit(7)\nprint('NOT REACHED')\n")
    assert proc.returncode == 7
    assert "NOT REACHED" not in proc.stdout


def test_repl_ctrl_c_cancels_the_statement_not_the_repl() -> None:
    script = (
        "try:\n"
        "    print('SLEEPING', flush=True); await manyio.sleep(60)\n"
        "finally:\n"
        "    print('FINALLY', flush=True)\n"
        "\n"
        "print('AFTER', flush=True)\n"
    )
    with _repl(script) as (proc, stdin, stdout_pipe):
        _read_until(stdout_pipe, "SLEEPING")
        proc.send_signal(signal.SIGINT)
        stdin.close()
        stdout, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    assert "KeyboardInterrupt" in stderr
    assert "FINALLY" in stdout
    assert "AFTER" in stdout


def test_repl_ctrl_c_interrupts_statements_that_never_reach_a_checkpoint() -> None:
    script = (
        # No await at all: the first Ctrl-C interrupts it.
        "n = 0\n"
        "while True:\n"
        "    n += 1\n"
        "    if n == 1: print('SPIN', flush=True)\n"
        "\n"
        "print('AFTER SPIN', n > 0, flush=True)\n"
        # Awaits, then spins: cancelling cannot land, so the second Ctrl-C interrupts it.
        "async def spin():\n"
        "    await manyio.sleep(0)\n"
        "    print('ASYNC SPIN', flush=True)\n"
        "    while True: pass\n"
        "\n"
        "await spin()\n"
        "print('AFTER ASYNC SPIN', flush=True)\n"
    )
    with _repl(script) as (proc, stdin, stdout):
        _read_until(stdout, "SPIN\n")
        proc.send_signal(signal.SIGINT)
        _read_until(stdout, "AFTER SPIN True")
        _read_until(stdout, "ASYNC SPIN")
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _read_until(stdout, "AFTER ASYNC SPIN")
        stdin.close()
        _, stderr = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, stderr
    assert stderr.count("KeyboardInterrupt") == 2, stderr


@contextlib.contextmanager
def _repl(script: str) -> Iterator[tuple[subprocess.Popen[str], Any, Any]]:
    """The REPL on 2 workers, its pipes open and ``script`` typed in (for tests that send it
    signals or watch it run); killed on the way out, whatever happened."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "manyio", "repl", "--threads", "2"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(script)
        proc.stdin.flush()
        yield proc, proc.stdin, proc.stdout
    finally:
        proc.kill()
        proc.wait()


def _read_until(stream: Any, marker: str) -> str:
    seen = ""
    while marker not in seen:
        line = stream.readline()
        if not line:
            raise AssertionError(f"stream ended before {marker!r}; got {seen!r}")
        seen += line
    return seen


# ===== run MODULE:FUNCTION =====

MODULE = """\
import sys
import manyio

async def main():
    await manyio.sleep(0)
    print("ARGV", sys.argv)
    print("TASK", manyio.current_task().parent_id)
    return 3

def not_async():
    pass

value = 5
"""


@pytest.fixture
def module_dir(tmp_path: Path) -> Path:
    (tmp_path / "climod.py").write_text(MODULE)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.py").write_text(MODULE.replace("return 3", "return None"))
    (tmp_path / "broken.py").write_text("import no_such_dependency_xyz\n")
    return tmp_path


def test_run_module_function_with_argv_and_exit_status(module_dir: Path) -> None:
    proc = _manyio("run", "--threads", "2", "climod:main", "a", "--flag", cwd=module_dir)
    assert proc.returncode == 3, proc.stderr
    assert "ARGV ['climod', 'a', '--flag']" in proc.stdout
    assert "TASK None" in proc.stdout


def test_run_file_path(module_dir: Path) -> None:
    proc = _manyio("run", "jobs/job.py:main", "x", cwd=module_dir)
    assert proc.returncode == 0, proc.stderr
    assert "ARGV ['jobs/job.py', 'x']" in proc.stdout


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_module_xyz:main", "no module named 'no_such_module_xyz'"),
        ("climod:missing", "'climod' has no attribute 'missing'"),
        ("climod:not_async", "not an async function"),
        ("climod:value", "not callable"),
        ("missing/file.py:main", "no such file"),
        ("climod", "expected MODULE:FUNCTION"),
    ],
)
def test_run_usage_errors_exit_2_without_traceback(module_dir: Path, target: str, message: str) -> None:
    proc = _manyio("run", target, cwd=module_dir)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_run_shows_the_traceback_of_a_broken_module(module_dir: Path) -> None:
    # A missing import *inside* the module is the module's bug, not a usage error.
    proc = _manyio("run", "broken:main", cwd=module_dir)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "no_such_dependency_xyz" in proc.stderr


# ===== ps / pstree =====

TARGET = """\
import sys
import manyio

async def leaf(event):
    await event.wait()  # LEAF-LINE

async def supervisor(event):
    async with manyio.TaskGroup() as tg:
        tg.start_soon(leaf, event, name="leaf-a")
        tg.start_soon(leaf, event, name="leaf-b")

async def main():
    event = manyio.Event()
    async with manyio.TaskGroup() as tg:
        tg.start_soon(supervisor, event, name="supervisor")
        tg.start_soon(leaf, event, name="lonely")
        while sum(t.blocked() for t in manyio.all_tasks()) < 4:
            await manyio.sleep(0.001)
        print("READY", flush=True)
        # Until the test closes our stdin.
        await manyio.to_thread(sys.stdin.read)
        event.set()

manyio.run(main, threads=2)
"""


def _start(tmp_path: Path, source: str) -> subprocess.Popen[str]:
    script = tmp_path / "target.py"
    script.write_text(source)
    proc = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=_env(),
    )
    assert proc.stdout is not None
    _read_until(proc.stdout, "READY")
    return proc


@pytest.fixture
def target(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = _start(tmp_path, TARGET)
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    try:
        proc.wait(timeout=TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    # Being inspected must not disturb the program.
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


def _by_name(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (runtime,) = answer["runtimes"]
    return {task["name"]: task for task in runtime["tasks"]}


def test_ps_json_has_the_task_tree_and_where_tasks_wait(target: subprocess.Popen[str]) -> None:
    proc = _manyio("ps", str(target.pid), "--json")
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["pid"] == target.pid
    tasks = _by_name(answer)
    # The main task, its two children, the supervisor's two; not ps's own collector task.
    assert len(tasks) == 5, tasks.keys()
    main = next(t for t in tasks.values() if t["parent_id"] is None)
    assert main["coroutine"] == "main"
    assert tasks["supervisor"]["parent_id"] == main["id"]
    assert tasks["lonely"]["parent_id"] == main["id"]
    assert tasks["leaf-a"]["parent_id"] == tasks["supervisor"]["id"]
    assert tasks["leaf-b"]["parent_id"] == tasks["supervisor"]["id"]
    leaf = tasks["leaf-a"]
    assert leaf["state"] == "blocked"
    assert leaf["coroutine"] == "leaf"
    line = TARGET.splitlines().index("    await event.wait()  # LEAF-LINE") + 1
    assert leaf["stack"][-1]["qualname"] == "leaf"
    assert leaf["stack"][-1]["line"] == line
    assert leaf["stack"][-1]["file"].endswith("target.py")
    # The supervisor waits in TaskGroup.__aexit__, below its own frame.
    assert [f["qualname"] for f in tasks["supervisor"]["stack"]][:2] == ["supervisor", "TaskGroup.__aexit__"]


def test_ps_prints_a_table(target: subprocess.Popen[str]) -> None:
    proc = _manyio("ps", str(target.pid))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "5 tasks in 1 runtime (#0 with 2 worker threads)" in lines[0]
    assert lines[1].split()[:6] == ["RUNTIME", "TASK", "ID", "PARENT", "STATE", "NAME"]
    rows = {line.split()[4]: line.split(None, 6) for line in lines[2:]}
    assert set(rows) == {"Task-1", "supervisor", "lonely", "leaf-a", "leaf-b"}
    source = TARGET.splitlines()
    leaf_line = source.index("    await event.wait()  # LEAF-LINE") + 1
    group_line = source.index("    async with manyio.TaskGroup() as tg:") + 1
    main_id = rows["Task-1"][1]
    assert rows["leaf-a"][:6] == ["#0", rows["leaf-a"][1], rows["supervisor"][1], "blocked", "leaf-a", "leaf"]
    assert rows["leaf-a"][6] == f"leaf at target.py:{leaf_line}, awaiting Waiter"
    assert rows["supervisor"][2] == main_id
    assert rows["supervisor"][6] == f"supervisor at target.py:{group_line}, awaiting TaskGroup.__aexit__"


def test_pstree_nests_children_under_parents(target: subprocess.Popen[str]) -> None:
    proc = _manyio("pstree", str(target.pid))
    assert proc.returncode == 0, proc.stderr
    depth = {}
    for line in proc.stdout.splitlines():
        if "── " in line:
            name = line.split("── ", 1)[1].split(" [", 1)[0]
            depth[name] = line.index("── ") // 4
    assert depth.pop("supervisor") == 1
    assert depth.pop("lonely") == 1
    assert depth.pop("leaf-a") == 2
    assert depth.pop("leaf-b") == 2
    ((_, root_depth),) = depth.items()
    assert root_depth == 0
    # leaf-a sits under supervisor, not under lonely.
    text = proc.stdout
    assert text.index("supervisor [") < text.index("leaf-a [") < text.index("lonely [")


def test_ps_sees_into_a_running_repl_statement() -> None:
    with _repl("print('READY', flush=True); await manyio.sleep(60)\n") as (repl, _, stdout):
        _read_until(stdout, "READY")
        proc = _manyio("ps", str(repl.pid), "--json")
    assert proc.returncode == 0, proc.stderr
    tasks = _by_name(json.loads(proc.stdout))
    innermost = tasks["repl-statement"]["stack"][-1]
    assert (innermost["qualname"], innermost["file"]) == ("<module>", "<stdin>")


def test_ps_no_such_process() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    proc = _manyio("ps", str(dead.pid))
    assert proc.returncode == 1
    assert f"no process with PID {dead.pid}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import time\nprint('READY', flush=True)\nwhile True: time.sleep(0.01)\n", "manyio is not loaded"),
        (
            "import time, manyio\nprint('READY', flush=True)\nwhile True: time.sleep(0.01)\n",
            "no manyio runtime is running",
        ),
    ],
    ids=["no-manyio", "no-runtime"],
)
def test_ps_on_a_process_without_a_runtime(tmp_path: Path, source: str, message: str) -> None:
    proc = _start(tmp_path, source)
    try:
        result = _manyio("pstree", str(proc.pid))
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_ps_times_out_when_the_main_thread_never_runs_python(tmp_path: Path) -> None:
    proc = _start(tmp_path, "import sys, manyio\nprint('READY', flush=True)\nsys.stdin.read()\n")
    try:
        # The request stays behind for the target to find later: keep it in tmp_path.
        result = _manyio("ps", str(proc.pid), "--timeout", "0.3", tmpdir=tmp_path)
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 1
    assert "did not answer within 0.3 s" in result.stderr
    (request,) = tmp_path.glob("manyio-ps-*")
    assert (request / "abandoned").exists()


def test_ps_on_a_process_that_is_not_python() -> None:
    proc = subprocess.Popen(["sleep", "30"])
    try:
        result = _manyio("ps", str(proc.pid))
    finally:
        proc.kill()
        proc.wait()
    assert result.returncode == 1
    assert f"cannot inject into process {proc.pid}" in result.stderr
    assert "Traceback" not in result.stderr


def test_ps_explains_permission_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from manyio._cli import ps

    def denied(pid: int, script: str) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(sys, "remote_exec", denied)
    monkeypatch.setattr(ps, "_ptrace_scope", lambda: "1")
    assert ps.inspect_process(os.getpid(), tree=False) == 1
    err = capsys.readouterr().err
    assert f"permission denied to inspect process {os.getpid()}" in err
    assert "ptrace_scope is 1" in err
