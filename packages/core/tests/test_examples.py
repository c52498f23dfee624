"""The README's and the docs' Python blocks, and every program in examples/, must run as shown.

Each runs in a subprocess. Blocks fenced ```python are complete programs; fragments use
```py and are not run (docs/index.md says so). Programs that need Redis or PostgreSQL read
MANYIO_REDIS_URL / MANYIO_PG_DSN and fail, not skip, when the server is missing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
TIMEOUT = 120

# What each example must print (regular expressions, each matched against a line of stdout).
EXPECTED_OUTPUT = {
    "structured_concurrency.py": [
        r"^squares: \[0, 1, 4, 9, 16\]$",
        r"^group raised: \['boom'\] sibling cancelled: True$",
        r"^move_on_after caught: True$",
        r"^fail_after raised TimeoutError$",
        r"^cleanup: \['a cleaned up', 'b cleaned up', 'c cleaned up'\]$",
        r"^server ready on port 8080$",
    ],
    "echo_server.py": [r"^20 clients echoed 1000 messages$", r"^server stopped$"],
    "http_fetch.py": [r"^200 requests, sum of squares 2646700$", r"^ReadTimeout raised by httpx$"],
    "redis_counter.py": [r"^counter=200 members=200 total=19900$"],
    "postgres_pool.py": [
        r"^rows=100 sum=328350 first=\[0, 1, 2\]$",
        r"^slow query cancelled: True, connection usable: True$",
    ],
    "anyio_app.py": [
        r"^async library: manyio$",
        r"^squares: \[0, 1, 4, 9, 16, 25, 36, 49, 64, 81\]$",
        r"^timed out: True$",
        r"^thread: done$",
        r"^server said: HELLO$",
    ],
    "asyncio_program.py": [
        r"^one program: \['oiynam', 'oicnysa', 'dnarts', '\[0, 1, 2\]', 'child ok'\]$",
        r"^four programs agree: True$",
    ],
}


def _run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def _doc_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in sorted(DOCS.rglob("*.md")):
        for i, code in enumerate(_python_blocks(path)):
            blocks.append((f"{path.relative_to(DOCS)}#{i + 1}", code))
    return blocks


def test_readme_python_blocks_run() -> None:
    blocks = _python_blocks(ROOT / "README.md")
    assert blocks, "the README shows Python code"
    for code in blocks:
        result = _run(["-c", code])
        assert result.returncode == 0, result.stderr


def test_parallel_demo_runs_and_reports_both_runs() -> None:
    result = _run([str(EXAMPLES / "parallel_demo.py"), "--tasks", "4", "--work", "0.02"])
    assert result.returncode == 0, result.stderr
    assert "GIL enabled: False" in result.stdout
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"\s+\d+\s+\d", line)]
    assert [row[0] for row in rows] == ["1", str(os.cpu_count() or 1)]


def test_every_example_has_expected_output() -> None:
    scripts = {p.name for p in EXAMPLES.glob("*.py")} - {"parallel_demo.py"}
    assert scripts == set(EXPECTED_OUTPUT), "add the new example's expected output to EXPECTED_OUTPUT"


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
def test_example_runs(name: str) -> None:
    script = EXAMPLES / name
    assert '"""' in script.read_text().split("\n", 1)[0], f"{name} starts with a module docstring"
    result = _run([str(script)])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for pattern in EXPECTED_OUTPUT[name]:
        assert any(re.search(pattern, line) for line in lines), f"{pattern!r} not in:\n{result.stdout}"


DOC_BLOCKS = _doc_blocks()


def test_docs_have_python_blocks() -> None:
    assert len(DOC_BLOCKS) >= 10, [name for name, _ in DOC_BLOCKS]


@pytest.mark.parametrize(("name", "code"), DOC_BLOCKS, ids=[name for name, _ in DOC_BLOCKS])
def test_docs_python_block_runs(name: str, code: str) -> None:
    result = _run(["-c", code])
    assert result.returncode == 0, f"{name} failed:\n{result.stderr}"


def test_api_reference_is_up_to_date() -> None:
    result = _run([str(DOCS / "gen_api.py"), "--check"])
    assert result.returncode == 0, result.stderr + result.stdout
