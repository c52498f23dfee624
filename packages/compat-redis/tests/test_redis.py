"""redis.asyncio, unmodified, on manyio: against the machine's Redis (MANYIO_REDIS_URL) and a
private TLS + Unix-socket server. Async tests run on a 2-thread manyio runtime."""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import manyio
import pytest
import redis
import redis.asyncio as aredis
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def _key(name: str) -> str:
    return f"manyio-test:{name}:{uuid.uuid4().hex[:8]}"


def _no_retry() -> Retry:
    return Retry(NoBackoff(), 0)


async def test_patch_is_registered_and_keeps_the_gil_off() -> None:
    assert "redis" in manyio.compat.patch_all()
    assert "redis.asyncio.connection" in manyio.compat.patch("redis")
    assert "hiredis" not in sys.modules
    assert not sys._is_gil_enabled()


async def test_set_get_and_types(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url, socket_timeout=2.0) as r:
        k = _key("basic")
        assert await r.set(k, "v", ex=30)
        assert await r.get(k) == b"v"
        assert await r.incrby(k + ":n", 5) == 5
        await r.hset(k + ":h", mapping={"a": "1", "b": "2"})
        assert await r.hgetall(k + ":h") == {b"a": b"1", b"b": b"2"}
        await r.rpush(k + ":l", *range(100))
        assert await r.llen(k + ":l") == 100
        big = random.randbytes(3_000_000)  # several reads, bigger than any socket buffer
        await r.set(k + ":big", big)
        assert await r.get(k + ":big") == big
        assert await r.delete(k, k + ":n", k + ":h", k + ":l", k + ":big") == 5


async def test_two_hundred_tasks_share_one_client_across_workers(redis_url: str) -> None:
    threads: set[int] = set()
    pool = aredis.BlockingConnectionPool.from_url(redis_url, max_connections=32, timeout=10)
    async with aredis.Redis(connection_pool=pool) as r:
        prefix = _key("shared")

        async def worker(i: int) -> None:
            for j in range(20):
                threads.add(threading.get_ident())
                value = f"{i}-{j}-{random.random()}"
                await r.set(f"{prefix}:{i}", value)
                assert await r.get(f"{prefix}:{i}") == value.encode()
                # Some CPU between round trips, so tasks really overlap on both workers.
                sum(range(2000))
            await r.delete(f"{prefix}:{i}")

        async with manyio.TaskGroup() as tg:
            for i in range(200):
                tg.start_soon(worker, i)
        assert len(pool._in_use_connections) == 0
        assert 1 <= len(pool._available_connections) <= 32
    assert len(threads) == 2


async def test_pipelines_transactions_and_watch(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url) as r:
        k = _key("pipe")
        async with r.pipeline(transaction=False) as p:
            for i in range(16):
                p.set(f"{k}:{i}", i)
            for i in range(16):
                p.get(f"{k}:{i}")
            results = await p.execute()
        assert results[:16] == [True] * 16
        assert results[16:] == [str(i).encode() for i in range(16)]

        async with r.pipeline(transaction=True) as p:
            results = await p.incr(k).incr(k).get(k).execute()
        assert results == [1, 2, b"2"]

        # WATCH: a concurrent write aborts the transaction, the retry succeeds.
        attempts = 0

        async def bump(pipe: aredis.client.Pipeline) -> None:
            nonlocal attempts
            attempts += 1
            current = int(await pipe.get(k))
            if attempts == 1:
                await r.set(k, 100)  # another client changes the watched key
            pipe.multi()
            pipe.set(k, current + 1)

        await r.transaction(bump, k)
        assert attempts == 2
        assert await r.get(k) == b"101"
        await r.delete(k, *(f"{k}:{i}" for i in range(16)))


async def test_pubsub_subscribe_psubscribe_listen_and_sharded(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url) as r:
        channel = _key("chan")
        async with r.pubsub() as ps:
            await ps.subscribe(channel)
            await ps.psubscribe(channel + ":*")
            message = await ps.get_message(timeout=1.0)
            assert message["type"] == "subscribe"
            message = await ps.get_message(timeout=1.0)
            assert message["type"] == "psubscribe"
            assert await ps.get_message(timeout=0.05) is None

            async def publish() -> None:
                await manyio.sleep(0.05)
                await r.publish(channel, "one")
                await r.publish(channel + ":x", "two")
                await r.publish(channel, "stop")

            seen = []
            async with manyio.TaskGroup() as tg:
                tg.start_soon(publish)
                async for message in ps.listen():
                    if message["type"] in ("message", "pmessage"):
                        seen.append((message["type"], message["data"]))
                        if message["data"] == b"stop":
                            break
            assert seen == [("message", b"one"), ("pmessage", b"two"), ("message", b"stop")]

        async with r.pubsub() as ps:
            await ps.ssubscribe(channel)
            assert (await ps.get_message(timeout=1.0))["type"] == "ssubscribe"
            await r.spublish(channel, "sharded")
            message = await ps.get_message(timeout=1.0)
            assert message["type"] == "smessage" and message["data"] == b"sharded"


async def test_one_pubsub_shared_by_tasks_on_both_workers(redis_url: str) -> None:
    # A PubSub is a serial domain, as under asyncio: while a handler of its run() holds one
    # worker (0.1 s), a subscribe() from a task on the other worker waits for it instead of
    # changing the subscriptions under it; then run() delivers to the late subscriptions.
    async with aredis.Redis.from_url(redis_url) as r, r.pubsub() as ps:
        base = _key("shared-pubsub")
        in_handler = threading.Event()
        seen_by_handler: list[tuple[set[bytes], set[bytes]]] = []
        late = [f"{base}:late:{i}" for i in range(20)]
        got: list[bytes] = []
        all_got = manyio.Event()

        def slow_handler(message: dict[str, Any]) -> None:
            before = set(ps.channels)
            in_handler.set()
            time.sleep(0.1)  # holds this worker; the other one runs the subscriber
            seen_by_handler.append((before, set(ps.channels)))

        def collect(message: dict[str, Any]) -> None:
            got.append(message["channel"])
            if len(got) == len(late):
                all_got.set()

        async def subscribed(*channels: str) -> None:
            while any(n != 1 for _, n in await r.pubsub_numsub(*channels)):
                await manyio.sleep(0.005)

        await ps.subscribe(**{f"{base}:slow": slow_handler})
        async with manyio.TaskGroup() as tg:
            tg.start_soon(ps.run)
            await subscribed(f"{base}:slow")
            await r.publish(f"{base}:slow", "hold the worker")
            assert await manyio.to_thread(in_handler.wait, 10)
            await ps.subscribe(**dict.fromkeys(late, collect))
            await subscribed(*late)
            for channel in late:
                await r.publish(channel, "hello")
            with manyio.fail_after(10):
                await all_got.wait()
            tg.cancel_scope.cancel()
        assert len(seen_by_handler) == 1
        before, after = seen_by_handler[0]
        assert before == after == {f"{base}:slow".encode()}
        assert sorted(got) == sorted(channel.encode() for channel in late)


async def test_lock_excludes_tasks_on_both_workers(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url) as r:
        name = _key("lock")
        inside = 0
        most = 0

        async def critical() -> None:
            nonlocal inside, most
            async with r.lock(name, timeout=5, sleep=0.001, blocking_timeout=10):
                inside += 1
                most = max(most, inside)
                await manyio.sleep(0.002)
                inside -= 1

        async with manyio.TaskGroup() as tg:
            for _ in range(20):
                tg.start_soon(critical)
        assert most == 1

        held = r.lock(name, timeout=5)
        assert await held.acquire()
        start = time.monotonic()
        assert not await r.lock(name, sleep=0.01).acquire(blocking_timeout=0.2)
        assert 0.15 < time.monotonic() - start < 1.0
        await held.release()


async def test_blocking_commands_with_timeouts(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url, socket_timeout=5.0) as r:
        k = _key("blocking")
        start = time.monotonic()
        assert await r.blpop([k], timeout=0.3) is None
        assert 0.25 < time.monotonic() - start < 2.0

        async def push_later() -> None:
            await manyio.sleep(0.1)
            await r.rpush(k, "x")
            await r.xadd(k + ":s", {"f": "v"})

        async with manyio.TaskGroup() as tg:
            tg.start_soon(push_later)
            assert await r.blpop([k], timeout=2) == (k.encode(), b"x")
            streams = await r.xread({k + ":s": "0-0"}, block=2000)
        assert streams[0][1][0][1] == {b"f": b"v"}
        assert await r.xread({k + ":s": "$"}, block=200) == []
        await r.delete(k + ":s")


async def test_scripts(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url) as r:
        k = _key("script")
        add = r.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        assert await add(keys=[k], args=[5]) == 5
        await r.script_flush()
        assert await add(keys=[k], args=[5]) == 10  # NOSCRIPT is handled by reloading
        assert await r.eval("return {KEYS[1], ARGV[1]}", 1, "a", "b") == [b"a", b"b"]
        await r.delete(k)


@pytest.mark.parametrize("protocol", [2, 3])
async def test_resp2_and_resp3(redis_url: str, protocol: int) -> None:
    async with aredis.Redis.from_url(redis_url, protocol=protocol, decode_responses=True) as r:
        k = _key("resp")
        await r.hset(k, mapping={"a": "1"})
        assert await r.hgetall(k) == {"a": "1"}
        hello = await r.execute_command("HELLO")
        if isinstance(hello, list):  # RESP2 has no maps: a flat key, value list
            hello = dict(zip(hello[::2], hello[1::2], strict=True))
        assert hello["proto"] == protocol
        await r.delete(k)


async def test_tls_with_verification_and_client_certificate(private_redis) -> None:
    url = f"{private_redis.tls_url}?ssl_ca_certs={private_redis.ca_file}"
    async with aredis.Redis.from_url(url) as r:
        assert await r.ping()
        await r.set("tls", "yes")
        assert await r.get("tls") == b"yes"
        info = await r.client_info()
        assert info["fd"]  # served on the TLS port
    async with aredis.Redis.from_url(
        private_redis.tls_url,
        ssl_ca_certs=private_redis.ca_file,
        ssl_certfile=private_redis.client_cert,
        ssl_keyfile=private_redis.client_key,
    ) as r:
        assert await r.ping()
    # Without our CA the server certificate does not verify.
    async with aredis.Redis.from_url(private_redis.tls_url, retry=_no_retry()) as r:
        with pytest.raises(redis.ConnectionError) as info:
            await r.ping()
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value)


async def test_unix_socket(private_redis) -> None:
    async with aredis.Redis.from_url(f"unix://{private_redis.unix_path}?db=1") as r:
        await r.set("unix", "yes")
        assert await r.get("unix") == b"yes"
    async with aredis.Redis(unix_socket_path=private_redis.unix_path, db=1) as r:
        assert await r.get("unix") == b"yes"


async def test_from_url_options_and_health_checks(redis_url: str) -> None:
    base = redis_url.rsplit("/", 1)[0]
    url = f"{base}/3?socket_timeout=2&socket_connect_timeout=1&health_check_interval=1&client_name=manyio"
    async with aredis.Redis.from_url(url, decode_responses=True) as r:
        conn_kwargs = r.connection_pool.connection_kwargs
        assert conn_kwargs["socket_timeout"] == 2.0 and conn_kwargs["db"] == 3
        assert await r.client_getname() == "manyio"
        k = _key("health")
        await r.set(k, "1")
        conn = await r.connection_pool.get_connection()
        first_check = conn.next_health_check
        await r.connection_pool.release(conn)
        await manyio.sleep(1.1)
        assert await r.get(k) == "1"  # the overdue health check PINGs first, on manyio's clock
        conn = await r.connection_pool.get_connection()
        assert conn.next_health_check > first_check
        await r.connection_pool.release(conn)
        await r.delete(k)


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts and never answers; yields its port."""
    listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
    held: list[manyio.net.SocketStream] = []

    async def accept_forever() -> None:
        while True:
            held.append(await listener.accept())

    async with manyio.TaskGroup() as tg:
        tg.start_soon(accept_forever)
        yield listener.port
        tg.cancel_scope.cancel()
    for stream in held:
        await stream.aclose()
    await listener.aclose()


async def test_socket_timeout_is_enforced() -> None:
    # Every read from a server that never answers must time out on time: within 1.5x of
    # socket_timeout (a second, so that a loaded CI machine's stalls fit in the half).
    async with silent_server() as port:
        r = aredis.Redis(host="127.0.0.1", port=port, socket_timeout=1.0, retry=_no_retry(), protocol=2)
        start = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await r.get("k")
        elapsed = time.monotonic() - start
        assert 0.95 < elapsed < 1.5, elapsed
        await r.aclose()

        # The TLS handshake never completes either: socket_connect_timeout bounds it.
        r = aredis.Redis(host="127.0.0.1", port=port, ssl=True, socket_connect_timeout=1.0, retry=_no_retry())
        start = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await r.ping()
        elapsed = time.monotonic() - start
        assert 0.95 < elapsed < 1.5, elapsed
        await r.aclose()


async def test_a_read_timeout_moved_from_another_task_moves_the_deadline(redis_url: str) -> None:
    # redis-py relaxes (and restores) the deadline of a read in progress, for maintenance
    # notifications, with its timeout scope's reschedule(), from whichever task handles the
    # notification. The read here is a BLPOP that nothing will ever answer.
    key = _key("reschedule")

    async def blpop_timing_out(socket_timeout: float, move: Callable[[aredis.Connection], None]) -> float:
        conn = aredis.Connection(**parse_url(redis_url), socket_timeout=socket_timeout, retry=_no_retry())
        await conn.connect()
        await conn.send_command("BLPOP", key, 0)

        async def mover() -> None:
            while conn._active_read_timeout is None:  # the read has entered its scope
                await manyio.sleep(0.005)
            move(conn)

        start = time.monotonic()
        try:
            async with manyio.TaskGroup() as tg:
                tg.start_soon(mover)
                with pytest.raises(redis.TimeoutError):
                    await conn.read_response()
            return time.monotonic() - start
        finally:
            await conn.disconnect()

    # Relaxed to 1.2 s from the move: not 0.3 s from the start.
    elapsed = await blpop_timing_out(0.3, lambda conn: conn.update_current_socket_timeout(1.2))
    assert 1.15 < elapsed < 1.8, elapsed

    # Restored (-1) to socket_timeout, shortened here from 10 s to 0.3 s.
    def restore(conn: aredis.Connection) -> None:
        conn.socket_timeout = 0.3
        conn.update_current_socket_timeout(-1)

    elapsed = await blpop_timing_out(10.0, restore)
    assert 0.25 < elapsed < 1.5, elapsed


async def test_unreachable_server_names_the_address() -> None:
    with socket_closed_port() as port:
        r = aredis.Redis(host="127.0.0.1", port=port, retry=_no_retry())
        with pytest.raises(redis.ConnectionError) as info:
            await r.ping()
        assert f"127.0.0.1:{port}" in str(info.value)
        await r.aclose()


class socket_closed_port:
    """A loopback port nobody listens on."""

    def __enter__(self) -> int:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        return self._sock.getsockname()[1]

    def __exit__(self, *exc: object) -> None:
        self._sock.close()


async def test_client_kill_on_a_busy_connection_then_the_pool_recovers(redis_url: str) -> None:
    async with (
        aredis.Redis.from_url(redis_url, retry=_no_retry()) as r,
        aredis.Redis.from_url(redis_url) as admin,
    ):
        k = _key("kill")
        name = "victim-" + uuid.uuid4().hex[:6]
        await r.client_setname(name)

        async def kill_soon() -> None:
            await manyio.sleep(0.2)
            clients = await admin.client_list()
            victims = [c for c in clients if c.get("name") == name and c.get("cmd") == "blpop"]
            assert victims, clients
            for c in victims:
                await admin.client_kill_filter(_id=c["id"])

        async with manyio.TaskGroup() as tg:
            tg.start_soon(kill_soon)
            with pytest.raises(redis.ConnectionError):
                await r.blpop([k], timeout=5)
        await r.set(k, "back")
        assert await r.get(k) == b"back"
        await r.delete(k)


async def test_retry_resends_a_command_whose_connection_was_killed(redis_url: str) -> None:
    # With retries on, a BLPOP whose connection the server kills is sent
    # again on a new connection, and gets the value pushed after the kill.
    name = "retried-" + uuid.uuid4().hex[:6]
    async with (
        aredis.Redis.from_url(redis_url, client_name=name, retry=Retry(NoBackoff(), 2)) as r,
        aredis.Redis.from_url(redis_url) as admin,
    ):
        k = _key("retry")
        killed: list[int] = []

        async def kill_then_push() -> None:
            await manyio.sleep(0.2)
            for c in await admin.client_list():
                if c.get("name") == name and c.get("cmd") == "blpop":
                    killed.append(await admin.client_kill_filter(_id=c["id"]))
            await manyio.sleep(0.2)
            await admin.rpush(k, "after the kill")

        async with manyio.TaskGroup() as tg:
            tg.start_soon(kill_then_push)
            assert await r.blpop([k], timeout=5) == (k.encode(), b"after the kill")
        assert killed == [1]


async def test_cancellation_discards_connections_and_values_stay_right(redis_url: str) -> None:
    pool = aredis.BlockingConnectionPool.from_url(redis_url, max_connections=50, timeout=10)
    async with aredis.Redis(connection_pool=pool) as r:
        prefix = _key("cancel")
        done: set[int] = set()

        async def one(i: int) -> None:
            await r.set(f"{prefix}:{i}", i)
            assert await r.get(f"{prefix}:{i}") == str(i).encode()
            done.add(i)

        async def maybe_cancelled(i: int) -> None:
            # i % 4 == 1: cancelled before it starts; 3: cancelled at a random point of its
            # round trips (connecting, sending, reading); even: never cancelled.
            deadline = {0: math.inf, 1: 0.0, 2: math.inf, 3: random.random() * 0.01}[i % 4]
            with manyio.move_on_after(deadline):
                await one(i)

        async with manyio.TaskGroup() as tg:
            for i in range(500):
                tg.start_soon(maybe_cancelled, i)
        assert {i for i in range(500) if i % 2 == 0} <= done
        assert not {i for i in range(500) if i % 4 == 1} & done
        assert len(pool._in_use_connections) == 0
        # Every pooled connection is clean: responses line up with their commands.
        async with manyio.TaskGroup() as tg:
            for i in range(0, 500, 3):
                tg.start_soon(one, i)
        await r.delete(*(f"{prefix}:{i}" for i in range(500)))


async def test_blocking_pool_timeout_and_shielded_release(redis_url: str) -> None:
    pool = aredis.BlockingConnectionPool.from_url(redis_url, max_connections=2, timeout=0.2)
    async with aredis.Redis(connection_pool=pool) as r:
        k = _key("bpool")
        holders = [await pool.get_connection() for _ in range(2)]
        start = time.monotonic()
        with pytest.raises(redis.ConnectionError, match="No connection available"):
            await r.get(k)
        assert 0.15 < time.monotonic() - start < 0.6
        for c in holders:
            await pool.release(c)

        # A task cancelled while its command runs: the pool gets its connection back.
        async with manyio.TaskGroup() as tg:
            tg.start_soon(r.blpop, [k], 5)
            await manyio.sleep(0.1)
            tg.cancel_scope.cancel()
        assert len(pool._in_use_connections) == 0
        assert await r.ping()


def test_asyncio_programs_still_get_asyncio(redis_url: str) -> None:
    """After patch(), redis.asyncio keeps working under stock asyncio in the same process."""

    async def main() -> bytes | None:
        async with aredis.Redis.from_url(redis_url, socket_timeout=1.0) as r:
            k = _key("asyncio")
            await r.set(k, "plain asyncio")
            async with r.pipeline() as p:
                value, _ = await p.get(k).delete(k).execute()
            async with asyncio.timeout(1):
                assert await r.blpop([k], timeout=0.1) is None
            return value

    assert asyncio.run(main()) == b"plain asyncio"


async def test_tls_by_host_name(private_redis) -> None:
    # The certificate names localhost too; localhost resolves through getaddrinfo off-worker.
    r = aredis.Redis.from_url(
        private_redis.tls_url.replace("127.0.0.1", "localhost"), ssl_ca_certs=private_redis.ca_file
    )
    assert await r.ping()
    await r.aclose()
