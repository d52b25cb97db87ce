"""The waiting room's proof of work, as a fan's browser solves it (storefront queue.js).

matchday.waitingroom.tokens.solve does the same, but a locustfile cannot import it: Locust
puts the locustfile's folder first on sys.path, where loadtests/matchday.py hides the
matchday package.
"""

from __future__ import annotations

import hashlib


def solve(challenge: str, bits: int) -> str:
    """A nonce whose sha256 with the challenge starts with ``bits`` zero bits."""
    n = 0
    while True:
        digest = hashlib.sha256(f"{challenge}.{n:x}".encode()).digest()
        if 32 - int.from_bytes(digest[:4], "big").bit_length() >= bits:
            return f"{n:x}"
        n += 1
