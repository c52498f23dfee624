"""httpx's own async tests pass on manyio through manyio-httpx (at least 95%, every failure
explained, the requests carried by manyio-httpx on both workers).

The runner and the record of known failures live in ``integration/httpx_suite``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "httpx_suite" / "run.py"


def test_httpx_suite_on_manyio() -> None:
    proc = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True, timeout=600)
    progress = (".", "F", "s", "E", "x", "X")
    summary = [line for line in proc.stdout.splitlines() if not line.startswith(progress)]
    assert proc.returncode == 0, "\n".join(summary[-60:]) + proc.stderr[-3000:]
