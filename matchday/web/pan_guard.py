"""The request guard: malformed headers and card numbers are refused before a handler runs.

Two rules, applied to every request of every app (ADR 0008, docs/threat-model.md):

- **Headers are printable ASCII.** Every value matchday parses (tokens, Idempotency-Key,
  signatures, Last-Event-ID, content types) is ASCII by its own grammar; Starlette decodes
  bytes as latin-1, so a stray ``\\xe9`` became a non-ASCII ``str`` that crashed
  ``hmac.compare_digest`` (a 500). Any control character (tab aside), and any byte over 0x7E
  outside the free-text headers nobody parses, is a 400 ``invalid_header``.
- **No card numbers where they could be stored or logged:** the path (product slugs and SKUs
  end up in cache keys, audit targets and 404 messages), the query string, the client-address
  headers (they become the client IP in fraud and audit rows), and the whole body of a
  POST/PUT/PATCH, in any field at any depth (raw bytes, URL-decoded and JSON-unescaped). A hit
  is a 422 ``card_data_refused`` that never echoes the number; nothing is logged.
  Identifiers that are never stored raw are not screened: the Idempotency-Key is keyed-hashed
  before any use (``idempotency.py``) and bearer tokens are only verified, so a
  ``f4541b0638592073735e3c4f24d0b084`` key whose digit run passes Luhn is an ordinary key.
"""

from __future__ import annotations

import re

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchday.domain.cards import carries_pan, contains_pan
from matchday.web.errors import error_response

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
MESSAGE = "card numbers are never accepted: pay with a payment-method token (pm_...)"
# Control characters other than HTAB; httptools refuses most of them, an ASGI test client or
# another server may not.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")  # a header name, to echo it
# Free text that browsers may send in other encodings and that matchday never reads.
_FREE_TEXT = frozenset({b"user-agent", b"referer", b"cookie"})
# Headers whose value becomes the client's address in fraud and audit rows.
_ADDRESS = frozenset({b"x-forwarded-for", b"forwarded", b"x-real-ip"})


def _bad_header(name: bytes) -> JSONResponse:
    shown = name.decode() if _TOKEN.fullmatch(name) else "a header"
    return error_response(
        400, "invalid_header", f"{shown} must be printable ASCII without control characters"
    )


def refuse_card() -> JSONResponse:
    return error_response(422, "card_data_refused", MESSAGE)


def screen_head(scope: Scope) -> JSONResponse | None:
    """The answer refusing this request for its headers, path or query; None to go on."""
    for name, value in scope.get("headers", ()):
        if not value.isascii() and name not in _FREE_TEXT:
            return _bad_header(name)
        if _CONTROL.search(value):
            return _bad_header(name)
        if name in _ADDRESS and contains_pan(value.decode("ascii", "replace")):
            return refuse_card()
    query = scope.get("query_string", b"")
    if query and carries_pan(query.decode("latin-1")):
        return refuse_card()
    if carries_pan(scope.get("path", "")):
        return refuse_card()
    return None


def body_carries_pan(body: bytes) -> bool:
    return carries_pan(body.decode("utf-8", errors="replace"))


class PanGuard:
    """ASGI middleware; ``limit`` bounds what it buffers (larger bodies pass on untouched,
    to be refused by the app's body limit)."""

    def __init__(self, app: ASGIApp, limit: int = 1 << 20) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = screen_head(scope)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        if scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        more = True
        while more and size <= self.limit:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            more = message.get("more_body", False) and message["type"] == "http.request"
        if size <= self.limit and body_carries_pan(b"".join(m.get("body", b"") for m in messages)):
            await refuse_card()(scope, receive, send)
            return
        await self.app(scope, replaying(messages, receive), send)


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands out ``messages`` first, then reads on."""
    replay = list(messages)

    async def replayed() -> Message:
        if replay:
            return replay.pop(0)
        return await receive()

    return replayed
