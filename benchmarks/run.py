"""Benchmark harness: manyio against asyncio, uvloop, trio and TonIO on the same 3.14t interpreter.

    python benchmarks/run.py [--quick] [--repeats N] [--only NAME[,NAME]] [--impl NAME[,NAME]]

Every cell (workload x implementation x threads) runs in a fresh subprocess of the project's
interpreter (``.venv/bin/python`` by default; ``--python`` to change it), implementations
interleaved A B C A B C ... across repeats. Each cell verifies its own result (counts,
checksums) and reports wall time of the runtime's run call, CPU time, peak RSS and whether the
GIL is enabled (it must not be). Writes ``benchmarks/results/latest.json`` and ``latest.md``
and prints the table. Machines are shared and noisy: only ratios taken in one run count.

Server workloads (``echo``) are measured from outside: the cell runs the server, and
``loadgen.py`` (one plain-Python load generator for every server) runs in a second process,
pinned with taskset to core 0 while a 1-thread server is pinned to core 1 (servers with more
threads are not pinned). They report requests/s, verified byte for byte, and the server's
CPU-microseconds per request from /proc (higher req/s is better there).

A peer that does not import is reported as "unavailable (reason)". ``--peer-path DIR`` puts a
directory (e.g. another venv's site-packages holding the peers) on the children's PYTHONPATH.
This is a benchmark, not a test: it always exits 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import workloads  # noqa: E402
from cell import RESULT_MARK  # noqa: E402
from workloads._runtimes import MULTI_THREADED  # noqa: E402

DEFAULT_PYTHON = REPO / ".venv" / "bin" / "python"
LOADGEN = BENCH / "loadgen.py"
# Server workloads (echo): a 1-thread server runs on SERVER_CORE, the load generator on
# LOADGEN_CORE; servers with more threads are not pinned (they compete with the generator).
SERVER_CORE, LOADGEN_CORE = 1, 0
NOISY_OTHER_UTIL = 0.1  # cores busy with anything but the server and the load generator


@dataclass
class Cell:
    workload: str
    label: str
    size: int
    impl: str
    runtime: str
    threads: int
    params: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    unavailable: str | None = None

    @property
    def key(self) -> str:
        return f"{self.label} | {self.impl} | t={self.threads}"

    def times(self) -> list[float]:
        return [s["elapsed_s"] for s in self.samples if s.get("ok")]

    def gil_seen(self) -> bool:
        return any(
            s.get(k)
            for s in self.samples
            for k in ("gil_enabled_start", "gil_enabled_after_import", "gil_enabled_end")
        )


def _child(python: str, args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Runs ``cell.py ARGS`` in a fresh interpreter and returns its JSON result line."""
    cmd = [python, str(BENCH / "cell.py"), *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timeout after {timeout:.0f} s"}
    except OSError as e:
        return {"ok": False, "error": f"cannot start {python}: {e}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK) :])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"exit code {proc.returncode}: {tail}"[:500], "stderr": proc.stderr[-4000:]}


def _pin(core: int) -> list[str]:
    """``taskset -c CORE`` when taskset exists and this process may use CORE and another core."""
    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if shutil.which("taskset") and core in cores and len(cores) > 1:
        return ["taskset", "-c", str(core)]
    return []


def _is_server(c: Cell) -> bool:
    return bool(getattr(workloads.load(c.workload), "SERVER", False))


def _server_child(python: str, c: Cell, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Runs one server cell (``cell.py`` serving) and ``loadgen.py`` against it; returns the
    cell's result line with the generator's measurements merged in."""
    server_cmd = [
        *(_pin(SERVER_CORE) if c.threads == 1 else []),
        python, str(BENCH / "cell.py"),
        "--workload", c.workload,
        "--impl", c.impl,
        "--threads", str(c.threads),
        "--size", str(c.size),
        "--params", json.dumps(c.params),
    ]  # fmt: skip
    with tempfile.TemporaryFile("w+") as stderr:
        try:
            proc = subprocess.Popen(
                server_cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env, cwd=REPO
            )
        except OSError as e:
            return {"ok": False, "error": f"cannot start {python}: {e}"}
        res = _drive_server(proc, stderr, python, c, env, timeout)
    res["server_cmd_pinned"] = server_cmd[0] == "taskset"
    return res


def _drive_server(
    proc: subprocess.Popen[str], stderr: Any, python: str, c: Cell, env: dict[str, str], timeout: float
) -> dict[str, Any]:
    """Waits for the server's READY line, runs the load generator, stops the server and
    returns its result line (with the load generator's output under ``load``)."""
    from workloads.echo import READY_MARK

    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    started = time.monotonic()
    deadline = started + timeout

    def next_line() -> str | None:
        try:
            return lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def tail() -> str:
        stderr.seek(0)
        return stderr.read()[-4000:]

    ready: dict[str, Any] | None = None
    load: dict[str, Any] = {"ok": False, "error": "load generator not run"}
    res: dict[str, Any] | None = None
    try:
        while ready is None and res is None and (line := next_line()) is not None:
            if line.startswith(READY_MARK):
                ready = json.loads(line[len(READY_MARK) :])
            elif line.startswith(RESULT_MARK):  # the server ended (failed) before listening
                res = json.loads(line[len(RESULT_MARK) :])
        if ready is not None:
            p = c.params
            load_cmd = [
                *_pin(LOADGEN_CORE),
                python, str(LOADGEN),
                "--port", str(ready["port"]),
                "--conns", str(p["conns"]),
                "--size", str(c.size),
                "--warmup", str(p["warmup"]),
                "--duration", str(p["duration"]),
                "--server-pid", str(ready["pid"]),
            ]  # fmt: skip
            try:
                out = subprocess.run(
                    load_cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=timeout
                )
                last = (out.stdout.strip().splitlines() or [""])[-1]
                load = (
                    json.loads(last)
                    if last.startswith("{")
                    else {"ok": False, "error": f"load generator exit {out.returncode}: {out.stderr[-500:]}"}
                )
            except subprocess.TimeoutExpired:
                load = {"ok": False, "error": f"load generator timed out after {timeout:.0f} s"}
            try:  # stop the server: EOF on its control connection
                socket.create_connection(("127.0.0.1", ready["ctl_port"]), timeout=5).close()
            except OSError as e:
                load.setdefault("stop_error", str(e))
        while (line := next_line()) is not None:
            if line.startswith(RESULT_MARK):
                res = json.loads(line[len(RESULT_MARK) :])
        try:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_tail = tail()
    if res is None:
        what = "server did not start listening" if ready is None else "server did not stop"
        last_err = (err_tail.strip().splitlines() or ["no output"])[-1]
        waited = time.monotonic() - started
        res = {
            "ok": False,
            "error": f"{what} (exit code {proc.returncode} after {waited:.1f} s): {last_err}"[:500],
        }
        if err_tail:
            res["stderr"] = err_tail
    res["ready"] = ready
    res["load"] = load
    if ready is None:
        res["ok"] = False  # the server's own error says why
    elif not load.get("ok"):
        res["ok"] = False
        res["error"] = f"load generator: {load.get('error')}" + (
            f"; server: {res['error']}" if res.get("error") else ""
        )
    elif res.get("ok"):
        res["rps"] = load["rps"]
        res["cpu_us_per_req"] = load.get("server_cpu_us_per_req")
    return res


def _run_cell(
    python: str, c: Cell, env: dict[str, str], timeout: float, timeout_arg: float | None
) -> dict[str, Any]:
    if _is_server(c):
        window = c.params["warmup"] + c.params["duration"]
        return _server_child(python, c, env, timeout_arg or window + 60.0)
    args = [
        "--workload", c.workload,
        "--impl", c.impl,
        "--threads", str(c.threads),
        "--size", str(c.size),
        "--params", json.dumps(c.params),
    ]  # fmt: skip
    return _child(python, args, env, timeout)


def _disturbed(res: dict[str, Any]) -> bool:
    """A server sample during which something else kept the machine busy."""
    return bool(res.get("ok")) and res["load"].get("other_util", 0.0) > NOISY_OTHER_UTIL


def _describe(c: Cell, res: dict[str, Any]) -> str:
    """One log line's worth of a sample (records a failure in ``c.error``)."""
    if res.get("ok") and "rps" in res:
        load = res["load"]
        msg = (
            f"{res['rps']:,.0f} req/s, server {_fmt(res['cpu_us_per_req'], 1)} CPU-us/req "
            f"(util {load.get('server_util', 0):.2f}), loadgen util {load['loadgen_util']:.2f}, "
            f"other {load.get('other_util', 0):.2f}, cores server {_cores(load.get('server_affinity'))} "
            f"loadgen {_cores(load.get('loadgen_affinity'))}"
        )
    elif res.get("ok"):
        msg = f"{res['elapsed_s']:.3f} s"
    else:
        c.error = res.get("error", "failed")
        msg = f"FAILED: {c.error}"
    if any(res.get(k) for k in ("gil_enabled_after_import", "gil_enabled_end")):
        msg += "  !!! GIL ENABLED !!!"
    return msg


def _child_env(peer_paths: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    if peer_paths:
        extra = os.pathsep.join(peer_paths)
        env["PYTHONPATH"] = extra + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, cwd=REPO, timeout=10)
    except OSError, subprocess.TimeoutExpired:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _parse_list(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _build_cells(
    names: list[str], impls: list[str] | None, threads: list[int], quick: bool, cpu_params: dict[str, Any]
) -> list[list[Cell]]:
    """One group per (workload, size); cells in a group are interleaved across repeats."""
    groups: list[list[Cell]] = []
    for name in names:
        module = workloads.load(name)
        params = cpu_params if name == "cpu" else {}
        if hasattr(module, "cases"):
            cases = module.cases(quick)
        else:
            cases = [(size, params, workloads.label(module, size)) for size in module.sizes(quick)]
        for size, case_params, label in cases:
            group = []
            for impl, (runtime, _) in module.VARIANTS.items():
                if impls and impl not in impls and runtime not in impls:
                    continue
                for t in threads if runtime in MULTI_THREADED else [1]:
                    group.append(Cell(name, label, size, impl, runtime, t, case_params))
            if group:
                groups.append(group)
    return groups


def _fmt(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _summarise(groups: list[list[Cell]], baseline: tuple[str, int]) -> list[dict[str, Any]]:
    rows = []
    for group in groups:
        base = next((c for c in group if (c.impl, c.threads) == baseline), None)
        if base is None and baseline[0] == "manyio":
            base = next((c for c in group if c.impl == "manyio" and c.threads == 1), None)
        if base is None:
            # A workload without a plain manyio cell names its own baseline (e.g. anyio).
            own = getattr(workloads.load(group[0].workload), "BASELINE", None)
            base = next((c for c in group if (c.impl, c.threads) == own), None)
        base_median = statistics.median(base.times()) if base and base.times() else None
        seen_unavailable: set[str] = set()
        for c in group:
            if c.unavailable:
                if c.impl in seen_unavailable:
                    continue
                seen_unavailable.add(c.impl)
            times = c.times()
            median = statistics.median(times) if times else None
            cpus = [s["cpu_s"] for s in c.samples if s.get("ok")]
            rss = [s["maxrss_kb"] / 1024 for s in c.samples if s.get("maxrss_kb")]
            notes = []
            if c.unavailable:
                notes.append(f"unavailable ({c.unavailable})")
            if c.error:
                notes.append(f"FAILED: {c.error}")
            if c.gil_seen():
                notes.append("**GIL ENABLED**")
            ratio = None
            if median is not None and base_median:
                ratio = median / base_median
            rows.append(
                {
                    "workload": c.label,
                    "impl": c.impl,
                    "runtime": c.runtime,
                    "threads": "-" if c.unavailable else c.threads,
                    "size": c.size,
                    "n": len(times),
                    "median_s": median,
                    "best_s": min(times) if times else None,
                    "ratio": ratio,
                    "is_baseline": c is base,
                    "cpu_median_s": statistics.median(cpus) if cpus else None,
                    "peak_rss_mb": max(rss) if rss else None,
                    "gil_enabled": c.gil_seen(),
                    "notes": "; ".join(notes),
                    "version": next((s.get("version") for s in c.samples if s.get("version")), None),
                }
            )
    return rows


def _cores(cpus: list[int] | None) -> str:
    if not cpus:
        return "?"
    if len(cpus) > 1 and cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}"
    return ",".join(map(str, cpus))


def _pinning(samples: list[dict[str, Any]]) -> str:
    """Which cores the server and the load generator were allowed on, e.g. ``srv 1, load 0``."""
    seen = {
        (
            _cores(s["load"].get("server_affinity")),
            _cores(s["load"].get("loadgen_affinity")),
            s.get("server_cmd_pinned"),
        )
        for s in samples
        if s.get("load", {}).get("ok")
    }
    parts = []
    for srv, load, pinned in sorted(seen, key=str):
        parts.append(f"srv core {srv}{'' if pinned else ' (unpinned)'}, load core {load}")
    return "; ".join(parts)


def _summarise_server(groups: list[list[Cell]], baseline: tuple[str, int]) -> list[dict[str, Any]]:
    """Rows for server workloads: throughput (higher is better) and server CPU per request."""
    rows = []
    for group in groups:
        base = next((c for c in group if (c.impl, c.threads) == baseline), None)
        if base is None and baseline[0] == "manyio":
            base = next((c for c in group if c.impl == "manyio" and c.threads == 1), None)
        base_rps = [s["rps"] for s in _clean(base.samples)[0]] if base else []
        base_median = statistics.median(base_rps) if base_rps else None
        seen_unavailable: set[str] = set()
        for c in group:
            if c.unavailable:
                if c.impl in seen_unavailable:
                    continue
                seen_unavailable.add(c.impl)
            good, disturbed = _clean(c.samples)
            rps = [s["rps"] for s in good]
            median = statistics.median(rps) if rps else None
            us = [s["cpu_us_per_req"] for s in good if s.get("cpu_us_per_req") is not None]
            srv_util = [s["load"]["server_util"] for s in good if "server_util" in s["load"]]
            load_util = [s["load"]["loadgen_util"] for s in good]
            other = [s["load"]["other_util"] for s in good if "other_util" in s["load"]]
            ok_count = sum(1 for s in c.samples if s.get("ok"))
            rss = [s["maxrss_kb"] / 1024 for s in c.samples if s.get("maxrss_kb")]
            notes = []
            if not c.unavailable:
                notes.append(_pinning(c.samples))
            if load_util and statistics.median(load_util) > 0.9:
                notes.append("load generator near saturation")
            if disturbed and len(good) < ok_count:
                notes.append(f"{disturbed}/{ok_count} disturbed sample(s) left out")
            elif disturbed:
                notes.append(f"all {ok_count} samples disturbed (other load > {NOISY_OTHER_UTIL} core)")
            if c.unavailable:
                notes.append(f"unavailable ({c.unavailable})")
            if c.error:
                notes.append(f"FAILED: {c.error}")
            gil = c.gil_seen() or any((s.get("ready") or {}).get("gil_enabled_listening") for s in c.samples)
            if gil:
                notes.append("**GIL ENABLED**")
            rows.append(
                {
                    "kind": "server",
                    "workload": c.label,
                    "impl": c.impl,
                    "runtime": c.runtime,
                    "threads": "-" if c.unavailable else c.threads,
                    "size": c.size,
                    "conns": c.params.get("conns"),
                    "n": len(rps),
                    "median_rps": median,
                    "best_rps": max(rps) if rps else None,
                    "ratio": median / base_median if median is not None and base_median else None,
                    "is_baseline": c is base,
                    "cpu_us_per_req_median": statistics.median(us) if us else None,
                    "server_util_median": statistics.median(srv_util) if srv_util else None,
                    "loadgen_util_median": statistics.median(load_util) if load_util else None,
                    "other_util_median": statistics.median(other) if other else None,
                    "peak_rss_mb": max(rss) if rss else None,
                    "gil_enabled": gil,
                    "notes": "; ".join(n for n in notes if n),
                    "version": next((s.get("version") for s in c.samples if s.get("version")), None),
                }
            )
    return rows


def _clean(samples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """The successful samples without outside load (other util <= NOISY_OTHER_UTIL), or all of
    them if every one was disturbed; and how many were disturbed."""
    ok = [s for s in samples if s.get("ok")]
    quiet = [s for s in ok if s["load"].get("other_util", 0.0) <= NOISY_OTHER_UTIL]
    return (quiet or ok), len(ok) - len(quiet)


def _server_table(rows: list[dict[str, Any]], baseline: tuple[str, int]) -> str:
    head = [
        "workload",
        "implementation",
        "threads",
        "median req/s",
        "best req/s",
        f"req/s vs {baseline[0]} t={baseline[1]}",
        "server CPU-us/req",
        "server util",
        "loadgen util",
        "other util",
        "peak RSS MB",
        "cores / notes",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x" + (" (base)" if r["is_baseline"] else "")
        cells = [
            r["workload"],
            r["impl"],
            str(r["threads"]),
            _fmt(r["median_rps"], 0),
            _fmt(r["best_rps"], 0),
            ratio,
            _fmt(r["cpu_us_per_req_median"], 1),
            _fmt(r["server_util_median"], 2),
            _fmt(r["loadgen_util_median"], 2),
            _fmt(r["other_util_median"], 2),
            _fmt(r["peak_rss_mb"], 0),
            r["notes"].replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _versus(rows: list[dict[str, Any]], a: tuple[str, int], b: tuple[str, int]) -> str:
    """Per server workload: median req/s of ``a`` over that of ``b``."""
    out = []
    for label in dict.fromkeys(r["workload"] for r in rows):
        ra = next((r for r in rows if r["workload"] == label and (r["impl"], r["threads"]) == a), None)
        rb = next((r for r in rows if r["workload"] == label and (r["impl"], r["threads"]) == b), None)
        if ra and rb and ra["median_rps"] and rb["median_rps"]:
            out.append(f"{label} {ra['median_rps'] / rb['median_rps']:.2f}x")
    return ", ".join(out)


def _table(rows: list[dict[str, Any]], baseline: tuple[str, int]) -> str:
    head = [
        "workload",
        "implementation",
        "threads",
        "median s",
        "best s",
        f"ratio vs {baseline[0]} t={baseline[1]}",
        "cpu s",
        "peak RSS MB",
        "notes",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}x" + (" (base)" if r["is_baseline"] else "")
        cells = [
            r["workload"],
            r["impl"],
            str(r["threads"]),
            _fmt(r["median_s"]),
            _fmt(r["best_s"]),
            ratio,
            _fmt(r["cpu_median_s"], 2),
            _fmt(r["peak_rss_mb"], 0),
            r["notes"].replace("|", "/"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_groups(
    groups: list[list[Cell]],
    repeats: int,
    total: int,
    args: argparse.Namespace,
    env: dict[str, str],
    timeout: float,
    log: Any,
) -> None:
    done = 0
    for group in groups:
        for rep in range(repeats):
            for c in group:
                if c.unavailable or c.error:
                    continue
                done += 1
                attempts = 1 + (args.retry_disturbed if _is_server(c) else 0)
                for attempt in range(attempts):
                    res = _run_cell(args.python, c, env, timeout, args.timeout)
                    res["repeat"] = rep
                    c.samples.append(res)
                    retry = attempt + 1 < attempts and _disturbed(res)
                    if retry:
                        res["retried"] = True
                    msg = _describe(c, res)
                    if retry:
                        msg += f"  (disturbed: other load > {NOISY_OTHER_UTIL} core; retrying)"
                    log(f"[{done}/{total}] {c.key} rep {rep + 1}/{repeats}: {msg}")
                    if not retry:
                        break


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1 repeat and small sizes (smoke run)")
    ap.add_argument("--repeats", type=int, help="repeats per cell (default 5, --quick 1)")
    ap.add_argument("--only", help=f"comma-separated workloads: {', '.join(workloads.WORKLOAD_NAMES)}")
    ap.add_argument("--impl", help="comma-separated implementations (e.g. manyio,tonio)")
    ap.add_argument(
        "--threads", default="1,2", help="thread counts for multi-threaded runtimes (default 1,2)"
    )
    ap.add_argument("--baseline", default="manyio:1", help="IMPL[:THREADS] the ratio column divides by")
    ap.add_argument("--python", default=str(DEFAULT_PYTHON) if DEFAULT_PYTHON.exists() else sys.executable)
    ap.add_argument("--peer-path", action="append", default=[], help="extra PYTHONPATH entry for the cells")
    ap.add_argument(
        "--timeout", type=float, help="seconds per cell (default 120 quick, 900 full; echo: window + 60)"
    )
    ap.add_argument(
        "--retry-disturbed",
        type=int,
        default=2,
        help="echo: re-run a sample up to N times while other load > "
        f"{NOISY_OTHER_UTIL} core disturbed it (default 2; every attempt is kept in the JSON)",
    )
    ap.add_argument("--out", default=str(BENCH / "results"), help="output directory")
    args = ap.parse_args()

    repeats = args.repeats or (1 if args.quick else 5)
    timeout = args.timeout or (120.0 if args.quick else 900.0)
    names = _parse_list(args.only) or list(workloads.WORKLOAD_NAMES)
    for n in names:
        workloads.load(n)  # fails early on a typo
    impls = _parse_list(args.impl)
    threads = [int(t) for t in _parse_list(args.threads) or ["1"]]
    b_impl, _, b_threads = args.baseline.partition(":")
    baseline = (b_impl, int(b_threads or 1))
    env = _child_env(args.peer_path)
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    # Which runtimes import, and whether importing one turns the GIL back on.
    needed = sorted(
        {
            rt
            for n in names
            for impl, (rt, _) in workloads.load(n).VARIANTS.items()
            if not impls or impl in impls or rt in impls or rt == baseline[0]
        }
    )
    probes: dict[str, dict[str, Any]] = {}
    for rt in needed:
        probes[rt] = p = _child(args.python, ["--probe", rt], env, 60)
        status = p.get("version") if p.get("ok") else f"unavailable ({p.get('error')})"
        gil = p.get("gil_enabled_after_import")
        log(f"runtime {rt}: {status}; GIL after import: {gil}" + ("  !!! GIL ENABLED !!!" if gil else ""))
    info = next((p["info"] for p in probes.values() if "info" in p), {})
    if info and not info.get("free_threaded_build"):
        log(f"WARNING: {args.python} is not a free-threaded build")

    cpu_params: dict[str, Any] = {}
    if "cpu" in names:
        cal = _child(args.python, ["--calibrate"], env, 120)
        if not cal.get("ok"):
            raise SystemExit(f"cpu calibration failed: {cal.get('error')}")
        cpu_params = cal["cpu"]
        log(
            f"cpu calibration: {cpu_params['iters']} iterations per chunk, {cpu_params['chunks']} chunks/task"
        )

    groups = _build_cells(names, impls, threads, args.quick, cpu_params)
    for c in (c for g in groups for c in g):
        p = probes[c.runtime]
        if not p.get("ok"):
            c.unavailable = p.get("error", "import failed")

    total = sum(1 for g in groups for c in g if not c.unavailable) * repeats
    services = contextlib.ExitStack()
    for n in names:
        service = getattr(workloads.load(n), "service", None)
        if service is not None:
            env.update(services.enter_context(service()))
    with services:
        _run_groups(groups, repeats, total, args, env, timeout, log)

    time_groups = [g for g in groups if not _is_server(g[0])]
    server_groups = [g for g in groups if _is_server(g[0])]
    time_rows = _summarise(time_groups, baseline)
    server_rows = _summarise_server(server_groups, baseline)
    rows = time_rows + server_rows
    tables = []
    if time_rows:
        tables.append(_table(time_rows, baseline))
    if server_rows:
        tables.append(_server_table(server_rows, baseline))
    table = "\n\n".join(tables)
    gil_rows = [r for r in rows if r["gil_enabled"]]
    versions = {rt: p.get("version") for rt, p in probes.items() if p.get("ok")}
    unavailable = {rt: p.get("error") for rt, p in probes.items() if not p.get("ok")}
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    meta = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": args.python,
        "interpreter": info,
        "commit": (commit or "?") + ("+dirty" if dirty else ""),
        "quick": args.quick,
        "repeats": repeats,
        "threads": threads,
        "baseline": f"{baseline[0]}:{baseline[1]}",
        "versions": versions,
        "unavailable": unavailable,
        "probes": probes,
        "cpu_calibration": {k: v for k, v in cpu_params.items() if k != "expected"},
        "peer_path": args.peer_path,
        "wall_s": round(time.perf_counter() - started, 1),
    }

    header = [
        f"# manyio benchmarks ({'quick' if args.quick else 'full'} run)",
        "",
        f"- date: {meta['date']}, commit {meta['commit']}, host {meta['host']} ({meta['cpu_count']} CPUs)",
        f"- interpreter: {args.python}: {info.get('version', '?')}, "
        f"free-threaded build: {info.get('free_threaded_build')}",
        f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}",
        f"- repeats: {repeats}, interleaved per workload; peak RSS = max ru_maxrss of the (server) child",
    ]
    if time_rows:
        header.append(
            "- timed workloads: median and best wall seconds of the runtime's run call; cpu s = median "
            "user+system CPU seconds of the child during that call; ratio: median / median of "
            f"{baseline[0]} with {baseline[1]} thread(s) in the same workload (< 1 is faster)"
        )
    if unavailable:
        header.append(f"- unavailable: {', '.join(f'{k} ({v})' for k, v in unavailable.items())}")
    if cpu_params:
        header.append(
            f"- cpu: {cpu_params['chunks']} chunks x {cpu_params['iters']} iterations per task, a checkpoint "
            "after each chunk; `threads` = plain threading.Thread, no event loop (the interpreter's ceiling)"
        )
    if server_rows:
        w = server_groups[0][0].params
        header.append(
            f"- echo: each cell is a server process (`cell.py`) plus `loadgen.py` in another process "
            f"(Python, epoll, one request in flight per connection, every echoed byte checked); "
            f"{w['warmup']} s warm-up, then requests completed in a {w['duration']} s window; "
            "`echo SIZE xC` = C connections sending SIZE-byte messages. 1-thread servers are pinned with "
            f"taskset to core {SERVER_CORE}, the load generator to core {LOADGEN_CORE}; multi-thread servers "
            "are not pinned (they share core 0 with the generator). Server CPU-us/req and server util = "
            "utime+stime of the server process (/proc/PID/stat, 10 ms ticks) over the window; loadgen "
            "util = the generator's own CPU over the window (near 1.0: the generator set the pace); "
            "other util = the rest of the machine's busy CPU over the window, in cores (other processes; "
            "kernel work charged to neither); samples with other util > "
            f"{NOISY_OTHER_UTIL} are disturbed and left out of the medians when undisturbed ones exist "
            "(all samples are in latest.json). "
            "The req/s ratio is median / median of the baseline (> 1 is more throughput)"
        )
        if versus := _versus(server_rows, ("manyio", 1), ("tonio", 1)):
            header.append(f"- echo, manyio t=1 req/s / tonio t=1 req/s (issue target >= 1.20x): {versus}")
    if gil_rows:
        header.append("")
        header.append(
            f"**WARNING: the GIL was enabled in {len(gil_rows)} cell(s): "
            f"{', '.join(f'{r["workload"]} {r["impl"]} t={r["threads"]}' for r in gil_rows)}. "
            "Those numbers are not valid.**"
        )
    markdown = "\n".join([*header, "", table, ""])

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cells_json = [
        {
            "workload": c.workload,
            "label": c.label,
            "size": c.size,
            "impl": c.impl,
            "runtime": c.runtime,
            "threads": c.threads,
            "unavailable": c.unavailable,
            "error": c.error,
            "samples": c.samples,
        }
        for g in groups
        for c in g
    ]
    (out / "latest.json").write_text(
        json.dumps({"meta": meta, "rows": rows, "cells": cells_json}, indent=1) + "\n"
    )
    (out / "latest.md").write_text(markdown)
    print(markdown)
    if gil_rows:
        print("!!! THE GIL WAS ENABLED IN SOME CELLS: SEE THE WARNING ABOVE !!!", file=sys.stderr)
    log(f"wrote {out / 'latest.json'} and {out / 'latest.md'}")


if __name__ == "__main__":
    main()
