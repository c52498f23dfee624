"""asyncpg, unmodified, on manyio: against the machine's PostgreSQL (MANYIO_PG_DSN). Async tests
run on a 2-thread manyio runtime."""

from __future__ import annotations

import asyncio
import io
import json
import random
import socket
import sys
import threading
import time

import asyncpg
import manyio
import pytest
from manyio_asyncpg import SerialLoop
from manyio_asyncpg._transport import StreamTransport


async def test_patch_is_registered_and_keeps_the_gil_off() -> None:
    assert "asyncpg" in manyio.compat.patch_all()
    assert "asyncpg.connection" in manyio.compat.patch("asyncpg")
    assert not sys._is_gil_enabled()


async def test_queries_run_over_manyio_sockets(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn)
    try:
        assert isinstance(con._transport, StreamTransport)
        assert isinstance(con._loop, SerialLoop)
        assert await con.fetchval("SELECT 1 + $1::int", 41) == 42
        row = await con.fetchrow("SELECT $1::text AS a, $2::int[] AS b", "x", [1, 2])
        assert (row["a"], row["b"]) == ("x", [1, 2])
        rows = await con.fetch("SELECT g FROM generate_series(1, 5000) g")
        assert [r[0] for r in rows] == list(range(1, 5001))
        big = await con.fetchval("SELECT repeat('y', 3000000)")
        assert big == "y" * 3_000_000
        await con.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, name text)")
        await con.executemany("INSERT INTO items VALUES ($1, $2)", [(i, f"n{i}") for i in range(500)])
        assert await con.fetchval("SELECT count(*) FROM items") == 500
        assert await con.execute("DELETE FROM items WHERE id < 100") == "DELETE 100"
        assert len(await con.fetchmany("SELECT $1::int", [(i,) for i in range(10)])) == 10
    finally:
        await con.close()
    assert con.is_closed()


async def test_tls_connection(dsn: str) -> None:
    con = await asyncpg.connect(dsn, ssl="require")
    try:
        ssl_object = con._transport.get_extra_info("ssl_object")
        assert ssl_object is not None and ssl_object.version().startswith("TLS")
        assert await con.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
        assert await con.fetchval("SELECT length(repeat('z', 1000000))") == 1_000_000
    finally:
        await con.close()


async def test_unix_socket(pg_socket_dir: str) -> None:
    con = await asyncpg.connect(host=pg_socket_dir, user="postgres", database="test")
    try:
        assert con._transport.get_extra_info("socket").family == socket.AF_UNIX
        assert await con.fetchval("SELECT 7") == 7
    finally:
        await con.close()


async def test_prepared_statements_and_cursors(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn)
    try:
        stmt = await con.prepare("SELECT g, g * $1::int AS twice FROM generate_series(1, $2::int) g")
        assert [a.name for a in stmt.get_attributes()] == ["g", "twice"]
        assert (await stmt.fetchrow(2, 3))["twice"] == 2
        assert len(await stmt.fetch(3, 100)) == 100
        assert await stmt.fetchval(5, 1, column=1) == 5
        async with con.transaction():
            seen = [r[0] async for r in con.cursor("SELECT generate_series(1, 1000)", prefetch=64)]
            assert seen == list(range(1, 1001))
            cur = await con.cursor("SELECT generate_series(1, 100)")
            assert [r[0] for r in await cur.fetch(3)] == [1, 2, 3]
            assert await cur.forward(10) == 10
            assert (await cur.fetchrow())[0] == 14
    finally:
        await con.close()


async def test_transactions_and_savepoints(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn)
    try:
        await con.execute("CREATE TEMP TABLE t (x int)")
        with pytest.raises(ZeroDivisionError):
            async with con.transaction():
                await con.execute("INSERT INTO t VALUES (1)")
                raise ZeroDivisionError
        assert await con.fetchval("SELECT count(*) FROM t") == 0
        async with con.transaction():
            await con.execute("INSERT INTO t VALUES (1)")
            try:
                async with con.transaction():  # a savepoint
                    await con.execute("INSERT INTO t VALUES (2)")
                    raise KeyError
            except KeyError:
                pass
            assert con.is_in_transaction()
        assert not con.is_in_transaction()
        assert [r[0] for r in await con.fetch("SELECT x FROM t")] == [1]
        tr = con.transaction(isolation="serializable", readonly=True)
        await tr.start()
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await con.execute("CREATE TABLE manyio_read_only_probe (x int)")
        await tr.rollback()
    finally:
        await con.close()


async def test_copy_in_and_out(plain_dsn: str, tmp_path) -> None:
    con = await asyncpg.connect(plain_dsn)
    try:
        await con.execute("CREATE TEMP TABLE c (id int, name text)")
        n = 20_000
        await con.copy_records_to_table("c", records=[(i, f"r{i}") for i in range(n)])
        assert await con.fetchval("SELECT count(*) FROM c") == n

        out = io.BytesIO()
        await con.copy_from_table("c", output=out, format="csv")
        lines = out.getvalue().decode().splitlines()
        assert len(lines) == n and lines[0] == "0,r0"

        path = tmp_path / "c.csv"
        await con.copy_from_query("SELECT * FROM c WHERE id < $1", 1000, output=str(path), format="csv")
        assert len(path.read_text().splitlines()) == 1000

        chunks: list[bytes] = []

        async def sink(data: bytes) -> None:
            chunks.append(bytes(data))

        await con.copy_from_query("SELECT * FROM c", output=sink)
        assert b"".join(chunks).count(b"\n") == n

        await con.execute("CREATE TEMP TABLE d (id int, name text)")
        await con.copy_to_table("d", source=str(path), format="csv")
        await con.copy_to_table("d", source=io.BytesIO(b"1,one\n2,two\n"), format="csv")

        async def rows():
            for i in range(3):
                yield f"{i}\tgen{i}\n".encode()

        await con.copy_to_table("d", source=rows())
        assert await con.fetchval("SELECT count(*) FROM d") == 1005
    finally:
        await con.close()


async def test_listen_notify_and_log_listeners(plain_dsn: str) -> None:
    listener = await asyncpg.connect(plain_dsn)
    sender = await asyncpg.connect(plain_dsn)
    try:
        got: list[tuple[str, str]] = []
        arrived = manyio.Event()

        def on_notify(con, pid, channel, payload):
            got.append((channel, payload))
            if len(got) == 3:
                arrived.set()

        await listener.add_listener("manyio_chan", on_notify)
        for i in range(3):
            await sender.execute(f"NOTIFY manyio_chan, 'p{i}'")
        with manyio.fail_after(5):
            await arrived.wait()
        assert got == [("manyio_chan", "p0"), ("manyio_chan", "p1"), ("manyio_chan", "p2")]
        await listener.remove_listener("manyio_chan", on_notify)

        messages: list[str] = []
        logged = manyio.Event()

        def on_log(con, message):
            messages.append(message.message)
            logged.set()

        listener.add_log_listener(on_log)
        await listener.execute("DO $$ BEGIN RAISE NOTICE 'hello from plpgsql'; END $$")
        with manyio.fail_after(5):
            await logged.wait()
        assert messages == ["hello from plpgsql"]
    finally:
        await listener.close()
        await sender.close()


async def test_custom_type_codecs(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn)
    try:
        await con.set_type_codec("json", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        value = {"a": [1, 2, {"b": None}]}
        assert await con.fetchval("SELECT $1::json", value) == value
    finally:
        await con.close()


async def test_command_timeout_and_per_call_timeout(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn, command_timeout=0.4)
    try:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await con.execute("SELECT pg_sleep(5)")
        assert 0.3 <= time.monotonic() - start < 1.5
        # The timeout sent PostgreSQL a cancel request: the connection serves again.
        assert await con.fetchval("SELECT 1") == 1
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            await con.fetchval("SELECT pg_sleep(5)", timeout=0.2)
        assert time.monotonic() - start < 1.5
        assert await con.fetchval("SELECT 2", timeout=2) == 2
    finally:
        await con.close()


async def test_cancelling_the_caller_cancels_the_query(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn)
    watcher = await asyncpg.connect(plain_dsn)
    try:
        pid = con.get_server_pid()
        start = time.monotonic()
        with manyio.move_on_after(0.3) as scope:
            await con.execute("SELECT pg_sleep(10)")
        assert scope.cancelled_caught
        assert await con.fetchval("SELECT 3") == 3  # waits for the cancel, then works
        assert time.monotonic() - start < 3
        state = await watcher.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid)
        assert "pg_sleep" not in state
    finally:
        await con.close()
        await watcher.close()


async def test_pool_acquire_release_callbacks_and_expiry(plain_dsn: str) -> None:
    inits: list[int] = []
    setups: list[int] = []

    async def init(con):
        inits.append(con.get_server_pid())

    async def setup(con):
        setups.append(con.get_server_pid())

    pool = await asyncpg.create_pool(plain_dsn, min_size=2, max_size=4, init=init, setup=setup)
    try:
        assert len(inits) == 2 and pool.get_size() == 2
        async with pool.acquire() as con:
            assert await con.fetchval("SELECT 5") == 5
            first_pid = con.get_server_pid()
        con = await pool.acquire()
        await pool.release(con)
        assert len(setups) == 2
        assert await pool.fetchval("SELECT 6") == 6
        assert await pool.fetchrow("SELECT 1 AS one") == (1,)
        await pool.expire_connections()
        async with pool.acquire() as con:
            assert con.get_server_pid() != first_pid
        assert pool.get_idle_size() == pool.get_size()
    finally:
        await pool.close()
    assert pool.is_closing()


async def test_pool_drops_inactive_connections(plain_dsn: str) -> None:
    pool = await asyncpg.create_pool(plain_dsn, min_size=0, max_size=2, max_inactive_connection_lifetime=0.2)
    try:
        await pool.fetchval("SELECT 1")
        assert pool.get_size() == 1
        with manyio.fail_after(3):
            while pool.get_size():
                await manyio.sleep(0.05)
        assert await pool.fetchval("SELECT 2") == 2
    finally:
        await pool.close()


@pytest.mark.manyio(threads=2)
async def test_ten_thousand_queries_on_a_pool_of_eight_with_random_cancellations(plain_dsn: str) -> None:
    pool = await asyncpg.create_pool(plain_dsn, min_size=8, max_size=8)
    rng = random.Random(7)
    results: dict[int, int] = {}
    cancelled: list[int] = []  # appends are atomic; ``+= 1`` from two workers is not
    threads: set[int] = set()

    async def query(i: int, deadline: float | None) -> None:
        with manyio.move_on_after(deadline if deadline is not None else 60) as scope:
            value = await pool.fetchval("SELECT $1::int * 2 + pg_backend_pid() * 0", i)
            threads.add(threading.get_ident())
            results[i] = value
        if scope.cancelled_caught:
            cancelled.append(i)

    try:
        async with manyio.TaskGroup() as tg:
            for i in range(10_000):
                deadline = rng.uniform(0.0, 0.02) if rng.random() < 0.1 else None
                tg.start_soon(query, i, deadline)
        assert cancelled
        assert len(results) + len(cancelled) == 10_000
        assert all(v == 2 * i for i, v in results.items())
        assert len(threads) == 2
        # Every connection went back to the pool in a usable state.
        values = await manyio_gather(*(pool.fetchval("SELECT $1::int", i) for i in range(200)))
        assert values == list(range(200))
        assert pool.get_idle_size() == pool.get_size() <= 8
    finally:
        await pool.close()


async def test_acquire_and_release_take_the_connections_lock_not_the_pools(plain_dsn: str) -> None:
    pool = await asyncpg.create_pool(plain_dsn, min_size=2, max_size=2)
    try:
        holders = pool._holders
        assert len({id(h._manyio_lock) for h in holders}) == 2
        for holder in holders:
            assert holder._con._loop.lock is holder._manyio_lock is not pool._loop.lock
        # Hold the pool's lock from a plain thread: acquiring, querying and releasing on the
        # workers must not wait for it.
        held, done = threading.Event(), threading.Event()

        def hold() -> None:
            with pool._loop.lock:
                held.set()
                done.wait(10)

        holder_thread = threading.Thread(target=hold)
        holder_thread.start()
        held.wait()
        try:
            with manyio.fail_after(5):
                values = await manyio_gather(*(pool.fetchval("SELECT $1::int", i) for i in range(50)))
        finally:
            done.set()
            holder_thread.join()
        assert values == list(range(50))
    finally:
        await pool.close()


@pytest.mark.manyio(threads=2)
async def test_a_connection_released_on_one_worker_and_acquired_on_another(plain_dsn: str) -> None:
    # Each release re-arms the slot's inactivity timer after putting the slot back; the next
    # user, maybe on the other worker, cancels it. Unserialized, the two overlap ("pool
    # connection inactivity timer already exists").
    pool = await asyncpg.create_pool(plain_dsn, min_size=2, max_size=2)
    threads: set[int] = set()

    async def user() -> None:
        for _ in range(150):
            async with pool.acquire():
                threads.add(threading.get_ident())

    try:
        async with manyio.TaskGroup() as tg:
            for _ in range(16):
                tg.start_soon(user)
        assert len(threads) == 2
        assert pool.get_idle_size() == pool.get_size() == 2
        for holder in pool._holders:
            assert holder._in_use is None and holder._inactive_callback is not None
    finally:
        await pool.close()


async def manyio_gather(*aws):
    out = [None] * len(aws)

    async def one(i, aw):
        out[i] = await aw

    async with manyio.TaskGroup() as tg:
        for i, aw in enumerate(aws):
            tg.start_soon(one, i, aw)
    return out


async def test_terminated_backend_raises_and_the_pool_replaces_it(plain_dsn: str) -> None:
    pool = await asyncpg.create_pool(plain_dsn, min_size=2, max_size=2)
    admin = await asyncpg.connect(plain_dsn)
    try:
        victim_pid: list[int] = []
        started = manyio.Event()

        async def busy() -> None:
            async with pool.acquire() as con:
                victim_pid.append(con.get_server_pid())
                started.set()
                await con.execute("SELECT pg_sleep(10)")

        task = manyio.spawn(busy())
        await started.wait()
        await manyio.sleep(0.2)
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim_pid[0])
        with manyio.fail_after(5):
            with pytest.raises((asyncpg.PostgresConnectionError, asyncpg.exceptions.AdminShutdownError)):
                await task
        pids = set()
        for _ in range(4):
            async with pool.acquire() as con:
                assert await con.fetchval("SELECT 1") == 1
                pids.add(con.get_server_pid())
        assert victim_pid[0] not in pids
    finally:
        await admin.close()
        await pool.close()


async def test_unreachable_server_names_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(OSError) as info:
        await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", database="test", timeout=5)
    assert f"('127.0.0.1', {port})" in str(info.value)
    assert time.monotonic() - start < 5


def test_asyncio_programs_keep_stock_asyncpg(plain_dsn: str) -> None:
    async def main() -> tuple[int, str]:
        con = await asyncpg.connect(plain_dsn)
        try:
            return await con.fetchval("SELECT 9"), type(con._transport).__module__
        finally:
            await con.close()

    value, transport_module = asyncio.run(main())
    assert value == 9
    assert not transport_module.startswith("manyio")


async def test_errors_reach_the_exception_handler_of_the_loop_given_to_connect(plain_dsn: str) -> None:
    from manyio import _aioshim

    class RecordingLoop(_aioshim._Loop):
        def __init__(self) -> None:
            self.contexts: list[dict[str, object]] = []

        def call_exception_handler(self, context: dict[str, object]) -> None:
            self.contexts.append(context)

    loop = RecordingLoop()
    con = await asyncpg.connect(plain_dsn, loop=loop)
    try:
        assert isinstance(con._loop, SerialLoop)
        tr = con.transaction()
        await tr.start()
        await con.reset()  # asyncpg reports the open transaction it rolls back to its loop
        expected = f"Resetting connection with an active transaction {con!r}"
        assert [c["message"] for c in loop.contexts] == [expected]
        assert await con.fetchval("SELECT 1") == 1
    finally:
        await con.close()


async def test_transport_write_buffer_limits(plain_dsn: str) -> None:
    con = await asyncpg.connect(plain_dsn)
    try:
        transport = con._transport
        assert transport.get_write_buffer_limits() == (16 * 1024, 64 * 1024)
        transport.set_write_buffer_limits(4 * 65536, 65536)
        assert transport.get_write_buffer_limits() == (65536, 4 * 65536)
        transport.set_write_buffer_limits(high=40_000)
        assert transport.get_write_buffer_limits() == (10_000, 40_000)
        with pytest.raises(ValueError):
            transport.set_write_buffer_limits(high=1, low=2)
        await con.execute("CREATE TEMP TABLE blobs (b text)")
        await con.executemany("INSERT INTO blobs VALUES ($1)", [("x" * 10_000,) for _ in range(200)])
        assert await con.fetchval("SELECT sum(length(b)) FROM blobs") == 2_000_000
    finally:
        await con.close()


async def test_close_while_a_cancel_request_is_pending(plain_dsn: str) -> None:
    # The background cancel request (a task of its own) and close() both change the
    # connection's set of pending cancellations: they must not race.
    for _ in range(20):
        con = await asyncpg.connect(plain_dsn, command_timeout=0.05)
        with pytest.raises(TimeoutError):
            await con.execute("SELECT pg_sleep(10)", timeout=0.01)
        await con.close(timeout=2)
        assert con.is_closed()
