"""Runs httpx's own async tests on manyio and checks the record.

httpx ships its tests in its sdist. This script fetches the sdist of the installed version
(once, cached) and runs its AnyIO tests (``-m anyio``; tests marked ``network`` need the
internet and are left out): the async client against the suite's
live uvicorn server, timeouts, auth, redirects, event hooks, proxies, streaming
requests and responses) with ``manyio_httpx_suite_plugin``: AnyIO's pytest plugin runs
them on manyio's AnyIO backend (2 workers, tasks spread over both), and manyio-httpx carries
every request over manyio's sockets. The outcome is compared with ``known-failures.toml``.

    python integration/httpx_suite/run.py             # run, compare, print a summary
    python integration/httpx_suite/run.py --update    # also rewrite results.md

It exits non-zero if a test fails that is not listed, or if fewer than 95% pass.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import tomllib
from collections import Counter
from importlib.metadata import version
from pathlib import Path

TARGET = 0.95
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite_record import fetch_sdist, outcomes  # noqa: E402  (integration/suite_record.py)

CACHE = Path(os.environ.get("MANYIO_CACHE", Path.home() / ".cache" / "manyio")) / "httpx-suite"
HTTPX_VERSION = version("httpx")

# Modules with AnyIO tests, and why the others are not run.
MODULES = (
    "tests/client/test_async_client.py",
    "tests/client/test_auth.py",
    "tests/client/test_event_hooks.py",
    "tests/client/test_proxies.py",
    "tests/client/test_redirects.py",
    "tests/models/test_requests.py",
    "tests/models/test_responses.py",
    "tests/test_asgi.py",
    "tests/test_content.py",
    "tests/test_timeouts.py",
)
NOT_RUN = {
    "tests/test_decoders.py": "imports zstandard and brotli (C extensions) for content decoding only",
}


def httpx_sources() -> Path:
    """The unpacked httpx sdist; its own copy of the package is dropped so the installed httpx
    (the one manyio-httpx patches) is what runs."""
    return fetch_sdist("httpx", HTTPX_VERSION, CACHE, marker="tests/conftest.py", drop="httpx")


def run_suite(sources: Path, junit: Path, stats: Path, extra: list[str]) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(sources)]),
        "MANYIO_SUITE_STATS": str(stats),
    }
    cmd = [
        sys.executable, "-m", "pytest", "-p", "manyio_httpx_suite_plugin", *MODULES,
        "-m", "anyio and not network", "-q", "-p", "no:cacheprovider", "--timeout", "60",
        f"--junitxml={junit}", "-o", "junit_family=xunit2", "-o", "addopts=", *extra,
    ]  # fmt: skip
    subprocess.run(cmd, cwd=sources, env=env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help="rewrite results.md")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args()

    known: dict[str, str] = tomllib.loads((HERE / "known-failures.toml").read_text())["failures"]
    sources = httpx_sources()
    with tempfile.TemporaryDirectory() as tmp:
        junit, stats = Path(tmp) / "junit.xml", Path(tmp) / "stats.json"
        run_suite(sources, junit, stats, args.pytest_args)
        results, skips = outcomes(junit, sources)
        adapter = json.loads(stats.read_text())

    counts = Counter(results.values())
    applicable = {t: s for t, s in results.items() if s != "skipped"}
    passed = counts["passed"]
    rate = passed / len(applicable) if applicable else 0.0
    not_passing = {t: s for t, s in applicable.items() if s != "passed"}
    unexpected = sorted(t for t in not_passing if t not in known)
    now_passing = sorted(t for t in known if results.get(t) == "passed")

    print(
        f"httpx {HTTPX_VERSION} async tests on manyio: {passed}/{len(applicable)} applicable "
        f"tests passed ({rate:.1%}); {counts['skipped']} skipped by the suite; {dict(counts)}; "
        f"manyio-httpx opened {adapter['connections']} connections on {adapter['threads']} workers"
    )
    for t in unexpected:
        print(f"  NOT LISTED in known-failures.toml ({not_passing[t]}): {t}")
    for t in now_passing:
        print(f"  listed as failing but passed: {t}")
    if args.update:
        write_results(results, known, skips, rate)
    through_adapter = adapter["connections"] > 0 and adapter["threads"] == 2
    if not through_adapter:
        print("FAILED: the suite's requests did not go through manyio-httpx on both workers")
    ok = not unexpected and rate >= TARGET and through_adapter
    if not ok:
        print(f"FAILED: target {TARGET:.0%}, every failure listed with its reason")
    return 0 if ok else 1


def write_results(results: dict[str, str], known: dict[str, str], skips: dict[str, str], rate: float) -> None:
    counts = Counter(results.values())
    applicable = len(results) - counts["skipped"]
    skip_reasons = Counter(reason.split(":")[0][:90] for reason in skips.values())
    lines = [
        f"# httpx {HTTPX_VERSION}'s async tests on manyio",
        "",
        "Generated by `python integration/httpx_suite/run.py --update`; the CI test",
        "(`integration/tests/test_httpx_suite.py`) reruns the suite and checks it.",
        "",
        f"- AnyIO tests collected from {len(MODULES)} modules: {len(results)}",
        f"- applicable (not skipped by the suite itself): {applicable}",
        f"- passed: {counts['passed']} ({rate:.1%} of applicable); failed: {counts['failed']}; "
        f"errors: {counts['error']}",
        f"- skipped by the suite ({counts['skipped']}), by reason:",
        "",
        *(f"  - {n} x {reason}" for reason, n in skip_reasons.most_common()),
        "",
        "Modules run: " + ", ".join(f"`{m}`" for m in MODULES) + ".",
        "",
        "Modules with AnyIO tests not run:",
        "",
        *(f"- `{name}`: {why}" for name, why in NOT_RUN.items()),
        "",
        "| test | outcome | reason |",
        "|---|---|---|",
    ]
    for test_id, state in sorted(results.items()):
        if state not in ("passed", "skipped"):
            lines.append(f"| `{test_id}` | {state} | {known.get(test_id, '(not listed)')} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
