"""Networking: TCP and Unix streams, listeners, UDP, and DNS off the worker threads.

Example::

    async def echo(stream: manyio.net.SocketStream) -> None:
        async for chunk in stream:
            await stream.send_all(chunk)

    async def main() -> None:
        listener = await manyio.net.create_tcp_listener("127.0.0.1", 0)
        async with manyio.TaskGroup() as tg:
            tg.start_soon(manyio.net.serve, listener, echo)
            async with await manyio.net.connect_tcp("127.0.0.1", listener.port) as s:
                await s.send_all(b"hi")
                assert await s.receive() == b"hi"
            tg.cancel_scope.cancel()
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

from . import sockets
from ._core import Event, sleep
from ._streams import SocketListener, SocketStream, UDPSocket
from ._taskgroup import TaskGroup
from ._threads import to_thread
from ._timeouts import move_on_after
from ._tls import TLSStream

__all__ = [
    "SocketListener",
    "SocketStream",
    "TLSStream",
    "UDPSocket",
    "connect_tcp",
    "connect_unix",
    "create_tcp_listener",
    "create_udp_socket",
    "create_unix_datagram_socket",
    "create_unix_listener",
    "getaddrinfo",
    "getnameinfo",
    "serve",
]

_logger = logging.getLogger("manyio.net")


async def getaddrinfo(
    host: str | bytes | None,
    port: str | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> list[tuple[Any, ...]]:
    """:func:`socket.getaddrinfo` on the blocking pool, so name lookups never stall a worker."""
    if isinstance(host, str) and _is_ip(host):
        flags |= socket.AI_NUMERICHOST  # answered locally: no thread needed
        return socket.getaddrinfo(host, port, family, type, proto, flags)
    return await to_thread(socket.getaddrinfo, host, port, family, type, proto, flags, abandon_on_cancel=True)


async def getnameinfo(sockaddr: tuple[Any, ...], flags: int = 0) -> tuple[str, str]:
    """:func:`socket.getnameinfo` on the blocking pool."""
    return await to_thread(socket.getnameinfo, sockaddr, flags, abandon_on_cancel=True)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


async def _connect_one(info: tuple[Any, ...], local_host: str | None) -> socket.socket:
    family, type_, proto, _, address = info
    sock = socket.socket(family, type_, proto)
    try:
        sock.setblocking(False)
        if local_host is not None:
            sock.bind((local_host, 0))
        await sockets.connect(sock, address)
    except BaseException:
        sock.close()
        raise
    return sock


async def connect_tcp(
    host: str,
    port: int,
    *,
    local_host: str | None = None,
    happy_eyeballs_delay: float = 0.25,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    tls: bool = False,
) -> Any:
    """Connects to ``host:port``, trying every address it resolves to (RFC 8305 happy eyeballs:
    a new attempt starts every ``happy_eyeballs_delay`` seconds or as soon as one fails; the
    first to connect wins and the others are cancelled).

    With ``tls=True`` or an ``ssl_context`` the connection is wrapped in a :class:`TLSStream`
    (verifying ``server_hostname``, default ``host``). Raises :class:`OSError` naming the
    address when every attempt fails.
    """
    infos = await getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"no addresses found for {host!r}")
    # Interleave families, starting with the first one the resolver returned.
    by_family: dict[int, list[tuple[Any, ...]]] = {}
    for info in infos:
        by_family.setdefault(info[0], []).append(info)
    ordered: list[tuple[Any, ...]] = []
    queues = list(by_family.values())
    while any(queues):
        for q in queues:
            if q:
                ordered.append(q.pop(0))

    winner: socket.socket | None = None
    errors: list[OSError] = []

    async def attempt(info: tuple[Any, ...], failed: Event) -> None:
        nonlocal winner
        try:
            sock = await _connect_one(info, local_host)
        except OSError as e:
            errors.append(e)
            failed.set()
            return
        if winner is None:
            winner = sock
            tg.cancel_scope.cancel()
        else:
            sock.close()

    try:
        async with TaskGroup() as tg:
            for info in ordered:
                failed = Event()
                tg.start_soon(attempt, info, failed)
                with move_on_after(happy_eyeballs_delay):
                    await failed.wait()
    except BaseException:
        # Cancelled after an attempt won: nobody will get that socket.
        if winner is not None:
            winner.close()
        raise
    if winner is None:
        detail = "; ".join(str(e) for e in errors)
        err = errors[0].errno if errors and len({e.errno for e in errors}) == 1 else None
        raise OSError(err, f"all connection attempts to {host}:{port} failed: {detail}")
    stream = SocketStream(winner)
    if tls or ssl_context is not None:
        return await TLSStream.wrap(stream, ssl_context=ssl_context, server_hostname=server_hostname or host)
    return stream


async def connect_unix(path: str | bytes | os.PathLike[str]) -> SocketStream:
    """Connects to the Unix stream socket at ``path``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        await sockets.connect(sock, os.fspath(path))
    except BaseException:
        sock.close()
        raise
    return SocketStream(sock)


def _has_ipv6() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def create_tcp_listener(
    local_host: str | None = None,
    local_port: int = 0,
    *,
    reuse_port: bool = False,
    backlog: int = 65535,
) -> SocketListener:
    """A listening TCP socket. With no ``local_host`` it listens on every address, IPv6 and
    IPv4 on one dual-stack socket when the machine has IPv6. ``listener.port`` is the bound port.
    """
    if local_host is None:
        family, address = (
            (socket.AF_INET6, ("::", local_port))
            if _has_ipv6()
            else (socket.AF_INET, ("0.0.0.0", local_port))
        )
    else:
        infos = await getaddrinfo(local_host, local_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, address = infos[0][0], infos[0][4]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if local_host is None else 1)
        sock.bind(address)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return SocketListener(sock)


async def create_unix_listener(
    path: str | bytes | os.PathLike[str], *, mode: int | None = None, backlog: int = 65535
) -> SocketListener:
    """A listening Unix stream socket at ``path`` (``mode`` sets its permissions)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(os.fspath(path))
        if mode is not None:
            os.chmod(path, mode)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return SocketListener(sock)


async def create_udp_socket(
    family: int = socket.AF_UNSPEC,
    *,
    local_host: str | None = None,
    local_port: int = 0,
    remote_host: str | None = None,
    remote_port: int | None = None,
    reuse_port: bool = False,
) -> UDPSocket:
    """A UDP socket, bound to ``local_host:local_port`` and, if ``remote_host`` is given,
    connected to it. Without ``local_host`` an unconnected socket binds to the loopback
    address of its family (pass ``"0.0.0.0"`` or ``"::"`` to receive from the network) and a
    connected one to every address, so it can reach its peer."""
    remote: tuple[Any, ...] | None = None
    if remote_host is not None:
        infos = await getaddrinfo(remote_host, remote_port, family=family, type=socket.SOCK_DGRAM)
        family, remote = infos[0][0], infos[0][4]
    if local_host is not None or remote is None:
        infos = await getaddrinfo(
            local_host or ("::1" if family == socket.AF_INET6 else "127.0.0.1"),
            local_port,
            family=family,
            type=socket.SOCK_DGRAM,
            flags=socket.AI_PASSIVE,
        )
        family, local = infos[0][0], infos[0][4]
    else:
        local = ("::" if family == socket.AF_INET6 else "0.0.0.0", local_port)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(local)
        sock.setblocking(False)
        if remote is not None:
            sock.connect(remote)
    except BaseException:
        sock.close()
        raise
    return UDPSocket(sock)


async def create_unix_datagram_socket(
    local_path: str | os.PathLike[str] | None = None, *, remote_path: str | os.PathLike[str] | None = None
) -> UDPSocket:
    """A Unix datagram socket, optionally bound and/or connected."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        if local_path is not None:
            sock.bind(os.fspath(local_path))
        sock.setblocking(False)
        if remote_path is not None:
            sock.connect(os.fspath(remote_path))
    except BaseException:
        sock.close()
        raise
    return UDPSocket(sock)


_FD_EXHAUSTED = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


async def serve(
    listener: SocketListener,
    handler: Callable[[SocketStream], Awaitable[Any]],
    *,
    task_group: TaskGroup | None = None,
) -> None:
    """Accepts connections forever, running ``handler(stream)`` in a new task for each and
    closing the stream when the handler returns. When the process runs out of file
    descriptors it logs, waits a moment and keeps serving.
    """

    async def run(stream: SocketStream) -> None:
        async with stream:
            await handler(stream)

    async def loop(tg: TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except OSError as e:
                if e.errno in _FD_EXHAUSTED:
                    _logger.error("accept() failed (%s); retrying in 100 ms", os.strerror(e.errno))
                    await sleep(0.1)
                    continue
                raise
            tg.start_soon(run, stream)

    if task_group is not None:
        await loop(task_group)
        return
    async with TaskGroup() as tg:
        await loop(tg)
