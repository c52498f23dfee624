"""Finds the services the tests need, or brings them up, or says exactly what is missing.

    python integration/services.py [status]   # what answers where
    python integration/services.py up         # start missing ones with Docker Compose if an
                                              # engine runs here; exit 1 if any is still missing

Redis and PostgreSQL are required (addresses from ``MANYIO_REDIS_URL`` and ``MANYIO_PG_DSN``,
defaults 127.0.0.1:6379 and :5432). The HTTP servers are optional: the tests start their own
unless ``MANYIO_HTTP_URL`` / ``MANYIO_HTTPS_URL`` name one, which must then answer. A port
that answers but not with the right protocol counts as missing (something else holds it).
Standard library only, so it runs before the project's environment exists.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

COMPOSE_FILE = Path(__file__).resolve().parent / "docker-compose.yml"


@dataclass(frozen=True)
class Service:
    name: str  # the compose service
    what: str
    env: str
    default: str | None  # None: optional, in-process servers are used when the variable is unset
    greeting: bytes | None  # sent after connecting; None: a TLS handshake instead
    answers: tuple[bytes, ...]  # accepted first bytes of the reply
    remedy: str  # what to do without Docker

    @property
    def url(self) -> str | None:
        return os.environ.get(self.env) or self.default

    def address(self) -> tuple[str, int]:
        assert self.url is not None
        parts = urlsplit(self.url)
        port = parts.port or {"http": 80, "https": 443, "redis": 6379, "rediss": 6379}.get(parts.scheme, 5432)
        return parts.hostname or "127.0.0.1", port

    def probe(self) -> str | None:
        """None when the service answers, else why not."""
        host, port = self.address()
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if self.greeting is None:
                    return _tls_handshake(s, host, port)
                s.sendall(self.greeting)
                reply = s.recv(16)
        except OSError as e:
            return f"nothing answers at {host}:{port} ({e.strerror or e})"
        if not reply.startswith(self.answers):
            return f"{host}:{port} answers, but not as {self.what} (replied {reply[:16]!r})"
        return None


def _tls_handshake(sock: socket.socket, host: str, port: int) -> str | None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # only "does it speak TLS"; the tests verify certificates
    try:
        ctx.wrap_socket(sock).close()
    except (ssl.SSLError, OSError) as e:
        return f"{host}:{port} answers, but no TLS handshake ({e})"
    return None


# PostgreSQL's SSLRequest: any server answers one byte, S or N, before authentication.
PG_SSL_REQUEST = struct.pack("!ii", 8, 80877103)
SERVICES = [
    Service("redis", "Redis", "MANYIO_REDIS_URL", "redis://127.0.0.1:6379/9", b"PING\r\n", (b"+PONG",),
            "or start one: apt-get install redis-server"),
    Service("postgres", "PostgreSQL", "MANYIO_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test",
            PG_SSL_REQUEST, (b"S", b"N"),
            "or start one: apt-get install postgresql (trust auth, database 'test')"),
    Service("http", "an HTTP server", "MANYIO_HTTP_URL", None,
            b"HEAD / HTTP/1.0\r\n\r\n", (b"HTTP/",), "or unset it: the tests then start their own"),
    Service("http", "a TLS server", "MANYIO_HTTPS_URL", None,
            None, (), "or unset it: the tests then start their own"),
]  # fmt: skip


def missing() -> dict[Service, str]:
    return {s: why for s in SERVICES if s.url and (why := s.probe())}


def status() -> int:
    gone = missing()
    for s in SERVICES:
        if not s.url:
            print(f"  {s.what:<15} {s.env} unset: the tests start their own")
        elif s in gone:
            print(f"  {s.what:<15} MISSING: {gone[s]}")
        else:
            print(f"  {s.what:<15} ok at {':'.join(map(str, s.address()))}")
    return 1 if gone else 0


def compose_command() -> list[str] | None:
    """``docker compose`` (or ``docker-compose``) when a container engine answers here."""
    if shutil.which("docker") is None:
        return None
    if subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        return None  # a client without a running engine
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def up() -> int:
    gone = missing()
    if not gone:
        return status()
    compose = compose_command()
    if compose is not None:
        names = sorted({s.name for s in gone})
        print(f"starting {', '.join(names)} with {' '.join(compose)} ({COMPOSE_FILE})", flush=True)
        cmd = [*compose, "-f", str(COMPOSE_FILE), "up", "-d", "--wait", *names]
        if subprocess.run(cmd).returncode == 0:
            deadline = time.monotonic() + 60
            while (gone := missing()) and time.monotonic() < deadline:
                time.sleep(1)
    if gone:
        print("Services the tests need are missing:", file=sys.stderr)
        for s, why in gone.items():
            print(f"  {s.what}: {why}.", file=sys.stderr)
            print(f"    Point {s.env} at one, {s.remedy}", file=sys.stderr)
        if compose is None:
            print(
                f"  No container engine here; with one, `docker compose -f {COMPOSE_FILE} up -d` starts all.",
                file=sys.stderr,
            )
        return 1
    return status()


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "status"
    if command not in ("status", "up"):
        sys.exit(__doc__)
    sys.exit(up() if command == "up" else status())
