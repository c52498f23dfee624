"""AnyIO's own test suite passes on the manyio backend (at least 95%, every failure explained).

The suite and the record of its known failures live in ``integration/anyio_suite``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "anyio_suite" / "run.py"


def test_anyio_suite_on_manyio() -> None:
    proc = subprocess.run([sys.executable, str(RUNNER)], capture_output=True, text=True, timeout=1500)
    summary = [line for line in proc.stdout.splitlines() if not line.startswith((".", "F", "s", "E", "x"))]
    assert proc.returncode == 0, "\n".join(summary[-60:]) + proc.stderr[-3000:]
