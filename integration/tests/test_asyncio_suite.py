"""CPython's own test.test_asyncio passes on manyio's asyncio facade (at least 90% of the
tests that run on an event loop; the runner and its record live in integration/asyncio_suite).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "asyncio_suite" / "run.py"


def test_cpython_asyncio_suite_on_the_facade() -> None:
    proc = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True, timeout=1500)
    summary = [line for line in proc.stdout.splitlines() if line.strip()]
    assert proc.returncode == 0, "\n".join(summary[-80:]) + proc.stderr[-3000:]
    assert "applicable tests pass on manyio" in proc.stdout
