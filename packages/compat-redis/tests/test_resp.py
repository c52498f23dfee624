"""The Rust RESP parser and command packer against redis-py's own Python code.

Each property test generates replies (or commands), runs them through redis-py's parser
(or ``pack_command``) and through :mod:`manyio_redis._resp`, and demands the same result:
values, error objects, push messages, decoding, and the exact bytes on the wire. Replies
arrive cut at random points, as a socket delivers them.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import redis.asyncio as aredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from manyio_redis import _parser
from manyio_redis._resp import INCOMPLETE, MAX_DEPTH, Push, ReplyParser, pack_command
from redis._parsers.base import BaseParser
from redis._parsers.encoders import Encoder
from redis._parsers.resp2 import _AsyncRESP2Parser
from redis._parsers.resp3 import _AsyncRESP3Parser
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError, InvalidResponse

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- replies: a generated tree and its wire format ---

_text = st.binary(max_size=40).filter(lambda b: b"\r" not in b and b"\n" not in b)
_error_text = st.sampled_from([b"ERR", b"WRONGTYPE", b"NOSCRIPT", b"READONLY", b"LOADING", b"X"]).flatmap(
    lambda code: _text.map(lambda rest: code + b" " + rest)
)


def _scalars(resp3: bool) -> st.SearchStrategy[bytes]:
    bulk = st.binary(max_size=60).map(lambda b: b"$%d\r\n%s\r\n" % (len(b), b))
    options = [
        _text.map(lambda b: b"+" + b + b"\r\n"),
        st.integers(-(2**63), 2**63 - 1).map(lambda n: b":%d\r\n" % n),
        bulk,
        _error_text.map(lambda b: b"-" + b + b"\r\n"),
    ]
    if not resp3:
        options.append(st.just(b"$-1\r\n"))
    if resp3:
        options += [
            st.just(b"_\r\n"),
            st.floats(allow_nan=False).map(lambda f: b",%s\r\n" % repr(f).encode()),
            st.sampled_from([b",inf\r\n", b",-inf\r\n", b",nan\r\n"]),
            st.booleans().map(lambda t: b"#t\r\n" if t else b"#f\r\n"),
            st.integers(-(10**40), 10**40).map(lambda n: b"(%d\r\n" % n),
            st.binary(max_size=30).map(lambda b: b"=%d\r\ntxt:%s\r\n" % (len(b) + 4, b)),
            _error_text.map(lambda b: b"!%d\r\n%s\r\n" % (len(b), b)),
        ]
    return st.one_of(options)


def _replies(resp3: bool) -> st.SearchStrategy[bytes]:
    def aggregates(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
        items = st.lists(children, max_size=5)
        options = [items.map(lambda xs: b"*%d\r\n" % len(xs) + b"".join(xs))]
        if resp3:
            options.append(items.map(lambda xs: b"~%d\r\n" % len(xs) + b"".join(xs)))
            # Map keys are scalars that are hashable once built (no errors: those are
            # exception objects, hashable but not equal across parsers).
            keys = st.one_of(
                _text.map(lambda b: b"+" + b + b"\r\n"),
                st.integers(-100, 100).map(lambda n: b":%d\r\n" % n),
            )
            pairs = st.lists(st.tuples(keys, children), max_size=4)
            options.append(pairs.map(lambda ps: b"%%%d\r\n" % len(ps) + b"".join(k + v for k, v in ps)))
        else:
            options.append(st.just(b"*-1\r\n"))
        return st.one_of(options)

    return st.recursive(_scalars(resp3), aggregates, max_leaves=20)


# --- redis-py's parser, driven without a socket ---


class _BytesStream:
    """What redis-py's parsers read through (``readline``, ``readexactly``), over fixed bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def readline(self) -> bytes:
        end = self.data.index(b"\n") + 1
        line, self.data = self.data[:end], self.data[end:]
        return line

    async def readexactly(self, n: int) -> bytes:
        assert len(self.data) >= n
        out, self.data = self.data[:n], self.data[n:]
        return out


class _Connection:
    def __init__(self, stream: _BytesStream, encoder: Encoder) -> None:
        self._reader = stream
        self.encoder = encoder


def _run(coro: Any) -> Any:
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the parser waited for more bytes")


def _reference(data: bytes, resp3: bool, encoder: Encoder, disable_decoding: bool) -> Any:
    parser = (_AsyncRESP3Parser if resp3 else _AsyncRESP2Parser)(65536)
    parser.on_connect(_Connection(_BytesStream(data), encoder))
    if not resp3:
        return _run(parser.read_response(disable_decoding=disable_decoding))

    async def mark(response: Any) -> Any:
        return ("push", response)

    parser.handle_push_response = mark
    return _run(parser.read_response(disable_decoding=disable_decoding, push_request=True))


def _native(resp3: bool, encoder: Encoder) -> ReplyParser:
    return ReplyParser(
        resp3=resp3,
        encoding=encoder.encoding,
        errors=encoder.encoding_errors,
        on_error=BaseParser.parse_error,
        raise_class=ConnectionError,
        invalid_class=InvalidResponse,
    )


def _comparable(value: Any) -> Any:
    """Error objects compare by class and arguments; NaN by spelling."""
    if isinstance(value, BaseException):
        return (type(value), value.args, getattr(value, "status_code", None))
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_comparable(v) for v in value)
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    return value


def _outcome(fn: Any) -> Any:
    try:
        return ("value", _comparable(fn()))
    except Exception as e:
        return ("raised", type(e), str(e))


def _feed_in_pieces(native: ReplyParser, data: bytes, cuts: list[int], decode: bool) -> Any:
    """Parses `data` arriving in pieces; every strict prefix must leave the buffer alone."""
    buf = bytearray()
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    start = 0
    for end in bounds:
        buf += data[start:end]
        start = end
        before = bytes(buf)
        reply = native.parse(buf, decode)
        if reply is not INCOMPLETE:
            assert end == len(data), "a reply came out before all of it arrived"
            assert buf == bytearray(), "the reply's bytes were not all consumed"
            return ("push", reply.data) if type(reply) is Push else reply
        assert bytes(buf) == before
    raise AssertionError("the whole reply arrived and the parser still wants more")


@pytest.mark.parametrize("resp3", [False, True], ids=["RESP2", "RESP3"])
@pytest.mark.parametrize("decode", [False, True], ids=["bytes", "decoded"])
@SETTINGS
@given(data=st.data())
def test_replies_parse_as_redis_py_parses_them(resp3: bool, decode: bool, data: st.DataObject) -> None:
    reply = data.draw(_replies(resp3))
    if resp3 and data.draw(st.booleans()):  # a push message, at the top as Redis sends them
        items = data.draw(st.lists(_replies(resp3), min_size=1, max_size=4))
        reply = b">%d\r\n" % len(items) + b"".join(items)
    errors = data.draw(st.sampled_from(["strict", "replace", "backslashreplace"]))
    encoding = data.draw(st.sampled_from(["utf-8", "latin-1"]))
    encoder = Encoder(encoding, errors, decode)
    cuts = data.draw(st.lists(st.integers(0, len(reply)), max_size=6))

    expected = _outcome(lambda: _reference(reply, resp3, encoder, disable_decoding=False))
    native = _native(resp3, encoder)
    got = _outcome(lambda: _feed_in_pieces(native, reply, cuts, decode))
    assert got == expected


def test_replies_back_to_back_come_out_one_at_a_time() -> None:
    native = _native(True, Encoder("utf-8", "strict", False))
    buf = bytearray(b"+OK\r\n:5\r\n*2\r\n$1\r\na\r\n_\r\n$3\r\nab")
    assert native.parse(buf, False) == b"OK"
    assert native.parse(buf, False) == 5
    assert native.parse(buf, False) == [b"a", None]
    assert native.parse(buf, False) is INCOMPLETE
    assert buf == bytearray(b"$3\r\nab")


def test_resp2_nulls_on_a_resp3_connection_are_none() -> None:
    # Redis sends "_" for null under RESP3; should a RESP2 null come anyway, it is None (as
    # hiredis has it) rather than the misread redis-py's Python RESP3 parser makes of it.
    native = _native(True, Encoder("utf-8", "strict", False))
    assert native.parse(bytearray(b"$-1\r\n"), False) is None
    assert native.parse(bytearray(b"*-1\r\n"), False) is None


def test_connection_errors_are_raised_and_other_errors_returned() -> None:
    native = _native(False, Encoder("utf-8", "strict", False))
    with pytest.raises(ConnectionError):
        native.parse(bytearray(b"-LOADING Redis is loading the dataset in memory\r\n"), False)
    nested = native.parse(bytearray(b"*2\r\n-WRONGTYPE no\r\n:1\r\n"), False)
    assert type(nested[0]).__name__ == "ResponseError" and nested[1] == 1


@pytest.mark.parametrize(
    ("reply", "resp3", "message"),
    [
        (b"x\r\n", False, "Protocol Error: b'x'"),
        (b"_\r\n", False, "Protocol Error: b'_'"),  # RESP3 on a RESP2 connection
        (b"$abc\r\nxyz\r\n", True, "bad length"),
        (b"+OK\n", True, "\\\\r\\\\n"),
        (b"*-2\r\n", True, "bad length"),
    ],
)
def test_malformed_replies_raise_invalid_response(reply: bytes, resp3: bool, message: str) -> None:
    native = _native(resp3, Encoder("utf-8", "strict", False))
    with pytest.raises(InvalidResponse, match=message):
        native.parse(bytearray(reply), False)


def test_deep_nesting_is_refused_not_a_stack_overflow() -> None:
    native = _native(True, Encoder("utf-8", "strict", False))
    deep = b"*1\r\n" * (MAX_DEPTH + 1) + b":1\r\n"
    with pytest.raises(InvalidResponse, match="nested too deep"):
        native.parse(bytearray(deep), False)
    ok = b"*1\r\n" * (MAX_DEPTH - 1) + b":1\r\n"
    value = native.parse(bytearray(ok), False)
    for _ in range(MAX_DEPTH - 1):
        value = value[0]
    assert value == 1


@SETTINGS
@given(noise=st.binary(max_size=200), resp3=st.booleans())
def test_garbage_never_crashes(noise: bytes, resp3: bool) -> None:
    native = _native(resp3, Encoder("utf-8", "strict", True))
    buf = bytearray(noise)
    try:
        while buf and native.parse(buf, True) is not INCOMPLETE:
            pass
    except InvalidResponse, ValueError, UnicodeDecodeError:
        pass


# --- commands ---

_args = st.one_of(
    st.binary(max_size=30),
    st.text(max_size=30),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.booleans(),  # redis-py refuses these: the native packer hands them back
    st.binary(max_size=30).map(memoryview),
    st.binary(max_size=30).map(bytearray),
)
_names = st.one_of(
    st.sampled_from(["SET", "GET", "CONFIG GET", "CLIENT  SETNAME", " HSET\t"]),
    st.sampled_from([b"SET", b"CONFIG GET", b"MEMORY\x0bUSAGE x"]),
)


def _original_pack(conn: Connection, *args: Any) -> Any:
    return _parser.AbstractConnection.pack_command.__wrapped__(conn, *args)


@SETTINGS
@given(
    name=_names,
    args=st.lists(_args, max_size=6),
    cutoff=st.sampled_from([0, 3, 10, 6000]),
    encoding=st.sampled_from([("utf-8", "strict"), ("utf-8", "surrogateescape"), ("latin-1", "replace")]),
)
def test_commands_pack_byte_for_byte_as_redis_py_packs_them(
    name: Any, args: list[Any], cutoff: int, encoding: tuple[str, str]
) -> None:
    conn = Connection(encoding=encoding[0], encoding_errors=encoding[1])
    conn._buffer_cutoff = cutoff
    command = (name, *args)
    expected = _outcome(lambda: [bytes(x) for x in _original_pack(conn, *command)])
    native = pack_command(command, encoding[0], encoding[1], cutoff)
    if native is None:  # handed back: redis-py's encoder deals with these
        assert any(type(a) not in (bytes, str, int, float) for a in command)
        return
    assert ("value", [bytes(x) for x in native]) == expected
    # What a connection does through the installed method, for every argument type.
    assert _outcome(lambda: [bytes(x) for x in conn.pack_command(*command)]) == expected


def test_pack_command_edge_cases_match_redis_py() -> None:
    conn = Connection()
    with pytest.raises(IndexError):
        conn.pack_command()
    with pytest.raises(AssertionError):
        conn.pack_command(1.5, "x")
    assert conn.pack_command("SET", "k", "\u00e9") == _original_pack(conn, "SET", "k", "\u00e9")
    with pytest.raises(UnicodeEncodeError):
        conn.pack_command("SET", "k", "\ud800")


# --- wired into redis-py ---


@pytest.mark.parametrize("protocol", [2, 3])
async def test_connections_on_manyio_parse_natively(redis_url: str, protocol: int) -> None:
    async with aredis.Redis.from_url(redis_url, protocol=protocol, single_connection_client=True) as r:
        await r.ping()
        parser = r.connection._parser
        assert type(parser) is (_parser.RESP3Parser if protocol == 3 else _parser.RESP2Parser)
        assert parser._native is not None and type(parser._stream).__name__ == "StreamReader"
        key = "manyio:test:resp:native"
        await r.delete(key)
        await r.rpush(key, *range(20_000))  # a reply of many reads, parsed as it arrives
        assert await r.lrange(key, 0, -1) == [str(i).encode() for i in range(20_000)]
        with pytest.raises(aredis.ResponseError, match="WRONGTYPE"):
            await r.get(key)
        await r.delete(key)


async def test_resp3_push_messages_reach_redis_py_handlers(redis_url: str) -> None:
    async with aredis.Redis.from_url(redis_url, protocol=3) as r:
        pubsub = r.pubsub()
        await pubsub.subscribe("manyio:test:resp:channel")
        assert type(pubsub.connection._parser) is _parser.RESP3Parser
        message = await pubsub.get_message(timeout=2.0)
        assert message is not None and message["type"] == "subscribe"
        await r.publish("manyio:test:resp:channel", "hello")
        for _ in range(20):
            message = await pubsub.get_message(timeout=2.0)
            if message is not None:
                break
        assert message is not None and message["data"] == b"hello"
        await pubsub.aclose()
