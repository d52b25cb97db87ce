"""Tickets, passes and proof-of-work challenges: HMAC-signed, bound to drop and shopper.

Signed under a key derived from ``secret_key`` (as admin sessions derive theirs), each kind
with its own prefix inside the MAC, so no token of one kind passes for another. Checking one
is a regular expression, one HMAC and a clock read: no I/O, so passes keep working while
Redis is away (ADR 0026).

    ticket     mdt1.<drop>.<customer>.<place>.<expires>.<mac>
    pass       mdp1.<drop>.<customer>.<expires>.<mac>
    challenge  mdc1.<drop>.<customer>.<bits>.<expires>.<salt>.<mac>

Numbers, salts and MACs are written in hex with the digits shifted to g-p (as ``fresh_key``
does): tickets travel in query strings and bodies, which the PAN guard screens, and a run of
13 or more digits that passes Luhn would be refused there as a card number.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from matchday.waitingroom.errors import TokenExpired, TokenMalformed, TokenRefused, WrongPow

_KEY_LABEL = b"matchday waiting room v1"
_MAC = r"([a-p]{32})"
_DROP = r"(d_[a-z2-7]{16})"
_CUST = r"([A-Za-z0-9_-]{1,64})"
_NUM = r"(g|[h-p][a-p]{0,15})"  # canonical: no leading zero, so one string per number
_TICKET = re.compile(rf"mdt1\.{_DROP}\.{_CUST}\.{_NUM}\.{_NUM}\.{_MAC}")
_PASS = re.compile(rf"mdp1\.{_DROP}\.{_CUST}\.{_NUM}\.{_MAC}")
_BITS = r"([0-9]{1,2})"
_SALT = r"([a-p]{16})"
_CHALLENGE = re.compile(rf"mdc1\.{_DROP}\.{_CUST}\.{_BITS}\.{_NUM}\.{_SALT}\.{_MAC}")
_NONCE = re.compile(r"[A-Za-z0-9]{1,32}")

TICKET_TTL_S = 24 * 3600  # longer than any drop's queue
CHALLENGE_TTL_S = 300  # time to solve one, with room for a slow phone
MAX_BITS = 24
_NO_DIGITS = str.maketrans("0123456789", "ghijklmnop")
_DIGITS = str.maketrans("ghijklmnop", "0123456789")


def _enc(n: int) -> str:
    return format(n, "x").translate(_NO_DIGITS)


def _dec(text: str) -> int:
    return int(text.translate(_DIGITS), 16)


@dataclass(frozen=True, slots=True)
class Ticket:
    drop_id: str
    customer: str
    place: int  # microseconds of arrival, plus the bot offset when pushed back
    expires_at: int


def leading_zero_bits(digest: bytes) -> int:
    value = int.from_bytes(digest[:4], "big")
    return 32 - value.bit_length()


def pow_digest(challenge: str, nonce: str) -> bytes:
    return hashlib.sha256(f"{challenge}.{nonce}".encode()).digest()


def solve(challenge: str, bits: int) -> str:
    """A nonce for ``challenge`` (what the storefront's script does; tests and load tests)."""
    n = 0
    while leading_zero_bits(pow_digest(challenge, format(n, "x"))) < bits:
        n += 1
    return format(n, "x")


class Tokens:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        self._key = hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, *parts: object) -> str:
        message = "|".join(str(p) for p in parts).encode()
        return hmac.digest(self._key, message, hashlib.sha256).hex()[:32].translate(_NO_DIGITS)

    # -- tickets -----------------------------------------------------------------------------

    def ticket(self, drop_id: str, customer: str, place: int, now: float) -> str:
        expires = int(now) + TICKET_TTL_S
        mac = self._mac("ticket", drop_id, customer, place, expires)
        return f"mdt1.{drop_id}.{customer}.{_enc(place)}.{_enc(expires)}.{mac}"

    def read_ticket(self, token: str | None, drop_id: str, now: float) -> Ticket:
        """A genuine, live ticket of this drop (its shopper is checked by the caller)."""
        match = _TICKET.fullmatch(token or "")
        if match is None:
            raise TokenMalformed("ticket")
        drop, customer, place_text, expires_text, mac = match.groups()
        place, expires = _dec(place_text), _dec(expires_text)
        if not hmac.compare_digest(mac, self._mac("ticket", drop, customer, place, expires)):
            raise TokenRefused("ticket", "not signed by this shop")
        if drop != drop_id:
            raise TokenRefused("ticket", "of another drop")
        if now >= expires:
            raise TokenExpired("ticket")
        return Ticket(drop, customer, place, expires)

    def check_ticket(self, token: str | None, drop_id: str, customer: str, now: float) -> Ticket:
        ticket = self.read_ticket(token, drop_id, now)
        if ticket.customer != customer:
            raise TokenRefused("ticket", "issued to another shopper")
        return ticket

    # -- passes ------------------------------------------------------------------------------

    def pass_(self, drop_id: str, customer: str, expires_at: float) -> str:
        expires = int(expires_at)
        mac = self._mac("pass", drop_id, customer, expires)
        return f"mdp1.{drop_id}.{customer}.{_enc(expires)}.{mac}"

    def check_pass(
        self, token: str | None, drop_id: str, customer: str, now: float, grace_s: float = 0.0
    ) -> int:
        """The pass's expiry, if it is genuine, of this drop and shopper, and live (``grace_s``
        past its expiry at most)."""
        match = _PASS.fullmatch(token or "")
        if match is None:
            raise TokenMalformed("pass")
        drop, who, expires_text, mac = match.groups()
        expires = _dec(expires_text)
        if not hmac.compare_digest(mac, self._mac("pass", drop, who, expires)):
            raise TokenRefused("pass", "not signed by this shop")
        if drop != drop_id:
            raise TokenRefused("pass", f"of another drop, not {drop_id}")
        if who != customer:
            raise TokenRefused("pass", "issued to another shopper")
        if now >= expires + grace_s:
            raise TokenExpired("pass")
        return expires

    # -- proof of work -----------------------------------------------------------------------

    def challenge(self, drop_id: str, customer: str, bits: int, now: float) -> str:
        expires = int(now) + CHALLENGE_TTL_S
        salt = secrets.token_hex(8).translate(_NO_DIGITS)
        mac = self._mac("challenge", drop_id, customer, bits, expires, salt)
        return f"mdc1.{drop_id}.{customer}.{bits}.{_enc(expires)}.{salt}.{mac}"

    def check_work(
        self, challenge: str, nonce: str, drop_id: str, customer: str, bits: int, now: float
    ) -> None:
        """Accept a nonce that solves a genuine live challenge of this drop and shopper, at
        no fewer bits than the drop asks now."""
        match = _CHALLENGE.fullmatch(challenge)
        if match is None or not _NONCE.fullmatch(nonce):
            raise TokenMalformed("proof of work")
        drop, who, asked, expires_text, salt, mac = match.groups()
        expires = _dec(expires_text)
        if not hmac.compare_digest(mac, self._mac("challenge", drop, who, asked, expires, salt)):
            raise TokenRefused("challenge", "not signed by this shop")
        if drop != drop_id or who != customer:
            raise TokenRefused("challenge", "of another drop or shopper")
        if now >= expires:
            raise TokenExpired("challenge")
        if int(asked) < min(bits, MAX_BITS):
            raise WrongPow("the challenge is easier than the drop asks now: fetch another")
        if leading_zero_bits(pow_digest(challenge, nonce)) < int(asked):
            raise WrongPow("the nonce does not solve the challenge")
