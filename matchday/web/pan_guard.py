"""Card numbers never get in: any request carrying one is refused before a handler sees it.

matchday takes payment-method tokens only (``pm_...``); a primary account number (PAN) in a
request would otherwise reach logs, the idempotency store (Redis) and tables. The guard looks
at the whole body of every POST/PUT/PATCH, the query string and the Idempotency-Key, in any
field and at any depth (it scans the raw bytes, so nesting and field names do not matter):
13 to 19 digits, optionally grouped by single spaces or dashes, that pass the Luhn check. A
hit is answered 422 ``card_data_refused`` without echoing the number, and nothing is logged.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from matchday.web.errors import error_response

# A run of digits with at most one space or dash between any two of them; the length is
# checked after the separators are removed. Bounded by non-digits so that a 25-digit id is
# one long run (never a PAN), not several candidate windows.
_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_BODY_METHODS = {"POST", "PUT", "PATCH"}
# JSON may spell any character as \\uXXXX: "\\u0034\\u0032..." is a card number to the app.
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")
MESSAGE = "card numbers are never accepted: pay with a payment-method token (pm_...)"


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def contains_pan(text: str) -> bool:
    """True if ``text`` holds something shaped like a card number that passes Luhn."""
    for match in _CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False


def _carries_pan(body: str) -> bool:
    """The body as sent, URL-decoded (forms) and with JSON escapes decoded."""
    if contains_pan(body):
        return True
    if "%" in body and contains_pan(unquote_plus(body)):
        return True
    if "\\u" in body:
        return contains_pan(_JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), body))
    return False


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
        query = unquote_plus(scope.get("query_string", b"").decode("latin-1"))
        key = b"".join(v for k, v in scope.get("headers", ()) if k == b"idempotency-key")
        if contains_pan(query) or contains_pan(key.decode("latin-1")):
            await self._refuse(scope, receive, send)
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
        if size <= self.limit:
            body = b"".join(m.get("body", b"") for m in messages)
            text = body.decode("utf-8", errors="replace")
            if _carries_pan(text):
                await self._refuse(scope, receive, send)
                return
        replay = list(messages)

        async def replayed() -> Message:
            if replay:
                return replay.pop(0)
            return await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(422, "card_data_refused", MESSAGE)
        await response(scope, receive, send)
