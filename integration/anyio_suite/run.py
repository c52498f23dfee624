"""Runs AnyIO's own test suite against the manyio backend and checks it against our record.

AnyIO ships its tests in its sdist. This script fetches that sdist (once, cached), runs every
test that uses the manyio backend (``pytest -p manyio_anyio -k manyio``: the backend-generic
tests, plus the cross-backend portal tests that involve manyio) and compares the outcome with
``known-failures.toml``, where every failing or skipped test is listed with its reason.

    python integration/anyio_suite/run.py             # run, compare, print a summary
    python integration/anyio_suite/run.py --update    # also rewrite results.md

It exits non-zero if a test fails that is not listed, or if fewer than 95% pass.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

ANYIO_VERSION = "4.16.0"
TARGET = 0.95
HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("MANYIO_CACHE", Path.home() / ".cache" / "manyio")) / "anyio-suite"


def anyio_sources() -> Path:
    """The unpacked AnyIO sdist (downloaded from the configured package index once)."""
    root = CACHE / f"anyio-{ANYIO_VERSION}"
    if (root / "tests" / "conftest.py").exists():
        return root
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", tmp, f"anyio=={ANYIO_VERSION}"],
            check=True,
        )  # fmt: skip
        (sdist,) = Path(tmp).glob("anyio-*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        (Path(tmp) / f"anyio-{ANYIO_VERSION}").rename(root)
    return root


def localhost_has_ipv6() -> bool:
    try:
        return bool(socket.getaddrinfo("localhost", None, socket.AF_INET6))
    except OSError:
        return False


def run_suite(sources: Path, junit: Path, expression: str, extra: list[str]) -> None:
    cmd = [
        sys.executable, "-m", "pytest", "-p", "manyio_anyio", "-k", expression, "tests",
        "-q", "-p", "no:cacheprovider", "--timeout", "30", f"--junitxml={junit}",
        "-o", "junit_family=xunit2", *extra,
    ]  # fmt: skip
    subprocess.run(cmd, cwd=sources, check=False)


def outcomes(junit: Path) -> tuple[dict[str, str], dict[str, str]]:
    """test id -> passed / failed / error / skipped, and the skip messages."""
    result: dict[str, str] = {}
    skip_reasons: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        path = case.get("classname", "").replace(".", "/")
        test_id = f"{path}.py::{case.get('name')}"
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = {"failure": "failed"}.get(child.tag, child.tag)
                if child.tag == "skipped":
                    skip_reasons[test_id] = f"skipped by AnyIO's suite: {child.get('message', '')}"
        if state == "error" and result.get(test_id) == "passed":
            state = "failed"  # an error in teardown after the test passed
        result[test_id] = state
    return result, skip_reasons


def normalise(test_id: str) -> str:
    # junit class names look like tests.test_x.TestClass: turn them back into pytest ids.
    module, _, name = test_id.partition(".py::")
    parts = module.split("/")
    for i in range(len(parts), 0, -1):
        candidate = Path(*parts[:i])
        if candidate.name.startswith("test_"):
            return f"{candidate}.py::{'::'.join([*parts[i:], name])}"
    return test_id


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--update", action="store_true", help="rewrite results.md")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    args = parser.parse_args()

    record = tomllib.loads((HERE / "known-failures.toml").read_text())
    known: dict[str, str] = record["failures"]
    flaky: dict[str, str] = record["flaky"]
    expression = "manyio"
    if not localhost_has_ipv6():
        needs = record["environment"]["needs_ipv6_localhost"]
        expression += "".join(f" and not {name}" for name in needs)
        print(f"localhost does not resolve to ::1 here: deselecting tests matching {needs}")
    sources = anyio_sources()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        run_suite(sources, junit, expression, args.pytest_args)
        raw, raw_skips = outcomes(junit)
    results = {normalise(k): v for k, v in raw.items()}
    # A skip is AnyIO's own decision (a platform feature missing, say): its message is its reason.
    reasons = {**{normalise(k): v for k, v in raw_skips.items()}, **flaky, **known}

    counts = Counter(results.values())
    total = len(results)
    passed = counts["passed"]
    rate = passed / total if total else 0.0
    not_passing = {t: s for t, s in results.items() if s != "passed"}
    unexpected = sorted(t for t in not_passing if t not in reasons)
    now_passing = sorted(t for t in known if results.get(t) == "passed")

    print(f"AnyIO {ANYIO_VERSION} suite on manyio: {passed}/{total} passed ({rate:.1%}); {dict(counts)}")
    for t in unexpected:
        print(f"  NOT LISTED in known-failures.toml ({not_passing[t]}): {t}")
    for t in now_passing:
        print(f"  listed as failing but passed: {t}")
    if args.update:
        write_results(results, reasons, rate)
    ok = not unexpected and rate >= TARGET
    if not ok:
        print(f"FAILED: target {TARGET:.0%}, every failure listed with its reason")
    return 0 if ok else 1


def write_results(results: dict[str, str], known: dict[str, str], rate: float) -> None:
    counts = Counter(results.values())
    lines = [
        f"# AnyIO {ANYIO_VERSION}'s test suite on the manyio backend",
        "",
        "Generated by `python integration/anyio_suite/run.py --update`; the CI test",
        "(`integration/tests/test_anyio_suite.py`) reruns the suite and checks it.",
        "",
        f"- tests run: {len(results)} (every test collected with `-k manyio`)",
        f"- passed: {counts['passed']} ({rate:.1%}); failed: {counts['failed']}; "
        f"errors: {counts['error']}; skipped: {counts['skipped']}",
        "",
        "| test | outcome | reason |",
        "|---|---|---|",
    ]
    for test_id, state in sorted(results.items()):
        if state != "passed":
            lines.append(f"| `{test_id}` | {state} | {known.get(test_id, '(not listed)')} |")
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
