"""The seed workload: N requests, each an I/O wait then pure-Python CPU, on every runtime.

    python benchmarks/seed_demo.py [--quick] [--repeats 3] [--redis] [--postgres]

Each request awaits an HTTP GET to a local delay server (D ms; the server runs in this
process), optionally a Redis GET and a PostgreSQL query, and then burns C ms of pure-Python
CPU. The grid: N concurrent requests (1..32) x the CPU share of a request, C / (D + C), from
0 to 100 %, with D + C fixed (``--request-ms``). Implementations, each in a fresh interpreter
per repeat and interleaved across repeats: manyio at 1..P worker threads (httpx, redis.asyncio
and asyncpg on manyio through ``manyio.compat.patch_all()``), asyncio with the CPU part
inline, asyncio with it sent to ``run_in_executor``, and a ThreadPoolExecutor running
blocking clients, one thread per request. The ideal on P cores is D + ceil(N / P) * C.

Prints a table per CPU share and writes ``seed.json``, ``seed.md`` and ``seed.png`` into
``--out`` (default ``benchmarks/results``). A benchmark, not a test: it exits 0 unless the
harness itself breaks (a failed implementation is reported in the table).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from seed.delay_server import DelayServer  # noqa: E402
from seed.kernel import calibrate  # noqa: E402

CHILD = BENCH / "seed" / "child.py"
REDIS_DEFAULT = os.environ.get("MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9")
PG_DEFAULT = os.environ.get("MANYIO_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
# Targets from the issue, for manyio at 2 threads on the CPU-heavy end of the grid.
TARGET_VS_ASYNCIO, TARGET_VS_IDEAL = 1.8, 1.15


def parse_args() -> argparse.Namespace:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", default="1,2,4,8,16,32", help="concurrent requests (comma-separated)")
    p.add_argument("--shares", default="0,25,50,75,100", help="CPU share of a request, percent")
    p.add_argument("--request-ms", type=float, default=40.0, help="D + C per request, ms")
    p.add_argument("--threads", default=",".join(map(str, range(1, cores + 1))), help="manyio threads")
    p.add_argument("--impl", default="manyio,asyncio,asyncio+executor,threads")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument(
        "--redis", nargs="?", const=REDIS_DEFAULT, help=f"add a Redis GET (default {REDIS_DEFAULT})"
    )
    p.add_argument("--postgres", nargs="?", const=PG_DEFAULT, help=f"add a query (default {PG_DEFAULT})")
    p.add_argument("--quick", action="store_true", help="small grid, one repeat (a smoke run)")
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--no-plot", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.n, args.shares, args.request_ms, args.repeats = "1,4,16", "0,50,100", 20.0, 1
    return args


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def build_grid(ns: list[int], shares: list[int], request_ms: float) -> list[tuple[int, float, float]]:
    """(N, D ms, C ms) for every N and CPU share."""
    return [(n, request_ms * (100 - s) / 100, request_ms * s / 100) for s in shares for n in ns]


def cells(impls: list[str], threads: list[int]) -> list[tuple[str, int]]:
    return [(impl, t) for impl in impls for t in (threads if impl == "manyio" else [1])]


def cell_name(impl: str, threads: int) -> str:
    return f"manyio t{threads}" if impl == "manyio" else impl


def run_child(spec: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(CHILD), json.dumps(spec)], capture_output=True, text=True, timeout=900
    )
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    if last.startswith("{"):
        return json.loads(last)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"ok": False, "error": f"exit code {proc.returncode}: {tail}"}


def measure(args: argparse.Namespace, grid: list[tuple[int, float, float]]) -> dict[str, Any]:
    iters_per_ms = calibrate()
    todo = cells(args.impl.split(","), ints(args.threads))
    samples: dict[str, list[list[float]]] = {cell_name(*c): [] for c in todo}
    errors: dict[str, str] = {}
    with DelayServer() as server:
        for r in range(args.repeats):  # interleaved: A B C ... A B C ...
            for impl, threads in todo:
                name = cell_name(impl, threads)
                if name in errors:
                    continue
                spec = {
                    "impl": impl, "threads": threads, "url": server.url, "grid": grid,
                    "iters_per_ms": iters_per_ms, "redis_url": args.redis, "pg_dsn": args.postgres,
                }  # fmt: skip
                res = run_child(spec)
                if not res.get("ok"):
                    errors[name] = res.get("error", "failed")
                elif res.get("gil_enabled"):
                    errors[name] = "the GIL was enabled"
                else:
                    samples[name].append(res["walls"])
                status = errors.get(name) or f"{sum(samples[name][-1]):.2f} s over the grid"
                print(f"  repeat {r + 1}/{args.repeats} {name:>18}: {status}", flush=True)
    return {"iters_per_ms": iters_per_ms, "samples": samples, "errors": errors}


def summarise(
    grid: list[tuple[int, float, float]], measured: dict[str, Any], cores: int
) -> list[dict[str, Any]]:
    points = []
    for i, (n, d_ms, c_ms) in enumerate(grid):
        point: dict[str, Any] = {
            "n": n,
            "d_ms": d_ms,
            "c_ms": c_ms,
            "share": round(100 * c_ms / (d_ms + c_ms)) if d_ms + c_ms else 0,
            "ideal_s": (d_ms + math.ceil(n / cores) * c_ms) / 1000,
            "median_s": {},
            "best_s": {},
        }
        for name, runs in measured["samples"].items():
            if runs:
                walls = [run[i] for run in runs]
                point["median_s"][name] = statistics.median(walls)
                point["best_s"][name] = min(walls)
        points.append(point)
    return points


def headline(points: list[dict[str, Any]], cores: int) -> dict[str, Any] | None:
    """manyio at P threads against asyncio and the ideal, where CPU dominates: the largest N
    at CPU share >= 50 %, and the worst case over those points."""
    best = f"manyio t{cores}"
    heavy = [p for p in points if p["share"] >= 50 and best in p["median_s"] and "asyncio" in p["median_s"]]
    if not heavy:
        return None
    max_n = max(p["n"] for p in heavy)
    at_max = [p for p in heavy if p["n"] == max_n]
    vs_asyncio = [p["median_s"]["asyncio"] / p["median_s"][best] for p in at_max]
    vs_ideal = [p["median_s"][best] / p["ideal_s"] for p in at_max]
    return {
        "cell": best,
        "n": max_n,
        "shares": [p["share"] for p in at_max],
        "min_speedup_vs_asyncio": min(vs_asyncio),
        "max_ratio_to_ideal": max(vs_ideal),
        "target_vs_asyncio": TARGET_VS_ASYNCIO,
        "target_vs_ideal": TARGET_VS_IDEAL,
    }


def markdown(result: dict[str, Any]) -> str:
    meta, points, names = result["meta"], result["points"], result["cells"]
    cores = meta["cores"]
    best = f"manyio t{cores}"
    lines = [
        "# Seed workload: I/O then CPU per request",
        "",
        f"{meta['python']}, GIL enabled: {meta['gil_enabled']}, {cores} cores, "
        f"D + C = {meta['request_ms']:g} ms per request, median of {meta['repeats']} "
        f"(interleaved, a fresh interpreter per run), {meta['date']}, commit {meta['commit']}.",
        "Wall time in ms for N concurrent requests; ideal = D + ceil(N / P) * C with P = cores.",
        "",
    ]
    if h := result.get("headline"):
        lines += [
            f"**{h['cell']}, N = {h['n']}, CPU share {'/'.join(f'{s}%' for s in h['shares'])}:** "
            f"at least {h['min_speedup_vs_asyncio']:.2f}x faster than asyncio (target "
            f">= {h['target_vs_asyncio']}x), at most {h['max_ratio_to_ideal']:.2f}x the ideal (target "
            f"<= {h['target_vs_ideal']}x).",
            "",
        ]
    for name, err in result["errors"].items():
        lines += [f"- {name}: FAILED: {err}"]
    for share in sorted({p["share"] for p in points}):
        rows = [p for p in points if p["share"] == share]
        lines += [
            "",
            f"## CPU share {share}% (D = {rows[0]['d_ms']:g} ms, C = {rows[0]['c_ms']:g} ms)",
            "",
            "| N | ideal | " + " | ".join(names) + f" | asyncio / {best} | {best} / ideal |",
            "|---:|---:|" + "---:|" * len(names) + "---:|---:|",
        ]
        for p in rows:
            cols = [_ms(p["median_s"].get(name)) for name in names]
            m = p["median_s"]
            speedup = _ratio(m.get("asyncio"), m.get(best))
            to_ideal = _ratio(m.get(best), p["ideal_s"])
            lines.append(
                f"| {p['n']} | {_ms(p['ideal_s'])} | " + " | ".join(cols) + f" | {speedup} | {to_ideal} |"
            )
    return "\n".join(lines) + "\n"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def _ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}x"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points, names = result["points"], result["cells"]
    shares = sorted({p["share"] for p in points})
    fig, axes = plt.subplots(1, len(shares), figsize=(3.2 * len(shares), 3.4), sharey=True, squeeze=False)
    for ax, share in zip(axes[0], shares, strict=True):
        rows = [p for p in points if p["share"] == share]
        ns = [p["n"] for p in rows]
        ax.plot(ns, [p["ideal_s"] * 1000 for p in rows], "k--", label="ideal")
        for name in names:
            ys = [p["median_s"].get(name) for p in rows]
            if all(y is not None for y in ys):
                ax.plot(ns, [y * 1000 for y in ys], marker="o", markersize=3, label=name)
        ax.set_xscale("log", base=2)
        ax.set_title(f"CPU share {share}%")
        ax.set_xlabel("concurrent requests N")
    axes[0][0].set_ylabel("wall time, ms")
    axes[0][-1].legend(fontsize="small")
    meta = result["meta"]
    fig.suptitle(f"I/O + CPU per request, D + C = {meta['request_ms']:g} ms, {meta['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=BENCH
        )
        return out.stdout.strip() or "?"
    except OSError:
        return "?"


def main() -> int:
    args = parse_args()
    cores = os.cpu_count() or 1
    grid = build_grid(ints(args.n), ints(args.shares), args.request_ms)
    print(f"Python {platform.python_version()} ({sys.executable}), GIL enabled: {sys._is_gil_enabled()}")
    print(f"{len(grid)} grid points x {args.repeats} repeats; calibrating the CPU kernel...", flush=True)
    measured = measure(args, grid)
    names = [name for name, runs in measured["samples"].items() if runs]
    points = summarise(grid, measured, cores)
    result = {
        "meta": {
            "python": f"Python {platform.python_version()}",
            "gil_enabled": sys._is_gil_enabled(),
            "cores": cores,
            "request_ms": args.request_ms,
            "repeats": args.repeats,
            "iters_per_ms": measured["iters_per_ms"],
            "redis": args.redis,
            "postgres": args.postgres,
            "date": dt.date.today().isoformat(),
            "commit": git_commit(),
        },
        "cells": names,
        "errors": measured["errors"],
        "samples": measured["samples"],
        "points": points,
        "headline": headline(points, cores),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seed.json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    (args.out / "seed.md").write_text(text)
    print("\n" + text)
    if not args.no_plot:
        plot(result, args.out / "seed.png")
        print(f"wrote {args.out / 'seed.json'}, seed.md and seed.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
