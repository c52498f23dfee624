"""Fixtures: the machine's Redis (address from ``MANYIO_REDIS_URL``), and a private
redis-server with TLS and a Unix socket started by the tests themselves."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import manyio_redis
import pytest
import trustme

REDIS_URL = os.environ.get("MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9")

manyio_redis.patch()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PrivateRedis:
    tls_url: str
    unix_path: str
    ca_file: str
    client_cert: str
    client_key: str


@pytest.fixture(scope="session")
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    """A redis-server of our own: TLS on a loopback port (trustme certificates) and a Unix
    socket, no plain TCP port. Needs the ``redis-server`` binary the machine's Redis comes from."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH (install Debian's redis-server package)")
    root: Path = tmp_path_factory.mktemp("redis")
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1", "localhost")
    client_cert = ca.issue_cert("client@manyio.test")
    files = {
        "ca": root / "ca.pem",
        "cert": root / "server.pem",
        "key": root / "server.key",
        "client_cert": root / "client.pem",
        "client_key": root / "client.key",
    }
    ca.cert_pem.write_to_path(files["ca"])
    server_cert.cert_chain_pems[0].write_to_path(files["cert"])
    server_cert.private_key_pem.write_to_path(files["key"])
    client_cert.cert_chain_pems[0].write_to_path(files["client_cert"])
    client_cert.private_key_pem.write_to_path(files["client_key"])
    port = _free_port()
    unix_path = str(root / "redis.sock")
    proc = subprocess.Popen(
        [
            binary, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--unixsocket", unix_path, "--unixsocketperm", "700",
            "--tls-cert-file", str(files["cert"]), "--tls-key-file", str(files["key"]),
            "--tls-ca-cert-file", str(files["ca"]), "--tls-auth-clients", "optional",
            "--save", "", "--appendonly", "no", "--dir", str(root), "--logfile", str(root / "redis.log"),
        ],
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(unix_path):
            if proc.poll() is not None or time.monotonic() > deadline:
                log = (root / "redis.log").read_text() if (root / "redis.log").exists() else ""
                pytest.fail(f"the private redis-server did not start:\n{log}")
            time.sleep(0.02)
        yield PrivateRedis(
            tls_url=f"rediss://127.0.0.1:{port}/0",
            unix_path=unix_path,
            ca_file=str(files["ca"]),
            client_cert=str(files["client_cert"]),
            client_key=str(files["client_key"]),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
