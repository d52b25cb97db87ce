"""What every error answer of matchday must look like (issue 13, item 4).

matchday's JSON shape ``{"code", "message", "retryable"}``; a message free of tracebacks,
paths, pids, actor ids, Ray's names and terminal colours; a Retry-After on every 503 and only
retryable 503s. Used by the pin race (test_errors_serve.py) and by the OpenAPI fuzzing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping

LEAK = re.compile(
    r"Traceback|File \"|\.py\b|/(?:work|home|tmp|usr|root|srv)/|site-packages|pid=|ip=|"
    r"actor_id|ActorID|Ray(?:Task|Actor)Error|ray::|\x1b\[",
)


def problems(status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """What is wrong with one answer: nothing for a good one. ``headers`` lowercase."""
    if status < 400:
        return []
    try:
        parsed = json.loads(body)
    except ValueError:
        return [f"{status}: not JSON: {body[:300]!r}"]
    if not isinstance(parsed, dict) or not {"code", "message"} <= set(parsed):
        return [f"{status}: not matchday's error shape: {body[:300]!r}"]
    found = []
    if LEAK.search(str(parsed["message"])):
        found.append(f"{status}: internals in the message: {parsed['message']!r}")
    if status == 503:
        if not headers.get("retry-after", "").isdigit():
            found.append("503 without Retry-After")
        if parsed.get("retryable") is not True:
            found.append("503 that is not retryable")
    return found


def idempotency_key() -> str:
    """A fresh Idempotency-Key without digits: a hex key passes the Luhn check now and then
    and is refused as a card number (issue 13, item 2), which is not what these tests test."""
    return uuid.uuid4().hex.translate(_NO_DIGITS)


_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")
