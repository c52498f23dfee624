"""asyncpg's own tests pass on manyio through manyio-asyncpg (at least 90% of the modules
run, every failure explained).

The runner and the record of known failures live in ``integration/asyncpg_suite``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "asyncpg_suite" / "run.py"


def test_asyncpg_suite_on_manyio() -> None:
    proc = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True, timeout=1200)
    progress = (".", "F", "s", "E", "x", "X")
    summary = [line for line in proc.stdout.splitlines() if not line.startswith(progress)]
    assert proc.returncode == 0, "\n".join(summary[-60:]) + proc.stderr[-3000:]
