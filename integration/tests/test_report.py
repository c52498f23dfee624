"""The README's ratios table is generated from the recorded results, never typed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_ratios_table_matches_the_recorded_results() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "report.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    readme = (ROOT / "README.md").read_text()
    assert "| spawn 1M | 1 |" in readme and "| seed N=32, CPU 50% | 2 |" in readme
