"""An ASGI app that sends each request over HTTP/1.1 to a server on loopback.

The add lane (matchday/web/add_lane.py) is a server in front of the shop's app: wrapping it
in :class:`OverHTTP` lets the tests that call the app as an ASGI function
(tests/integration/asgi_raw.py) send the very same requests through the lane instead.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def exchange(port: int, data: bytes, *, timeout_s: float = 30.0) -> bytes:
    """Write ``data`` on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """One answer with a Content-Length (the lane always sends one): status, headers, body."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower(), value.strip()))
    length = int(next(v for k, v in headers if k == b"content-length"))
    return status, headers, await reader.readexactly(length)


class OverHTTP:
    """An ASGI app whose requests go to ``port`` over HTTP, one connection each."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        target = scope["raw_path"]
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = list(scope["headers"])
        # A request without a length still has its body: sent chunked, as a client would.
        chunked = not any(k in (b"content-length", b"transfer-encoding") for k, _ in headers)
        if chunked:
            headers.append((b"transfer-encoding", b"chunked"))
        lines = [b"%s %s HTTP/1.1\r\n" % (scope["method"].encode(), target)]
        lines += [b"%s: %s\r\n" % (k, v) for k, v in headers]
        lines.append(b"\r\n")
        if chunked:
            lines.append(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n")
        else:
            lines.append(body)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(b"".join(lines))
            await writer.drain()
            status, answer_headers, answer = await read_answer(reader)
        finally:
            writer.close()
        await send({"type": "http.response.start", "status": status, "headers": answer_headers})
        await send({"type": "http.response.body", "body": answer})
