"""redis-py's RESP parsers and ``pack_command``, with the byte work done in Rust.

Without hiredis (which turns the GIL back on), redis-py parses each reply and packs each
command with a dozen Python calls. These subclasses of its own RESP2 and RESP3 parsers hand
the reader's buffer to :mod:`manyio_redis._resp`, which returns what redis-py's code would:
the same values, the same error objects from ``parse_error``, push messages to the same
handlers. They stay instances of redis-py's classes, so every ``isinstance`` check in
redis-py (push notifications, HELLO negotiation) sees what it expects.

Only connections whose reader is the adapter's :class:`~manyio_redis._streams.StreamReader`
take the native path; anything else (asyncio's reader, for a connection made outside a
manyio task) runs redis-py's code unchanged. The parsers override ``read_response`` itself
(one Python frame per reply, not three), so a mock of the base classes' ``read_response``
does not reach them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis._parsers.encoders import Encoder
from redis._parsers.resp2 import _AsyncRESP2Parser
from redis._parsers.resp3 import _AsyncRESP3Parser
from redis._parsers.socket import SERVER_CLOSED_CONNECTION_ERROR
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, InvalidResponse

from ._resp import INCOMPLETE, Push, ReplyParser, pack_command
from ._streams import StreamReader

__all__ = ["RESP2Parser", "RESP3Parser", "install"]


def _native(parser: Any, connection: Any, resp3: bool) -> ReplyParser:
    encoder = connection.encoder
    return ReplyParser(
        resp3=resp3,
        encoding=encoder.encoding,
        errors=encoder.encoding_errors,
        on_error=type(parser).parse_error,  # a classmethod: no cycle through the parser
        raise_class=ConnectionError,
        invalid_class=InvalidResponse,
    )


async def _next_reply(native: ReplyParser, stream: StreamReader, decode: bool) -> Any:
    buf = stream._buf
    while (reply := native.parse(buf, decode)) is INCOMPLETE:
        if not await stream._fill():
            raise ConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
    return reply


class RESP2Parser(_AsyncRESP2Parser):
    """redis-py's RESP2 parser; replies parsed by :mod:`manyio_redis._resp`."""

    _native: ReplyParser | None = None

    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)
        self._native = _native(self, connection, resp3=False)

    async def read_response(self, disable_decoding: bool = False) -> Any:
        native = self._native
        # Replies go through redis-py's code when the reader is not ours (a connection made
        # under asyncio, or a test's mock) or redis-py's code holds part of a reply.
        if native is None or type(self._stream) is not StreamReader or self._chunks or self._buffer:
            return await super().read_response(disable_decoding=disable_decoding)
        if not self._connected:
            raise ConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        decode = disable_decoding is False and self.encoder.decode_responses
        return await _next_reply(native, self._stream, decode)


class RESP3Parser(_AsyncRESP3Parser):
    """redis-py's RESP3 parser; replies parsed by :mod:`manyio_redis._resp`."""

    _native: ReplyParser | None = None

    def on_connect(self, connection: Any) -> None:
        super().on_connect(connection)
        self._native = _native(self, connection, resp3=True)

    async def read_response(self, disable_decoding: bool = False, push_request: bool = False) -> Any:
        native = self._native
        if native is None or type(self._stream) is not StreamReader or self._chunks or self._buffer:
            return await super().read_response(disable_decoding=disable_decoding, push_request=push_request)
        if not self._stream or not self.encoder:
            raise ConnectionError(SERVER_CLOSED_CONNECTION_ERROR)
        decode = disable_decoding is False and self.encoder.decode_responses
        while True:
            reply = await _next_reply(native, self._stream, decode)
            if type(reply) is not Push:
                return reply
            handled = await self.handle_push_response(reply.data)
            if push_request:
                return handled


_REPLACING = {_AsyncRESP2Parser: RESP2Parser, _AsyncRESP3Parser: RESP3Parser}


def install() -> None:
    """Makes redis-py's asyncio connections use these parsers and the native packer
    (idempotent). A parser class chosen by the user is left alone: only redis-py's own two
    are replaced."""
    if getattr(AbstractConnection.set_parser, "__manyio_native__", False):
        return
    set_parser = AbstractConnection.set_parser
    pack = AbstractConnection.pack_command

    def native_set_parser(self: Any, parser_class: type) -> None:
        set_parser(self, _REPLACING.get(parser_class, parser_class))

    def native_pack_command(self: Any, *args: Any) -> Any:
        encoder = self.encoder
        if type(encoder) is Encoder:
            packed = pack_command(args, encoder.encoding, encoder.encoding_errors, self._buffer_cutoff)
            if packed is not None:
                return packed
        return pack(self, *args)

    for name, new, old in (
        ("set_parser", native_set_parser, set_parser),
        ("pack_command", native_pack_command, pack),
    ):
        _wrap(new, old)
        setattr(AbstractConnection, name, new)


def _wrap(new: Callable[..., Any], old: Callable[..., Any]) -> None:
    new.__name__, new.__qualname__, new.__doc__ = old.__name__, old.__qualname__, old.__doc__
    new.__wrapped__ = old  # type: ignore[attr-defined]
    new.__manyio_native__ = True  # type: ignore[attr-defined]
