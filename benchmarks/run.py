"""Benchmark harness: manyio against asyncio, uvloop, trio and TonIO on the same 3.14t interpreter.

    python benchmarks/run.py [--quick] [--repeats N] [--only NAME[,NAME]] [--impl NAME[,NAME]]

Every cell (workload x implementation x threads) runs in a fresh subprocess of the project's
interpreter (``.venv/bin/python`` by default; ``--python`` to change it), implementations
interleaved A B C A B C ... across repeats. Each cell verifies its own result (counts,
checksums) and reports wall time of the runtime's run call, CPU time, peak RSS and whether the
GIL is enabled (it must not be). Writes ``benchmarks/results/latest.json`` and ``latest.md``
and prints the table. Machines are shared and noisy: only ratios taken in one run count.

A peer that does not import is reported as "unavailable (reason)". ``--peer-path DIR`` puts a
directory (e.g. another venv's site-packages holding the peers) on the children's PYTHONPATH.
This is a benchmark, not a test: it always exits 0 unless the harness itself breaks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
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
        for size in module.sizes(quick):
            group = []
            for impl, (runtime, _) in module.VARIANTS.items():
                if impls and impl not in impls:
                    continue
                for t in threads if runtime in MULTI_THREADED else [1]:
                    group.append(Cell(name, workloads.label(module, size), size, impl, runtime, t, params))
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
    ap.add_argument("--timeout", type=float, help="seconds per cell (default 120 quick, 900 full)")
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
            if not impls or impl in impls or rt == baseline[0]
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
    done = 0
    for group in groups:
        for rep in range(repeats):
            for c in group:
                if c.unavailable or c.error:
                    continue
                done += 1
                res = _child(
                    args.python,
                    [
                        "--workload", c.workload,
                        "--impl", c.impl,
                        "--threads", str(c.threads),
                        "--size", str(c.size),
                        "--params", json.dumps(c.params),
                    ],
                    env,
                    timeout,
                )  # fmt: skip
                res["repeat"] = rep
                c.samples.append(res)
                if res.get("ok"):
                    msg = f"{res['elapsed_s']:.3f} s"
                else:
                    c.error = res.get("error", "failed")
                    msg = f"FAILED: {c.error}"
                gil = any(res.get(k) for k in ("gil_enabled_after_import", "gil_enabled_end"))
                if gil:
                    msg += "  !!! GIL ENABLED !!!"
                log(f"[{done}/{total}] {c.key} rep {rep + 1}/{repeats}: {msg}")

    rows = _summarise(groups, baseline)
    table = _table(rows, baseline)
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
        f"- repeats: {repeats}, interleaved per workload; median and best wall seconds of the runtime's run "
        "call; cpu s = median user+system CPU seconds of the child during that call; peak RSS = max "
        "ru_maxrss of the child process",
        f"- ratio: median / median of {baseline[0]} with {baseline[1]} thread(s) in the same workload "
        "(< 1 is faster)",
    ]
    if unavailable:
        header.append(f"- unavailable: {', '.join(f'{k} ({v})' for k, v in unavailable.items())}")
    if cpu_params:
        header.append(
            f"- cpu: {cpu_params['chunks']} chunks x {cpu_params['iters']} iterations per task, a checkpoint "
            "after each chunk; `threads` = plain threading.Thread, no event loop (the interpreter's ceiling)"
        )
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
