"""Ids and idempotency keys: what a caller's key may be, and the ids derived from it.

Shared by the features (carts, checkout, polls) and the HTTP layer; the inventory engine's
request ids follow the same rule (``matchday.inventory.wire`` checks them with ``ID_RE``).
"""

from __future__ import annotations

import base64
import hashlib
import re

from matchday.domain.errors import InvalidInput

ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
MAX_KEY = 64


def check_key(key: object, field: str = "Idempotency-Key") -> str:
    if not isinstance(key, str) or len(key) > MAX_KEY or not ID_RE.fullmatch(key):
        raise InvalidInput(field, f"must be 1-{MAX_KEY} characters of letters, digits, . _ : -")
    return key


def derived_id(prefix: str, *parts: str) -> str:
    """A stable id from the caller's identity and idempotency key: a retry names the same thing.

    Base32, not hex: a hex id has a 13-digit run (and so can look like a card number to the
    PAN guard) about once in a thousand; with six digits among 32 symbols, never in practice.
    """
    digest = hashlib.blake2b("\0".join(parts).encode(), digest_size=15).digest()
    return f"{prefix}_{base64.b32encode(digest).decode().lower()}"
