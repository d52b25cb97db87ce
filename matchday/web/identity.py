"""Shopper identity: a signed, stateless token naming a customer id.

``POST /session`` hands out ``<customer_id>.<mac>``; every shopper call carries it as a bearer
token. Checking it is one HMAC, no database or Redis read on the hot path. A token only says
"this is customer X": per-customer purchase limits then bind whoever holds it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from matchday.domain.errors import Unauthorized

# What new_customer() hands out: "u_" + base32 of 10 bytes, a dot, 32 hex digits. Checked
# before the MAC is compared: hmac.compare_digest raises TypeError on non-ASCII str (a 500).
_TOKEN = re.compile(r"(u_[a-z2-7]{16})\.([0-9a-f]{32})")


class Identity:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        self._key = secret_key.encode()

    def _mac(self, customer_id: str) -> str:
        # hmac.digest: OpenSSL's one-shot HMAC, without building an HMAC object per request.
        return hmac.digest(self._key, customer_id.encode(), hashlib.sha256).hex()[:32]

    def new_customer(self) -> tuple[str, str]:
        # Base32 for the same reason as domain.ids.derived_id: no card-number-like digit runs.
        customer_id = f"u_{base64.b32encode(secrets.token_bytes(10)).decode().lower()}"
        return customer_id, self.token(customer_id)

    def token(self, customer_id: str) -> str:
        return f"{customer_id}.{self._mac(customer_id)}"

    def customer(self, authorization: str | None) -> str:
        """The customer id a ``Bearer`` header proves, or :class:`Unauthorized`."""
        if not authorization:
            raise Unauthorized("missing shopper token: POST /api/shop/session for one")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token.count(".") != 1:
            raise Unauthorized("Authorization must be 'Bearer <shopper token>'")
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise Unauthorized("invalid shopper token")
        customer_id, mac = match.groups()
        if not hmac.compare_digest(mac, self._mac(customer_id)):
            raise Unauthorized("invalid shopper token")
        return customer_id
