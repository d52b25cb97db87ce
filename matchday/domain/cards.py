"""What a card number (PAN) looks like, for every entry point that must refuse one.

matchday takes payment-method tokens only (``pm_...``). Where a person or a client could put
a card number into something matchday stores or logs (free text, an operator-chosen id, a
URL, a CLI argument, an import file), it is refused with these checks; identifiers that are
never stored raw (the Idempotency-Key, bearer tokens) are not screened (docs/threat-model.md).

A candidate is 13 to 19 ASCII digits, optionally grouped by single spaces or dashes, that
passes the Luhn check. Runs are bounded by non-digits, so a 25-digit id is one long run
(never a card), not several candidate windows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote_plus

_CANDIDATE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")
_SEPARATORS = re.compile(r"[ -]")
# JSON may spell any character as \\uXXXX: "\\u0034\\u0032..." is a card number to the app.
_JSON_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


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
        digits = _SEPARATORS.sub("", match.group())
        if 13 <= len(digits) <= 19 and luhn_ok(digits):
            return True
    return False


def carries_pan(text: str) -> bool:
    """``text`` as sent, URL-decoded (forms, query strings) and with JSON escapes decoded."""
    if contains_pan(text):
        return True
    if ("%" in text or "+" in text) and contains_pan(unquote_plus(text)):
        return True
    if "\\u" in text:
        return contains_pan(_JSON_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text))
    return False


def pan_fields(values: Mapping[str, object], skip: Iterable[str] = ()) -> list[str]:
    """Names of the string values (or strings in list values) that carry a card number."""
    skipped = set(skip)
    found = []
    for name, value in values.items():
        if name in skipped:
            continue
        texts = value if isinstance(value, list | tuple) else [value]
        if any(isinstance(t, str) and carries_pan(t) for t in texts):
            found.append(name)
    return found
