"""What the peer-suite runners (``anyio_suite``, ``redis_suite``) share: fetching a peer's
sdist once, and reading pytest's junit XML back into pytest test ids and outcomes."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path


def fetch_sdist(name: str, version: str, cache: Path, *, marker: str, drop: str | None = None) -> Path:
    """The unpacked sdist of ``name==version`` under ``cache`` (downloaded from the configured
    package index once; ``marker`` is a file that shows it is complete). ``drop`` removes a
    directory from the copy (the package itself, so the installed one is what runs)."""
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
