"""The README's Python example and the demo in examples/ must run as shown."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_readme_python_blocks_run() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    assert blocks, "the README shows Python code"
    for code in blocks:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


def test_parallel_demo_runs_and_reports_both_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "parallel_demo.py"), "--tasks", "4", "--work", "0.02"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "GIL enabled: False" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"\s+\d+\s+\d", line)]
    assert [row[0] for row in rows] == ["1", str(__import__("os").cpu_count() or 1)]
