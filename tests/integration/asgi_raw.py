"""Calling an ASGI app with any bytes in its headers, which HTTP clients refuse to send.

httpx validates header values (no NUL, no non-latin-1), so the header fuzzing and the lean
route's equivalence tests build the ASGI scope themselves.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

Headers = list[tuple[bytes, bytes]]


@dataclass
class Answer:
    status: int
    headers: Headers
    body: bytes = b""
    trailing: list[str] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k == name), None)

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    app: Any,
    method: str,
    path: str,
    headers: Headers,
    body: bytes = b"",
    *,
    root_path: str = "",
    query: bytes = b"",
    timeout_s: float = 30.0,
) -> Answer:
    """One request, as a server would hand it to ``app`` (``path`` relative to ``root_path``,
    which Serve mounts each app under)."""
    full = root_path + path
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": full,
        "raw_path": full.encode("utf-8", "surrogateescape"),
        "root_path": root_path,
        "query_string": query,
        "headers": [(b"host", b"shop.test"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # the client stays; a stream ends by itself
        return {"type": "http.disconnect"}

    answer = Answer(0, [])
    done = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer.status = message["status"]
            answer.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            answer.body += message.get("body", b"")
            if not message.get("more_body", False):
                done.set()

    await asyncio.wait_for(app(scope, receive, send), timeout_s)
    return answer
