"""How the peer-suite runners judge a run (``integration/suite_record.py``): a listed failure
is fine, an unlisted one fails the run unless it passes when run once more on its own."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite_record import FLAKY, compare

RESULTS = {"t::listed": "failed", "t::ok": "passed", "t::new": "failed", "t::skip": "skipped"}
KNOWN = {"t::listed": "a reason"}


def test_unlisted_failure_that_fails_again_fails_the_run(capsys) -> None:
    asked: list[list[str]] = []

    def again(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return {"t::new": "failed"}

    listed, rate, flaky = compare("suite", RESULTS, KNOWN, again)
    assert (listed, flaky) == (False, {})
    assert asked == [["t::new"]]  # only the unlisted failure runs again
    assert rate == 1 / 3  # skipped tests do not count
    assert "NOT LISTED in known-failures.toml (failed): t::new" in capsys.readouterr().out


def test_unlisted_failure_that_passes_again_is_reported_flaky(capsys) -> None:
    listed, rate, flaky = compare("suite", RESULTS, KNOWN, lambda ids: dict.fromkeys(ids, "passed"))
    assert (listed, flaky) == (True, {"t::new": FLAKY})
    assert rate == 1 / 3  # the first outcome still counts
    out = capsys.readouterr().out
    assert "FLAKY, not listed (failed, then passed when run again on its own): t::new" in out
    assert "NOT LISTED" not in out


def test_listed_failures_are_not_run_again() -> None:
    def again(ids: list[str]) -> dict[str, str]:
        raise AssertionError(f"ran {ids} again")

    assert compare("suite", {"t::listed": "failed", "t::ok": "passed"}, KNOWN, again)[:2] == (True, 0.5)


def test_a_rerun_that_reports_nothing_counts_as_a_failure() -> None:
    assert compare("suite", RESULTS, KNOWN, lambda ids: {})[0] is False
