"""Runs redis-py's own asyncio tests (``tests/test_asyncio``) on manyio and checks the record.

redis-py ships its tests in its sdist. This script fetches the sdist of the installed
version (once, cached), runs ``tests/test_asyncio`` with ``manyio_redis_suite_plugin`` (every
async test and fixture on a 2-thread manyio runtime, redis-py patched by manyio-redis, no
pytest-asyncio) against a private redis-server it starts (the machine's Redis binary, DEBUG
allowed, as the suite needs), and compares the outcome with ``known-failures.toml``.

Modules that need something other than one standalone server (a cluster, sentinels, Redis
Stack modules, the suite's own TLS setup, hiredis) are not run; tests the suite skips itself
(a newer server version, say) are reported apart and not counted.

    python integration/redis_suite/run.py             # run, compare, print a summary
    python integration/redis_suite/run.py --update    # also rewrite results.md

It exits non-zero if a test fails that is not listed (and fails again when run once more on
its own: one that passes then is reported as flaky), or if fewer than 95% pass.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

TARGET = 0.95
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from suite_record import (  # noqa: E402  (integration/suite_record.py)
    compare,
    counts_lines,
    failure_table,
    fetch_sdist,
    known_failures,
    outcomes,
    parse_args,
    pytest_command,
    run_again_alone,
    verdict,
)

REDIS_VERSION = version("redis")

# Not for one standalone server: module name -> why.
NOT_APPLICABLE = {
    "test_cluster.py": "needs a Redis Cluster",
    "test_cluster_transaction.py": "needs a Redis Cluster",
    "test_sentinel.py": "needs Redis Sentinels",
    "test_bloom.py": "needs the RedisBloom module (Redis Stack)",
    "test_json.py": "needs the RedisJSON module (Redis Stack)",
    "test_search.py": "needs the RediSearch module (Redis Stack)",
    "test_timeseries.py": "needs the RedisTimeSeries module (Redis Stack)",
    "test_vsets.py": "needs vector sets (Redis 8) and numpy",
    "test_ssl.py": "needs the suite's TLS server and certificates (manyio-redis tests TLS itself)",
    "test_himport_integration.py": "imports hiredis, which turns the GIL back on",
    "test_credentials.py": "imports redis-entraid (Microsoft Entra ID credentials) at module level",
    "test_scenario": "needs Redis Enterprise's fault injector",
    "test_multidb": "needs several Redis databases behind a failover setup",
    "test_observability": "needs OpenTelemetry's SDK",
}


def redis_sources() -> Path:
    """The unpacked redis-py sdist (downloaded from the configured package index once). The
    installed redis-py is what runs (and what manyio-redis patches): the sdist's own copy of
    the package is dropped, as it would shadow it from the suite's working directory."""
    return fetch_sdist("redis", REDIS_VERSION, marker="tests/test_asyncio/conftest.py", drop="redis")


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a free loopback port, configured as redis-py's suite expects
    (DEBUG allowed, nothing saved), so the suite can flush and reconfigure it freely. Without
    the redis-server binary, the server at MANYIO_REDIS_URL is used (database 0 is flushed)."""
    binary = shutil.which("redis-server")
    if binary is None:
        parsed = urlparse(os.environ.get("MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9"))
        yield f"redis://{parsed.hostname or '127.0.0.1'}:{parsed.port or 6379}/0"
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--enable-debug-command", "yes",
             "--save", "", "--appendonly", "no", "--dir", tmp, "--logfile", f"{tmp}/redis.log"],
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"redis-server did not start on port {port}") from None
                    time.sleep(0.05)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def suite_files(sources: Path) -> list[str]:
    # Test files named one by one: given the directory, pytest would import the conftest of
    # every test_* subdirectory, not-applicable ones included.
    suite = sources / "tests" / "test_asyncio"
    files = (p for p in suite.glob("test_*.py") if p.name not in NOT_APPLICABLE)
    return sorted(str(p.relative_to(sources)) for p in files)


def run_suite(sources: Path, junit: Path, url: str, targets: list[str], extra: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(sources)])}
    cmd = pytest_command(
        "manyio_redis_suite_plugin", targets, junit, "-m", "not onlycluster and not redismod and not ssl",
        f"--redis-url={url}", "-p", "no:asyncio", "-o", "log_cli=false", *extra,
    )  # fmt: skip
    subprocess.run(cmd, cwd=sources, env=env, check=False)


def main() -> int:
    args = parse_args(__doc__)

    known = known_failures(HERE)
    sources = redis_sources()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        with redis_server() as url:

            def run(targets: list[str], junit: Path) -> None:
                run_suite(sources, junit, url, targets, args.pytest_args)

            run(suite_files(sources), junit)
            results, skips = outcomes(junit, sources)
            again = run_again_alone(run, sources, Path(tmp))
            title = f"redis-py {REDIS_VERSION} tests/test_asyncio on manyio"
            listed, rate, flaky = compare(title, results, known, again)
    if args.update:
        write_results(results, {**flaky, **known}, skips, rate)
    return verdict(listed, rate, TARGET)


def write_results(results: dict[str, str], known: dict[str, str], skips: dict[str, str], rate: float) -> None:
    lines = [
        f"# redis-py {REDIS_VERSION}'s asyncio tests on manyio",
        "",
        "Generated by `python integration/redis_suite/run.py --update`; the CI test",
        "(`integration/tests/test_redis_suite.py`) reruns the suite and checks it.",
        "",
        f"- tests collected from `tests/test_asyncio`: {len(results)}",
        *counts_lines(results, skips, rate),
        "",
        "Modules not run (they need more than one standalone Redis server):",
        "",
        *(f"- `{name}`: {why}" for name, why in NOT_APPLICABLE.items()),
        "",
        *failure_table(results, known),
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
