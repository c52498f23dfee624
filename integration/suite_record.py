"""What the peer-suite runners (``asyncpg_suite``, ``httpx_suite``, ``redis_suite``, and in part
``anyio_suite``) share: fetching a peer's sdist once, reading pytest's junit XML back into
pytest test ids and outcomes, comparing them with the known failures (running an unlisted
failure once more on its own, to tell a flaky test from a broken one), and the parts of the
``results.md`` record."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from pathlib import Path

# Runs the given pytest ids once more and returns their outcomes (see compare).
RunAgain = Callable[[list[str]], dict[str, str]]
FLAKY = "flaky: failed in this run, passed when run again on its own (not listed)"


def parse_args(doc: str | None) -> argparse.Namespace:
    """A runner's command line: ``--update`` (rewrite results.md) and extra pytest arguments."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update", action="store_true", help="rewrite results.md")
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for pytest")
    return parser.parse_args()


def known_failures(here: Path) -> dict[str, str]:
    """test id -> reason, from ``here/known-failures.toml``'s ``[failures]`` table."""
    return tomllib.loads((here / "known-failures.toml").read_text())["failures"]


def pytest_command(plugin: str, targets: list[str], junit: Path, *options: str) -> list[str]:
    """pytest over ``targets`` with ``plugin`` loaded, quiet, 60 s per test, writing the junit
    XML :func:`outcomes` reads; the suite's own ``addopts`` are dropped. ``options`` go last."""
    return [
        sys.executable, "-m", "pytest", "-p", plugin, *targets, "-q", "-p", "no:cacheprovider",
        "--timeout", "60", f"--junitxml={junit}", "-o", "junit_family=xunit2", "-o", "addopts=",
        *options,
    ]  # fmt: skip


def run_again_alone(run: Callable[[list[str], Path], None], sources: Path, tmp: Path) -> RunAgain:
    """A ``run_again`` for :func:`compare`: ``run(test_ids, junit)`` runs just those tests
    (the suite's runner, given pytest node ids instead of its modules), read back here."""

    def again(test_ids: list[str]) -> dict[str, str]:
        junit = tmp / "run-again.xml"
        print(f"running {len(test_ids)} unlisted failure(s) again on their own")
        run(test_ids, junit)
        return outcomes(junit, sources)[0] if junit.exists() else {}

    return again


def verdict(listed: bool, rate: float, target: float) -> int:
    """The runner's exit status: 0 when every failure is listed and the pass rate is reached."""
    if listed and rate >= target:
        return 0
    print(f"FAILED: target {target:.0%}, every failure listed with its reason")
    return 1


def fetch_sdist(name: str, version: str, *, marker: str, drop: str | None = None) -> Path:
    """The unpacked sdist of ``name==version`` in manyio's cache (``$MANYIO_CACHE``, default
    ~/.cache/manyio, under ``<name>-suite``), downloaded from the configured package index
    once; ``marker`` is a file that shows it is complete. ``drop`` removes a directory from the
    copy (the package itself, so the installed one is what runs)."""
    cache = Path(os.environ.get("MANYIO_CACHE", Path.home() / ".cache" / "manyio")) / f"{name}-suite"
    root = cache / f"{name}-{version}"
    if (root / marker).exists():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
             "--dest", tmp, f"{name}=={version}"],
            check=True,
        )  # fmt: skip
        (sdist,) = Path(tmp).glob(f"{name}-*.tar.gz")
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        unpacked = Path(tmp) / f"{name}-{version}"
        if drop is not None:
            shutil.rmtree(unpacked / drop)
        unpacked.rename(root)
    return root


def outcomes(junit: Path, sources: Path) -> tuple[dict[str, str], dict[str, str]]:
    """pytest id -> passed / failed / error / skipped, and pytest id -> skip message."""
    result: dict[str, str] = {}
    skips: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        test_id = _pytest_id(case.get("classname", ""), case.get("name", ""), sources)
        state = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                state = {"failure": "failed"}.get(child.tag, child.tag)
                if child.tag == "skipped":
                    skips[test_id] = child.get("message", "")
        if state == "error" and result.get(test_id) == "passed":
            state = "failed"  # an error in teardown after the test passed
        result[test_id] = state
    return result, skips


def _pytest_id(classname: str, name: str, sources: Path) -> str:
    # junit class names look like tests.test_x.TestClass: the longest dotted prefix that is a
    # file of the suite is the module, the rest are classes.
    parts = classname.split(".")
    for i in range(len(parts), 0, -1):
        module = Path(*parts[:i]).with_suffix(".py")
        if (sources / module).is_file():
            return "::".join([str(module), *parts[i:], name])
    return f"{classname}::{name}"


def compare(
    title: str, results: dict[str, str], known: dict[str, str], run_again: RunAgain | None = None
) -> tuple[bool, float, dict[str, str]]:
    """Prints ``title``'s pass rate, the failures ``known`` does not list and the listed ones
    that passed. Unlisted failures are run once more on their own with ``run_again``; one that
    passes then is reported as flaky, not as a failure (the pass rate still counts its first
    outcome). Returns (every failure listed or flaky, pass rate of the tests the suite ran,
    test id -> reason for each flaky one)."""
    counts = Counter(results.values())
    applicable = {t: s for t, s in results.items() if s != "skipped"}
    rate = counts["passed"] / len(applicable) if applicable else 0.0
    print(
        f"{title}: {counts['passed']}/{len(applicable)} applicable tests passed ({rate:.1%}); "
        f"{counts['skipped']} skipped by the suite; {dict(counts)}"
    )
    unexpected = sorted(t for t, s in applicable.items() if s != "passed" and t not in known)
    flaky: dict[str, str] = {}
    if unexpected and run_again is not None:
        again = run_again(unexpected)
        flaky = {t: FLAKY for t in unexpected if again.get(t) == "passed"}
        unexpected = [t for t in unexpected if t not in flaky]
    for t in flaky:
        print(f"  FLAKY, not listed ({applicable[t]}, then passed when run again on its own): {t}")
    for t in unexpected:
        print(f"  NOT LISTED in known-failures.toml ({applicable[t]}): {t}")
    for t in sorted(t for t in known if results.get(t) == "passed"):
        print(f"  listed as failing but passed: {t}")
    return not unexpected, rate, flaky


def counts_lines(results: dict[str, str], skips: dict[str, str], rate: float) -> list[str]:
    """The record's summary bullets: applicable, passed/failed/errors, skips by reason."""
    counts = Counter(results.values())
    skip_reasons = Counter(reason.split(":")[0][:90] for reason in skips.values())
    return [
        f"- applicable (not skipped by the suite itself): {len(results) - counts['skipped']}",
        f"- passed: {counts['passed']} ({rate:.1%} of applicable); failed: {counts['failed']}; "
        f"errors: {counts['error']}",
        f"- skipped by the suite ({counts['skipped']}), by reason:",
        "",
        *(f"  - {n} x {reason}" for reason, n in skip_reasons.most_common()),
    ]


def failure_table(results: dict[str, str], known: dict[str, str]) -> list[str]:
    """Every test that did not pass, with the reason ``known`` gives."""
    lines = ["| test | outcome | reason |", "|---|---|---|"]
    for test_id, state in sorted(results.items()):
        if state not in ("passed", "skipped"):
            lines.append(f"| `{test_id}` | {state} | {known.get(test_id, '(not listed)')} |")
    return lines
