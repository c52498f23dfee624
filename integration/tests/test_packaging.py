"""The five packages build as wheels, install with ``pip install --find-links WHEELHOUSE
"manyio[all]"`` into a clean 3.14t virtualenv, and work there: imports without the GIL,
``manyio.compat.patch_all()``, ``anyio.run(..., backend="manyio")`` and every program in
examples/, all run from a directory outside the repository against the installed wheels.

The wheelhouse comes from ``scripts/build-wheels.sh``, which reuses the release build of
``./dev setup`` in target/ (a few seconds when that build is current). The install goes
through uv's pip interface so that third-party packages come from uv's cache when ``./dev
setup`` put them there (it tries ``--offline`` first) and from the package index otherwise;
their versions are constrained to uv.lock's, the ones the rest of the suite tests.
"""

from __future__ import annotations

import configparser
import email.parser
import functools
import json
import os
import re
import shutil
import subprocess
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_WHEELS = ROOT / "scripts" / "build-wheels.sh"
FIND_PYTHON = ROOT / "scripts" / "find-python.sh"
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
EXAMPLE_ARGS = {"parallel_demo.py": ["--tasks", "4", "--work", "0.02"]}

DISTS = ("manyio", "manyio-httpx", "manyio-redis", "manyio-asyncpg", "manyio-anyio")
ADAPTERS = {name: f"manyio_{name}" for name in ("httpx", "redis", "asyncpg", "anyio")}
# Distributions with a Rust extension: its module inside the package.
NATIVE = {"manyio": "manyio/_core", "manyio-redis": "manyio_redis/_resp"}

# A cold machine compiles the Rust crate here (under a minute on 2 cores); warm, it is seconds.
pytestmark = pytest.mark.timeout(1200)


def _run(cmd: list[str], *, timeout: float = 600, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]


def _uv() -> str:
    """The uv that ./dev setup uses: on PATH, else the one it installs into its cache."""
    cache = Path(os.environ.get("MANYIO_CACHE", Path.home() / ".cache" / "manyio"))
    uv = shutil.which("uv") or str(cache / "tools" / "bin" / "uv")
    assert Path(uv).is_file(), f"no uv at {uv}: run ./dev setup"
    return uv


def _clean_env() -> dict[str, str]:
    """The environment for programs in the test venv: nothing that points Python elsewhere,
    and no PYTHON_GIL, which would hide an extension that turns the GIL back on."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHON_GIL", "VIRTUAL_ENV", "UV_PYTHON"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@functools.cache
def _wheel_meta(wheel: Path) -> tuple[email.message.Message, email.message.Message, dict[str, str], set[str]]:
    """(METADATA, WHEEL, RECORD hashes by path, names) of a wheel."""
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = email.parser.Parser().parsestr(z.read(f"{info}/METADATA").decode())
        tags = email.parser.Parser().parsestr(z.read(f"{info}/WHEEL").decode())
        record = {}
        for line in z.read(f"{info}/RECORD").decode().splitlines():
            path, digest, _size = line.rsplit(",", 2)
            if digest:
                record[path] = digest
    return meta, tags, record, names


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheel paths by distribution name, freshly built by scripts/build-wheels.sh."""
    out = tmp_path_factory.mktemp("wheelhouse")
    t0 = time.perf_counter()
    proc = _run(["bash", str(BUILD_WHEELS), str(out)], timeout=1500, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    print(f"build-wheels.sh: {time.perf_counter() - t0:.1f}s")
    found: dict[str, Path] = {}
    for whl in out.glob("*.whl"):
        name = _wheel_meta(whl)[0]["Name"]
        assert name not in found, f"two wheels of {name}: {found[name].name}, {whl.name}"
        found[name] = whl
    assert sorted(found) == sorted(DISTS), sorted(p.name for p in out.iterdir())
    return found


@pytest.fixture(scope="module")
def venv(wheels: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a clean 3.14t venv with ``manyio[all]`` installed from the wheelhouse."""
    uv = _uv()
    work = tmp_path_factory.mktemp("venv")
    py = _run(["bash", str(FIND_PYTHON)], timeout=1200).stdout.strip()
    assert py, "scripts/find-python.sh found no 3.14t"
    proc = _run([uv, "venv", "--no-config", "--python", py, str(work / "venv")], cwd=work)
    assert proc.returncode == 0, proc.stderr
    vpy = work / "venv" / "bin" / "python"

    # Third-party versions as locked (the adapters' own bounds still have to admit them).
    export = [uv, "export", "--frozen", "--no-hashes", "--no-header", "--no-annotate", "--no-emit-workspace"]
    export += ["--all-packages", "--all-extras", "--no-dev", "-o", str(work / "constraints.txt")]
    proc = _run(export, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    wheelhouse = next(iter(wheels.values())).parent
    version = _wheel_meta(wheels["manyio"])[0]["Version"]
    install = [uv, "pip", "install", "--no-config", "--python", str(vpy), "--find-links", str(wheelhouse)]
    install += ["--constraints", str(work / "constraints.txt"), f"manyio[all]=={version}"]
    env = _clean_env()
    offline = _run([*install, "--offline"], cwd=work, env=env)
    if offline.returncode != 0:  # something is not in uv's cache: fetch it
        online = _run(install, cwd=work, env=env)
        assert online.returncode == 0, offline.stderr + online.stderr
    return vpy


def _python(vpy: Path, code: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs ``code`` with the venv's python, from a directory outside the repository."""
    return _run([str(vpy), "-c", textwrap.dedent(code), *args], timeout=120, cwd=tmp_path, env=_clean_env())


def _assert_native_wheel(wheels: dict[str, Path], dist: str) -> tuple[email.message.Message, set[str]]:
    """A cp314t manylinux wheel holding one extension and its ``.pyi``; returns its metadata
    and file names."""
    meta, tags, _record, names = _wheel_meta(wheels[dist])
    for tag in tags.get_all("Tag") or []:
        python, abi, platform = tag.split("-")
        assert (python, abi) == ("cp314", "cp314t"), tag
        # PyPI takes manylinux wheels only (build-wheels.sh asks maturin for the tag it checks).
        assert platform.startswith("manylinux"), tag
    assert tags.get_all("Tag"), "no Tag in WHEEL"
    assert wheels[dist].name.endswith(f"-{tags['Tag']}.whl")
    module = NATIVE[dist]
    assert f"{module}.pyi" in names, f"{dist}: no {module}.pyi"
    extensions = [n for n in names if n.startswith(f"{module}.") and n.endswith(".so")]
    assert len(extensions) == 1 and ".cpython-314t-" in extensions[0], extensions
    assert not [n for n in names if "/tests/" in n or n.endswith((".rs", ".pyc"))], "stray files in the wheel"
    return meta, names


def test_core_wheel_is_a_cp314t_linux_wheel_with_types_and_extras(wheels: dict[str, Path]) -> None:
    meta, names = _assert_native_wheel(wheels, "manyio")
    assert "manyio/py.typed" in names
    assert meta["Requires-Python"] == ">=3.14" and meta["License-Expression"] and meta["Summary"]
    assert meta.get_payload().strip(), "no long description (readme)"
    assert {"httpx", "redis", "asyncpg", "anyio", "all"} <= set(meta.get_all("Provides-Extra") or [])
    requires = meta.get_all("Requires-Dist") or []
    for extra in ADAPTERS:
        for group in (extra, "all"):
            assert any(r.startswith(f"manyio-{extra}") and f"extra == '{group}'" in r for r in requires), (
                extra,
                group,
                requires,
            )


def test_adapter_wheels_have_entry_points_and_only_redis_is_native(wheels: dict[str, Path]) -> None:
    version = _wheel_meta(wheels["manyio"])[0]["Version"]
    for name, module in ADAPTERS.items():
        meta, tags, _record, names = _wheel_meta(wheels[f"manyio-{name}"])
        if f"manyio-{name}" in NATIVE:  # the RESP parser
            _assert_native_wheel(wheels, f"manyio-{name}")
        else:
            assert tags.get_all("Tag") == ["py3-none-any"], (name, tags.get_all("Tag"))
        assert meta["Version"] == version, f"manyio-{name} {meta['Version']} vs manyio {version}"
        assert f"{module}/__init__.py" in names and f"{module}/py.typed" in names, name
        assert not [n for n in names if "/tests/" in n], f"tests in the {name} wheel"
        info = f"{module}-{version}.dist-info"
        with zipfile.ZipFile(wheels[f"manyio-{name}"]) as z:
            entry_points = z.read(f"{info}/entry_points.txt").decode()
        parsed = configparser.ConfigParser(delimiters=("=",))
        parsed.read_string(entry_points)  # maturin writes "k=v", hatchling "k = v"
        assert parsed.get("manyio.compat", name, fallback=None) == f"{module}:patch", entry_points
        assert meta["Requires-Python"] == ">=3.14" and meta["License-Expression"] and meta["Summary"]
        assert meta.get_payload().strip(), f"manyio-{name}: no long description (readme)"
        requires = meta.get_all("Requires-Dist") or []
        core = [r for r in requires if re.match(r"manyio\s*[<>=!~]", r)]
        assert len(core) == 1 and "<" in core[0], f"manyio-{name}: manyio needs an upper bound: {requires}"


def test_installed_from_the_wheels_without_the_gil(
    venv: Path, wheels: dict[str, Path], tmp_path: Path
) -> None:
    proc = _python(
        venv,
        """
        import importlib.metadata as md, importlib.util, json, sys
        dists = sys.argv[1:]
        import manyio, manyio_httpx, manyio_redis, manyio_asyncpg, manyio_anyio
        mods = [manyio, manyio_httpx, manyio_redis, manyio_asyncpg, manyio_anyio]
        print(json.dumps({
            "gil": sys._is_gil_enabled(),
            "prefix": sys.prefix,
            "files": {m.__name__: m.__file__ for m in mods},
            "core": manyio._core.__file__,
            "path": sys.path,
            "hiredis": importlib.util.find_spec("hiredis") is not None
                or any(d.metadata["Name"] == "hiredis" for d in md.distributions()),
            "records": {d: md.distribution(d).read_text("RECORD") for d in dists},
            "versions": {d: md.version(d) for d in dists},
        }))
        """,
        tmp_path,
        *DISTS,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["gil"] is False, "importing the packages turned the GIL on"
    assert not got["hiredis"], "hiredis is installed: it turns the GIL back on"
    prefix = Path(got["prefix"])
    assert prefix == venv.parent.parent
    for module, file in [*got["files"].items(), ("manyio._core", got["core"])]:
        assert Path(file).is_relative_to(prefix), f"{module} imported from {file}, not the venv"
    assert not [p for p in got["path"] if p and Path(p).is_relative_to(ROOT)], got["path"]
    for dist, wheel in wheels.items():
        _meta, _tags, record, _names = _wheel_meta(wheel)
        assert got["versions"][dist] == _meta["Version"]
        installed = {}
        for line in got["records"][dist].splitlines():
            path, digest, _size = line.rsplit(",", 2)
            installed[path] = digest
        differ = [p for p, digest in record.items() if installed.get(p) != digest]
        assert not differ, f"{dist} installed files are not the wheel's: {differ[:5]}"


def test_patch_all_applies_every_installed_adapter(venv: Path, tmp_path: Path) -> None:
    proc = _python(
        venv,
        """
        import json, sys
        import manyio
        applied = manyio.compat.patch_all()
        print(json.dumps({
            "applied": applied,
            "available": {n: ep.value for n, ep in manyio.compat.available().items()},
            "loaded": sorted(m for m in sys.modules if m.startswith("manyio_") and "." not in m),
            "again": manyio.compat.patch_all(),
            "gil": sys._is_gil_enabled(),
        }))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["applied"] == sorted(ADAPTERS) == got["again"]
    assert got["available"] == {name: f"{module}:patch" for name, module in ADAPTERS.items()}
    assert got["loaded"] == sorted(ADAPTERS.values())
    assert got["gil"] is False


def test_anyio_run_on_the_manyio_backend(venv: Path, tmp_path: Path) -> None:
    # The backend is registered through manyio-anyio's "manyio.compat" entry point.
    proc = _python(
        venv,
        """
        import sys
        import anyio, manyio, sniffio
        manyio.compat.patch_all()

        async def child(results, i):
            await anyio.sleep(0.01)
            results.append(i)

        async def main():
            results = []
            async with anyio.create_task_group() as tg:
                for i in range(5):
                    tg.start_soon(child, results, i)
            with anyio.move_on_after(0.05) as scope:
                await anyio.sleep(10)
            return sniffio.current_async_library(), sorted(results), scope.cancelled_caught

        print(anyio.run(main, backend="manyio", backend_options={"threads": 2}))
        print(sys._is_gil_enabled())
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["('manyio', [0, 1, 2, 3, 4], True)", "False"], proc.stdout


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_runs_on_the_installed_packages(venv: Path, example: Path, tmp_path: Path) -> None:
    # MANYIO_REDIS_URL / MANYIO_PG_DSN pass through: the examples need Redis and PostgreSQL.
    args = EXAMPLE_ARGS.get(example.name, [])
    proc = _run([str(venv), str(example), *args], timeout=180, cwd=tmp_path, env=_clean_env())
    assert proc.returncode == 0, f"{example.name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip(), f"{example.name} printed nothing"
