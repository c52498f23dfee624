"""The tests' HTTP server: an ASGI app served by Hypercorn (HTTP/1.1 in the clear, HTTP/1.1 and
HTTP/2 over TLS with ALPN, and a Unix socket), run in its own process:

    python manyio_httpx_test_server.py CONFIG.json

CONFIG holds ``plain`` (port), ``tls`` (port), ``unix`` (path), ``certfile``, ``keyfile``
and, for a server that demands client certificates, ``ca_certs``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import sys
from typing import Any

PATTERN = bytes(range(256))


def body_for(n: int, seed: int) -> bytes:
    """What ``/bytes/N?seed=S`` returns: deterministic, different for every seed."""
    rotated = PATTERN[seed % 256 :] + PATTERN[: seed % 256]
    return (rotated * (n // 256 + 1))[:n]


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _respond(send: Any, status: int, body: bytes, headers: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status, "headers": list(headers)})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path: str = scope["path"]
    query = dict(part.split("=", 1) for part in scope["query_string"].decode().split("&") if "=" in part)
    parts = path.strip("/").split("/")
    if parts[0] == "bytes":
        await _read_body(receive)
        await _respond(send, 200, body_for(int(parts[1]), int(query.get("seed", 0))))
    elif parts[0] == "echo":
        body = await _read_body(receive)
        digest = hashlib.sha256(body).hexdigest().encode()
        await _respond(send, 200, body, [(b"x-sha256", digest)])
    elif parts[0] == "slow":
        await _read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(float(parts[1]))
        await send({"type": "http.response.body", "body": b"finally"})
    elif parts[0] == "stream":
        await _read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(int(parts[1])):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
            await asyncio.sleep(0.001)
        await send({"type": "http.response.body", "body": b""})
    elif parts[0] == "info":
        await _read_body(receive)
        info = {
            "http_version": scope["http_version"],
            "scheme": scope["scheme"],
            "method": scope["method"],
            "headers": {k.decode(): v.decode() for k, v in scope["headers"]},
        }
        await _respond(send, 200, json.dumps(info).encode(), [(b"content-type", b"application/json")])
    else:
        await _read_body(receive)
        await _respond(send, 404, b"not found")


async def _main(config: dict[str, Any]) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    hc = Config()
    hc.bind = [f"127.0.0.1:{config['tls']}"]
    hc.insecure_bind = [f"127.0.0.1:{config['plain']}"]
    if config.get("unix"):
        hc.insecure_bind.append(f"unix:{config['unix']}")
    hc.certfile = config["certfile"]
    hc.keyfile = config["keyfile"]
    if config.get("ca_certs"):
        hc.ca_certs = config["ca_certs"]
        hc.verify_mode = ssl.CERT_REQUIRED
    hc.alpn_protocols = ["h2", "http/1.1"]
    hc.keep_alive_timeout = 60
    hc.h2_max_concurrent_streams = 1000
    hc.backlog = 1024
    hc.accesslog = None
    hc.errorlog = "-"
    await serve(app, hc)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        asyncio.run(_main(json.load(f)))
