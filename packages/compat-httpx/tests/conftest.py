"""Fixtures: HTTP servers the tests start themselves (Hypercorn in a subprocess: HTTP/1.1 in
the clear, HTTP/1.1 + HTTP/2 over TLS, a Unix socket, and a second server that demands client
certificates), an HTTP CONNECT proxy, and a misbehaving server for fault tests."""

from __future__ import annotations

import json
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import manyio_httpx
import pytest
import trustme

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the tests import the server's body_for (pytest's importlib mode)

manyio_httpx.patch()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the test HTTP server exited: {log.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"the test HTTP server did not listen on {port}: {log.read_text()[-2000:]}")


@dataclass
class Servers:
    http: str  # http://127.0.0.1:PORT
    https: str  # https://localhost:PORT (HTTP/1.1 and HTTP/2)
    mtls: str  # https://localhost:PORT, client certificate required
    unix_path: str
    ca: trustme.CA
    client_cert: trustme.LeafCert

    def ssl_context(self, *, client_cert: bool = False) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if client_cert:
            self.client_cert.configure_cert(ctx)
        return ctx


def _start(config: dict[str, object], root: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    cfg = root / f"{name}.json"
    cfg.write_text(json.dumps(config))
    log = root / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "manyio_httpx_test_server.py"), str(cfg)], stdout=out, stderr=out
        )
    return proc, log


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    root = tmp_path_factory.mktemp("http")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client@manyio.test")
    certfile, keyfile, cafile = root / "server.pem", root / "server.key", root / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    plain, tls, mtls_plain, mtls = (_free_port() for _ in range(4))
    unix_path = str(root / "http.sock")
    common = {"certfile": str(certfile), "keyfile": str(keyfile)}
    procs = [
        _start({"plain": plain, "tls": tls, "unix": unix_path, **common}, root, "main"),
        _start({"plain": mtls_plain, "tls": mtls, "ca_certs": str(cafile), **common}, root, "mtls"),
    ]
    try:
        _wait_for_port(tls, *procs[0])
        _wait_for_port(plain, *procs[0])
        _wait_for_port(mtls, *procs[1])
        yield Servers(
            http=f"http://127.0.0.1:{plain}",
            https=f"https://localhost:{tls}",
            mtls=f"https://localhost:{mtls}",
            unix_path=unix_path,
            ca=ca,
            client_cert=client,
        )
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            proc.wait(10)


# --- an HTTP CONNECT proxy (threads and blocking sockets: independent of the code under test) ---


@dataclass
class Proxy:
    url: str
    tunnels: list[str]


def _pipe(a: socket.socket, b: socket.socket) -> None:
    try:
        while True:
            readable, _, _ = select.select([a, b], [], [], 30)
            if not readable:
                return
            for src in readable:
                data = src.recv(65536)
                if not data:
                    return
                (b if src is a else a).sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def _tunnel(client: socket.socket, tunnels: list[str]) -> None:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(4096)
        if not chunk:
            client.close()
            return
        head += chunk
    method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
    if method != "CONNECT":
        client.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        client.close()
        return
    host, port = target.rsplit(":", 1)
    tunnels.append(target)
    try:
        upstream = socket.create_connection((host, int(port)), timeout=5)
    except OSError:
        client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        client.close()
        return
    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
    _pipe(client, upstream)


@pytest.fixture(scope="session")
def connect_proxy() -> Iterator[Proxy]:
    listener = socket.create_server(("127.0.0.1", 0))
    tunnels: list[str] = []

    def serve() -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=_tunnel, args=(client, tunnels), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield Proxy(url=f"http://127.0.0.1:{listener.getsockname()[1]}", tunnels=tunnels)
    listener.close()


# --- a server that misbehaves on purpose ---


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """``raw_server(handler)`` -> ``http://127.0.0.1:PORT``; ``handler(conn)`` runs in a thread for
    every connection, with the request already read."""
    listeners: list[socket.socket] = []

    def start(handler: Callable[[socket.socket], None]) -> str:
        listener = socket.create_server(("127.0.0.1", 0))
        listeners.append(listener)

        def run(conn: socket.socket) -> None:
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    data += chunk
                handler(conn)

        def serve() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=run, args=(conn,), daemon=True).start()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{listener.getsockname()[1]}"

    yield start
    for listener in listeners:
        listener.close()
