"""The machine's PostgreSQL: DSN from ``MANYIO_PG_DSN`` (default: 127.0.0.1:5432, database
``test``, user ``postgres``, trust auth), its Unix socket directory from ``MANYIO_PG_SOCKET_DIR``."""

from __future__ import annotations

import os

import manyio_asyncpg
import pytest

PG_DSN = os.environ.get("MANYIO_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
PG_SOCKET_DIR = os.environ.get("MANYIO_PG_SOCKET_DIR", "/var/run/postgresql")

manyio_asyncpg.patch()


@pytest.fixture
def dsn() -> str:
    return PG_DSN


@pytest.fixture
def plain_dsn() -> str:
    """The same server without TLS (the default ``sslmode=prefer`` upgrades when it can)."""
    return PG_DSN + ("&" if "?" in PG_DSN else "?") + "sslmode=disable"


@pytest.fixture
def pg_socket_dir() -> str:
    return PG_SOCKET_DIR
