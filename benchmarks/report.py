"""Gathers every benchmark result into one report: ratios of manyio against each peer.

    python benchmarks/report.py            # writes results/report.md, report.json, report.png
                                           # and the ratios table in README.md
    python benchmarks/report.py --check    # exit 1 if README.md's table is not what the
                                           # results in benchmarks/results/ give

Inputs: every ``results/*.json`` that ``run.py`` wrote (a workload found in several files is
taken from the newest run) and ``results/seed.json`` from ``seed_demo.py``. A ratio is the
peer's median time over manyio's (for servers, manyio's requests/s over the peer's): above
1.00 manyio is faster. Each ratio comes from one run, never across runs. On the manyio side
a row takes manyio's best variant at that thread count (e.g. plain tasks or a TaskGroup);
the per-run tables in ``results/*.md`` show every variant.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
README = BENCH.parent / "README.md"
BEGIN, END = "<!-- ratios:begin (benchmarks/report.py) -->", "<!-- ratios:end -->"
PEERS = ("asyncio", "uvloop", "trio", "tonio", "threading")
PEER_TITLES = {"threading": "native"}
# Result files in the order the table shows them, with the name their rows get.
GROUPS = {"latest": "core", "spawn": "core", "echo": "tcp", "facade": "asyncio facade", "anyio": "anyio"}
GROUPS |= {name: name for name in ("redis", "httpx", "asyncpg")}


def _runtime(row: dict[str, Any]) -> str:
    """manyio, or the peer a row belongs to (AnyIO's and the facade's rows named by their loop)."""
    rt = row["runtime"]
    if "manyio" in rt:
        return "manyio"
    return rt.removeprefix("anyio-")


def _speed(row: dict[str, Any]) -> float | None:
    """Higher is faster: requests/s for servers, 1 / median seconds otherwise."""
    if row.get("median_rps"):
        return row["median_rps"]
    return 1 / row["median_s"] if row.get("median_s") else None


def load_runs() -> dict[str, tuple[str, dict[str, Any], list[dict[str, Any]]]]:
    """workload label -> (source file, meta, rows), the newest run of each workload."""
    runs: dict[str, tuple[str, dict[str, Any], list[dict[str, Any]]]] = {}
    paths = [p for p in RESULTS.glob("*.json") if p.stem not in ("seed", "report")]
    order = list(GROUPS)
    for path in sorted(paths, key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.stem)):
        data = json.loads(path.read_text())
        group = GROUPS.get(path.stem, path.stem)
        for label in dict.fromkeys(r["workload"] for r in data["rows"]):
            rows = [r for r in data["rows"] if r["workload"] == label]
            key = label if group == "core" else f"{group}: {label}"
            if key not in runs or runs[key][1]["date"] < data["meta"]["date"]:
                runs[key] = (path.name, data["meta"], rows)
    return runs


def harness_rows(runs: dict[str, tuple[str, dict[str, Any], list[dict[str, Any]]]]) -> list[dict[str, Any]]:
    table = []
    for label, (source, meta, rows) in runs.items():
        for threads in (1, 2):
            mine = [_speed(r) for r in rows if _runtime(r) == "manyio" and r["threads"] == threads]
            mine = [s for s in mine if s]
            if not mine:
                continue
            best = max(mine)
            ratios: dict[str, float] = {}
            for peer in PEERS:
                theirs = [r for r in rows if _runtime(r) == peer and _speed(r)]
                # Peers with threads of their own (TonIO, the native ceilings) at the same count.
                same = [r for r in theirs if r["threads"] == threads]
                if same or peer in ("tonio", "threading"):
                    theirs = same
                if theirs:
                    ratios[peer] = best / max(_speed(r) for r in theirs)  # type: ignore[type-var]
            table.append(
                {
                    "workload": label,
                    "threads": threads,
                    "ratios": ratios,
                    "source": source,
                    "date": meta["date"],
                }
            )
    return table


def seed_rows() -> list[dict[str, Any]]:
    """The seed demo's CPU-heavy end: the largest N at each CPU share of 50 % and more."""
    path = RESULTS / "seed.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    points = [p for p in data["points"] if p["share"] >= 50]
    if not points:
        return []
    max_n = max(p["n"] for p in points)
    table = []
    for p in (p for p in points if p["n"] == max_n):
        m = p["median_s"]
        for threads in (1, 2):
            mine = m.get(f"manyio t{threads}")
            if not mine:
                continue
            ratios = {"asyncio": m["asyncio"] / mine} if "asyncio" in m else {}
            if "threads" in m:
                ratios["threading"] = m["threads"] / mine
            ratios["ideal"] = p["ideal_s"] / mine
            table.append(
                {
                    "workload": f"seed N={p['n']}, CPU {p['share']}%",
                    "threads": threads,
                    "ratios": ratios,
                    "source": path.name,
                    "date": data["meta"]["date"],
                }
            )
    return table


def markdown_table(rows: list[dict[str, Any]]) -> str:
    cols = [*PEERS, "ideal"]
    head = "| workload | manyio threads | " + " | ".join(f"vs {PEER_TITLES.get(c, c)}" for c in cols) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(cols)]
    for r in rows:
        cells = [f"{r['ratios'][c]:.2f}" if c in r["ratios"] else "" for c in cols]
        lines.append(f"| {r['workload']} | {r['threads']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def readme_block(rows: list[dict[str, Any]]) -> str:
    sources = sorted({f"`{r['source']}`" for r in rows})
    return "\n".join(
        [
            BEGIN,
            "Speed of manyio relative to each peer, same machine and interpreter, one run per workload "
            "(peer time / manyio time; above 1.00 manyio is faster). *native* is plain threads for "
            "`cpu` and the seed demo, bare coroutines stepped by plain threads for `spawn` (the "
            "floor: no runtime at all), and the C client (`wrk`, `pgbench`, `redis-benchmark`) for the "
            "adapters; *ideal* is D + ceil(N/P)*C. Generated by `benchmarks/report.py` from "
            + ", ".join(sources)
            + " in `benchmarks/results/`.",
            "",
            markdown_table(rows),
            END,
        ]
    )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['workload']} (t{r['threads']})" for r in rows]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    for i, peer in enumerate(("asyncio", "uvloop", "tonio")):
        ys = [r["ratios"].get(peer, 0) for r in rows]
        ax.barh([j + 0.27 * i for j in range(len(rows))], ys, height=0.27, label=f"vs {peer}")
    ax.axvline(1.0, color="k", linewidth=0.8)
    ax.set_yticks([j + 0.27 for j in range(len(rows))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("peer time / manyio time (> 1: manyio faster)")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="only check that README.md is up to date")
    args = ap.parse_args()
    rows = harness_rows(load_runs()) + seed_rows()
    block = readme_block(rows)
    readme = README.read_text()
    start, end = readme.find(BEGIN), readme.find(END)
    if start < 0 or end < 0:
        print(f"README.md has no {BEGIN} ... {END} block", file=sys.stderr)
        return 1
    updated = readme[:start] + block + readme[end + len(END) :]
    if args.check:
        if updated != readme:
            print("README.md's ratios table is stale: run python benchmarks/report.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(updated)
    (RESULTS / "report.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "report.md").write_text(
        "# manyio against its peers\n\n" + block.split("\n", 1)[1].rsplit("\n", 1)[0] + "\n"
    )
    plot(rows, RESULTS / "report.png")
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
