"""httpx: ``httpx.AsyncClient``, unmodified, on manyio vs asyncio and uvloop (issue 7).

64 tasks share one client (keep-alive pool of 64 connections) and split N GETs of a 1 KiB body
from nginx on loopback between them, checking every body. Implementations: ``asyncio`` and
``uvloop`` run the tasks with ``asyncio.gather`` (httpx's default transport, httpcore on
AnyIO); ``manyio`` runs the same client code in manyio tasks (``manyio_httpx.patch()``), in
parallel on the workers; ``uvloop+pool-fixes`` is uvloop with manyio-httpx's fixes to
httpcore's pool bookkeeping (``manyio_httpx._pool``, not tied to manyio), to show what the
runtime adds beyond them; ``wrk`` (C, 64 keep-alive connections, one thread per runtime
thread, stopping after N responses) on the same nginx is the ceiling.

The nginx is private: :func:`service` starts it from Debian's binary (``/usr/sbin/nginx``;
``apt-get install nginx-light wrk``) with a configuration of its own on a free loopback port,
one worker process, access log off.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

# Imported before the timed call (the cell times only the run), as an application would have.
import httpx as _httpx

NAME = "httpx"
TASKS = 64
BODY = bytes(i % 251 for i in range(1024))
URL_ENV = "MANYIO_BENCH_HTTP_URL"


def cases(quick: bool) -> list[tuple[int, dict[str, Any], str]]:
    size = 20_000 if quick else 100_000
    return [(size, {}, f"{size // 1000}k GETs of 1 KiB")]


def verify(result: Any, size: int, params: dict[str, Any]) -> None:
    assert result == size // TASKS * TASKS, (result, size)


def _url() -> str:
    return os.environ[URL_ENV] + "/1k"


def _limits() -> Any:
    return _httpx.Limits(max_connections=TASKS, max_keepalive_connections=TASKS)


def prepare(impl: str) -> None:
    """Patches httpx for manyio before the clock starts (httpx itself is imported above)."""
    if impl == "manyio":
        import manyio_httpx

        manyio_httpx.patch()


async def _task(client: Any, url: str, n: int) -> int:
    for _ in range(n):
        r = await client.get(url)
        assert r.status_code == 200 and r.content == BODY
    return n


async def main_asyncio(size: int, params: dict[str, Any]) -> int:
    import asyncio

    async with _httpx.AsyncClient(limits=_limits()) as client:
        counts = await asyncio.gather(*(_task(client, _url(), size // TASKS) for _ in range(TASKS)))
    return sum(counts)


async def main_asyncio_fixed_pool(size: int, params: dict[str, Any]) -> int:
    """asyncio/uvloop with manyio-httpx's pool bookkeeping fixes only (they are not tied to
    manyio): shows what the runtime adds beyond them."""
    from manyio_httpx import _pool

    _pool.install()
    return await main_asyncio(size, params)


async def main_manyio(size: int, params: dict[str, Any]) -> int:
    import manyio
    import manyio_httpx

    manyio_httpx.patch()
    async with _httpx.AsyncClient(limits=_limits()) as client:
        async with manyio.TaskGroup() as tg:
            tasks = [tg.spawn(_task(client, _url(), size // TASKS)) for _ in range(TASKS)]
    return sum(t.result() for t in tasks)


# Each wrk thread stops after its share of responses and says so by creating a file; wrk's
# main thread would wait out the whole duration, so the cell interrupts it (SIGINT: wrk stops
# and prints its summary) once every thread is done.
_WRK_STOP_AFTER = """
local threads = 0
function setup(thread)
    thread:set("id", threads)
    threads = threads + 1
end

local done = 0
local limit = tonumber(os.getenv("MANYIO_WRK_REQUESTS"))
function response(status, headers, body)
    if status ~= 200 then error("status " .. status) end
    done = done + 1
    if done == limit then
        wrk.thread:stop()
        io.open(os.getenv("MANYIO_WRK_DONE") .. id, "w"):close()
    end
end
"""


def wrk(threads: int, size: int, params: dict[str, Any]) -> int:
    """The ceiling: wrk (64 keep-alive connections, ``threads`` threads), each thread stopping
    after its share of ``size`` responses. A plain function: runtime "threading"."""
    binary = shutil.which("wrk")
    if binary is None:
        raise ImportError("wrk is not installed (apt-get install wrk)")
    per_thread = size // TASKS * TASKS // threads
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "stop.lua")
        with open(script, "w") as f:
            f.write(_WRK_STOP_AFTER)
        env = {**os.environ, "MANYIO_WRK_REQUESTS": str(per_thread), "MANYIO_WRK_DONE": f"{tmp}/done-"}
        cmd = [binary, "-t", str(threads), "-c", str(TASKS), "-d", "600s", "-s", script, _url()]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        while sum(name.startswith("done-") for name in os.listdir(tmp)) < threads:
            if proc.poll() is not None:
                raise RuntimeError(f"wrk exited early: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.001)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    match = re.search(r"(\d+) requests in", out)
    assert match, out
    assert int(match.group(1)) >= per_thread * threads, out
    return per_thread * threads


VARIANTS = {
    "asyncio": ("asyncio", main_asyncio),
    "uvloop": ("uvloop", main_asyncio),
    "uvloop+pool-fixes": ("uvloop", main_asyncio_fixed_pool),
    "manyio": ("manyio", main_manyio),
    "wrk": ("threading", wrk),
}


_NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root}/www;
        location / {{ }}
    }}
}}
"""


@contextlib.contextmanager
def service() -> Iterator[dict[str, str]]:
    """A private nginx serving ``/1k`` (the 1 KiB body); yields the cells' environment."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        raise SystemExit("the httpx workload needs nginx: apt-get install nginx-light wrk")
    with tempfile.TemporaryDirectory(prefix="manyio-nginx-") as root:
        os.chmod(root, 0o755)  # nginx's workers run as an unprivileged user when we are root
        os.mkdir(f"{root}/www", 0o755)
        with open(f"{root}/www/1k", "wb") as f:
            f.write(BODY)
        os.chmod(f"{root}/www/1k", 0o644)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        conf = f"{root}/nginx.conf"
        with open(conf, "w") as f:
            f.write(_NGINX_CONF.format(root=root, port=port))
        proc = subprocess.Popen([binary, "-c", conf, "-p", root, "-e", f"{root}/error.log"])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"nginx did not start: see {root}/error.log") from None
                    time.sleep(0.05)
            yield {URL_ENV: f"http://127.0.0.1:{port}"}
        finally:
            proc.terminate()
            proc.wait(10)
