"""manyio and every package of the workspace keep the GIL disabled on free-threaded Python."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig

import pytest

PACKAGES = ["manyio", "manyio_httpx", "manyio_redis", "manyio_asyncpg", "manyio_anyio"]

pytestmark = pytest.mark.timeout(120)


def test_interpreter_is_free_threaded() -> None:
    assert sysconfig.get_config_var("Py_GIL_DISABLED") == 1


def test_gil_is_disabled_after_importing_every_package() -> None:
    import manyio
    import manyio_anyio
    import manyio_asyncpg
    import manyio_httpx
    import manyio_redis

    assert all(m is not None for m in (manyio, manyio_httpx, manyio_redis, manyio_asyncpg, manyio_anyio))
    assert sys._is_gil_enabled() is False


def _fresh_python(code: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter with no PYTHON_GIL override: importing an extension that does not
    # declare free-threading support would turn the GIL back on there (with a warning).
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    return subprocess.run(
        [sys.executable, "-X", "dev", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.mark.parametrize("package", PACKAGES)
def test_importing_in_a_fresh_interpreter_keeps_the_gil_disabled(package: str) -> None:
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        f"import {package}\n"
        "print(sys._is_gil_enabled())\n"
    )
    proc = _fresh_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False", proc.stderr


def test_running_a_runtime_and_patching_keeps_the_gil_disabled() -> None:
    code = (
        "import sys\n" + "".join(f"import {p}\n" for p in PACKAGES) + "manyio.compat.patch_all()\n"
        "async def main():\n"
        "    async with manyio.TaskGroup() as tg:\n"
        "        for _ in range(4):\n"
        "            tg.start_soon(manyio.to_thread, sum, [1, 2])\n"
        "    return sys._is_gil_enabled()\n"
        "print(manyio.run(main, threads=2), sys._is_gil_enabled())\n"
    )
    proc = _fresh_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False", proc.stderr
