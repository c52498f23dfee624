"""Runs a selection of CPython's own ``test.test_asyncio`` with manyio's asyncio loop facade.

Every event loop those tests create (``asyncio.new_event_loop()``, ``asyncio.run``,
``IsolatedAsyncioTestCase``, ``asyncio.SelectorEventLoop(...)``) is a
``manyio.asyncio.EventLoop``: its callbacks run in a strand on manyio's workers and it waits
for I/O in manyio's reactor. Tests that never create one (those on ``test_utils.TestLoop``,
a virtual-time loop of the suite's own) do not exercise manyio and are reported apart.

    python integration/asyncio_suite/run.py            # run, print a summary, check the target
    python integration/asyncio_suite/run.py --update   # also rewrite results.md

Exits non-zero if fewer than 90% of the applicable tests pass.
"""

from __future__ import annotations

import argparse
import asyncio
import asyncio.events
import asyncio.unix_events
import importlib
import sys
import time
import unittest
import warnings
from collections import Counter
from pathlib import Path

import manyio.asyncio

TARGET = 0.90
HERE = Path(__file__).resolve().parent
MODULES = [
    "test_base_events", "test_buffered_proto", "test_context", "test_eager_task_factory",
    "test_events", "test_free_threading", "test_futures", "test_futures2", "test_locks",
    "test_pep492", "test_protocols", "test_queues", "test_runners", "test_server",
    "test_sock_lowlevel", "test_ssl", "test_sslproto", "test_staggered", "test_streams",
    "test_subprocess", "test_taskgroups", "test_tasks", "test_threads", "test_timeouts",
    "test_tools", "test_unix_events", "test_waitfor",
]  # fmt: skip

# Tests left out, with the reason. They interrupt the whole process (SIGINT to the main thread)
# to test Ctrl-C handling, which would stop this runner too.
EXCLUDED = {
    "test_runners.RunTests.test_asyncio_run_without_uncancel": "sends SIGINT to the process",
    "test_runners.RunnerTests.test_interrupt_call_soon": "sends SIGINT to the process",
    "test_runners.RunnerTests.test_interrupt_wait": "sends SIGINT to the process",
    "test_runners.RunnerTests.test_interrupt_cancelled_task": "sends SIGINT to the process",
}

created = 0  # facade loops created so far


class _CountingLoop(manyio.asyncio.EventLoop):
    """The facade, accepting (and ignoring) the selector argument of SelectorEventLoop."""

    def __init__(self, selector: object = None) -> None:
        global created
        created += 1
        super().__init__()


class _Policy(asyncio.unix_events._UnixDefaultEventLoopPolicy):
    _loop_factory = _CountingLoop


_POLICY = _Policy()


def install() -> None:
    # Test modules reset the policy to the default in tearDownModule(): ours is the default.
    set_policy = asyncio.events._set_event_loop_policy

    def set_policy_or_ours(policy: object) -> None:
        set_policy(_POLICY if policy is None else policy)

    asyncio.events._set_event_loop_policy = set_policy_or_ours
    set_policy(_POLICY)
    for module in (asyncio, asyncio.unix_events):
        module.SelectorEventLoop = _CountingLoop  # type: ignore[misc]
        module.EventLoop = _CountingLoop  # type: ignore[misc]


class Recorder(unittest.TestResult):
    """Records each test's outcome and whether it ran on a facade loop."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, tuple[str, bool]] = {}
        self._before = 0

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)
        self._before = created

    def _record(self, test: unittest.TestCase, state: str) -> None:
        self.outcomes[test.id()] = (state, created > self._before)

    def addSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "passed")

    def addFailure(self, test: unittest.TestCase, err: object) -> None:
        super().addFailure(test, err)  # type: ignore[arg-type]
        self._record(test, "failed")

    def addError(self, test: unittest.TestCase, err: object) -> None:
        super().addError(test, err)  # type: ignore[arg-type]
        self._record(test, "error")

    def addSkip(self, test: unittest.TestCase, reason: str) -> None:
        self._record(test, "skipped")

    def addExpectedFailure(self, test: unittest.TestCase, err: object) -> None:
        self._record(test, "passed")

    def addUnexpectedSuccess(self, test: unittest.TestCase) -> None:
        self._record(test, "failed")

    def addSubTest(self, test: unittest.TestCase, subtest: unittest.TestCase, err: object) -> None:
        if err is not None:
            self._record(test, "failed")


def run_module(name: str) -> Recorder:
    module = importlib.import_module(f"test.test_asyncio.{name}")
    suite = unittest.defaultTestLoader.loadTestsFromModule(module)
    _exclude(suite, name)
    result = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite.run(result)
    return result


def _exclude(suite: unittest.TestSuite, module: str) -> None:
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            _exclude(test, module)
        else:
            key = f"{module}.{type(test).__name__}.{test._testMethodName}"
            if key in EXCLUDED:
                setattr(test, test._testMethodName, unittest.skip(EXCLUDED[key])(lambda: None))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help="rewrite results.md")
    parser.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    parser.add_argument("modules", nargs="*", default=MODULES)
    args = parser.parse_args()
    install()
    rows = []
    failures: list[str] = []
    totals: Counter[str] = Counter()
    started = time.monotonic()
    for name in args.modules:
        result = run_module(name)
        counts: Counter[str] = Counter()
        for test_id, (state, on_manyio) in result.outcomes.items():
            key = state if on_manyio else f"{state} (not on manyio)"
            counts[key] += 1
            if on_manyio and state in ("failed", "error"):
                failures.append(test_id)
        totals.update(counts)
        passed, applicable = counts["passed"], counts["passed"] + counts["failed"] + counts["error"]
        rows.append((name, passed, applicable, counts))
        print(f"{name}: {passed}/{applicable} on manyio", flush=True)
        if args.verbose:
            for test, trace in result.failures + result.errors:
                print(test, trace)
    passed = totals["passed"]
    applicable = passed + totals["failed"] + totals["error"]
    rate = passed / applicable if applicable else 0.0
    elapsed = time.monotonic() - started
    print(f"\n{passed}/{applicable} applicable tests pass on manyio ({rate:.1%}, target {TARGET:.0%}); "
          f"{totals['skipped']} skipped; {sum(v for k, v in totals.items() if 'not on manyio' in k)} "
          f"ran on the suite's own TestLoop; {elapsed:.0f} s")  # fmt: skip
    for test_id in failures:
        print("  not passing:", test_id)
    if args.update:
        write_results(rows, passed, applicable, rate, totals, failures)
    return 0 if rate >= TARGET else 1


def write_results(rows: list, passed: int, applicable: int, rate: float, totals: Counter[str],
                  failures: list[str]) -> None:  # fmt: skip
    lines = [
        "# CPython's test.test_asyncio on manyio's asyncio facade",
        "",
        f"Generated by `integration/asyncio_suite/run.py --update` on Python {sys.version.split()[0]}.",
        "A test is *applicable* when it created at least one event loop (then always the facade);",
        "tests that only use the suite's virtual-time `TestLoop` are counted apart.",
        "",
        f"**{passed}/{applicable} applicable tests pass ({rate:.1%}; target {TARGET:.0%}).** "
        f"Skipped: {totals['skipped']}.",
        "",
        "| module | passed | applicable | skipped | on TestLoop |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, p, a, counts in rows:
        other = sum(v for k, v in counts.items() if "not on manyio" in k)
        lines.append(f"| {name} | {p} | {a} | {counts['skipped']} | {other} |")
    lines += ["", "## Not passing", ""]
    lines += [f"- `{t}`" for t in failures] or ["(none)"]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
