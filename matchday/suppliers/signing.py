"""Signed pushes: HMAC-SHA256 over ``<timestamp>.<body>`` under the sender's own secret.

A sender puts two headers on each request::

    X-Matchday-Timestamp: 1796000000                    (epoch seconds, when it signed)
    X-Matchday-Signature: v1=<hex hmac-sha256(secret, b"1796000000." + body)>

The timestamp is inside the MAC, so an old request cannot be re-dated; one signed more than
``WINDOW_S`` away from now is refused, so a captured request is worthless after a few
minutes, and inside that window its message id makes it a harmless repeat (``push``). During
a secret rotation a sender may sign with both secrets (``v1=<a>,v1=<b>``), and the previous
secret stays valid for a grace period, so rotating never drops a message.

Nothing here knows about suppliers beyond the names: a marketplace channel can verify its
requests with the same functions and its own sealed secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from matchday.admin.sealing import PREFIX, SealError, TotpSeal
from matchday.suppliers.model import InvalidSignature, SealedSecrets

TIMESTAMP_HEADER = "X-Matchday-Timestamp"
SIGNATURE_HEADER = "X-Matchday-Signature"
SCHEME = "v1"
# Stripe's tolerance for webhook signatures, and the window a message id must be remembered
# for at least (push.py keeps them far longer). Wider only helps a replayer; a supplier whose
# clock is off by minutes has an NTP problem worth hearing about as a 401.
WINDOW_S = 300.0
SECRET_PREFIX = "mdsup_"  # noqa: S105 - a prefix, not a secret
_TIMESTAMP_RE = re.compile(r"[0-9]{1,12}")
_SIGNATURE_RE = re.compile(r"v1=([0-9a-f]{64})")
_MAX_SIGNATURES = 4


def new_secret() -> str:
    """A fresh signing secret: 256 random bits, with a prefix secret scanners can match."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value for ``body`` sent at ``timestamp``."""
    return f"{SCHEME}={_mac(secret, timestamp, body)}"


def signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: sign(secret, timestamp, body)}


def check_timestamp(header: str | None, now: float, window_s: float = WINDOW_S) -> int:
    if header is None or not _TIMESTAMP_RE.fullmatch(header):
        raise InvalidSignature(f"{TIMESTAMP_HEADER} must be whole epoch seconds")
    timestamp = int(header)
    if abs(now - timestamp) > window_s:
        raise InvalidSignature(
            f"{TIMESTAMP_HEADER} is more than {window_s:.0f} s from the server's time:"
            " sign with the current time (a replayed or delayed request is refused)"
        )
    return timestamp


def verify(
    candidates: Iterable[str],
    signature: str | None,
    timestamp: str | None,
    body: bytes,
    now: float,
    window_s: float = WINDOW_S,
) -> int:
    """The signed timestamp if one of ``signature``'s MACs is ``body``'s under one of the
    ``candidates`` secrets; :class:`InvalidSignature` with the reason otherwise."""
    ts = check_timestamp(timestamp, now, window_s)
    if not signature:
        raise InvalidSignature(f"missing {SIGNATURE_HEADER}")
    parts = [p.strip() for p in signature.split(",")][:_MAX_SIGNATURES]
    macs = [m.group(1) for p in parts if (m := _SIGNATURE_RE.fullmatch(p))]
    if not macs:
        raise InvalidSignature(f"{SIGNATURE_HEADER} must be v1=<64 hex digits>")
    for secret in candidates:
        expected = _mac(secret, ts, body)
        # Every MAC is compared, whatever matched: the time taken says nothing about which.
        if any([hmac.compare_digest(expected, mac) for mac in macs]):
            return ts
    raise InvalidSignature("signature does not match the body under this sender's secret")


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


class SecretSeal:
    """Signing secrets sealed at rest (AES-256-GCM, matchday/admin/sealing.py) under a key
    derived from the shop's secret key for this purpose alone, bound to their owner's id."""

    def __init__(self, secret_key: str, purpose: str = "supplier") -> None:
        self._seal = TotpSeal(
            secret_key,
            info=f"matchday {purpose} signing secret v1".encode(),
            what=f"the signing secret of {purpose}",
        )

    def seal(self, owner: str, secret: str) -> str:
        return self._seal.seal(owner, secret)

    @property
    def sealer(self) -> TotpSeal:
        """The AEAD seal itself, for re-sealing under a new key (``admin.SecretRows``)."""
        return self._seal

    def open_current(self, owner: str, sealed: str) -> str:
        """One sealed secret, opened (:class:`SealError` if it does not open)."""
        return self._seal.open(owner, sealed)

    def open_all(self, owner: str, sealed: SealedSecrets, now: float) -> list[str]:
        """The secrets that verify ``owner``'s requests now: the current one, and the
        previous one while its grace period lasts. A secret that does not open (another
        secret key, an edited row) verifies nothing."""
        stored = [sealed.current]
        if sealed.previous and sealed.previous_until and now < sealed.previous_until:
            stored.append(sealed.previous)
        out = []
        for value in stored:
            if not value.startswith(PREFIX):
                continue  # never sealed: not a secret this code wrote, so not one to trust
            try:
                out.append(self._seal.open(owner, value))
            except SealError:
                continue
        return out
