"""Personal offer codes: derived, not stored, so a vote written behind (ADR 0013) can be
redeemed at once; single use comes from the claim PostgreSQL takes with the order.

A code reads ``<poll_id>-<option_id>-<expiry, base 36>-<mac>``: the MAC (HMAC-SHA256 under a
key derived from the shop's secret) binds poll, option, expiry and the customer, so a code is
worthless to anyone but the voter it was shown to, and cannot be edited to last longer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from matchday.polls.models import OfferInvalid, Poll

_KEY_LABEL = b"matchday offer code v1"
CODE_RE = re.compile(r"^(p_[a-z2-7]{4,40})-(o[1-9][0-9]?)-([0-9a-z]{1,8})-([a-z2-7]{16})$")
CODE_PATTERN = r"^p_[a-z2-7]{4,40}-o[1-9][0-9]?-[0-9a-z]{1,8}-[a-z2-7]{16}$"


@dataclass(frozen=True, slots=True)
class CodeClaims:
    poll_id: str
    option_id: str
    expires_at: int


def _base36(n: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


class OfferCodes:
    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 32:
            raise ValueError("secret_key must be at least 32 characters")
        # Domain separation: shopper tokens are MACs under the same secret.
        self._key = hmac.new(secret_key.encode(), _KEY_LABEL, hashlib.sha256).digest()

    def _mac(self, customer_id: str, poll_id: str, option_id: str, expires_at: int) -> str:
        msg = "\0".join((customer_id, poll_id, option_id, str(expires_at))).encode()
        digest = hmac.new(self._key, msg, hashlib.sha256).digest()
        return base64.b32encode(digest[:10]).decode().lower()

    def issue(self, customer_id: str, poll_id: str, option_id: str, expires_at: int) -> str:
        mac = self._mac(customer_id, poll_id, option_id, expires_at)
        return f"{poll_id}-{option_id}-{_base36(expires_at)}-{mac}"

    def verify(self, customer_id: str, code: str, now: float) -> CodeClaims:
        """The claims of ``code`` if it was issued to ``customer_id`` and is still valid."""
        match = CODE_RE.fullmatch(code)
        if match is None:
            raise OfferInvalid("not an offer code")
        poll_id, option_id, expiry, mac = match.groups()
        expires_at = int(expiry, 36)
        if not hmac.compare_digest(mac, self._mac(customer_id, poll_id, option_id, expires_at)):
            raise OfferInvalid("this code belongs to another shopper")
        if now >= expires_at:
            raise OfferInvalid("this code has expired")
        return CodeClaims(poll_id, option_id, expires_at)


def parse_poll_id(code: str) -> str:
    match = CODE_RE.fullmatch(code)
    if match is None:
        raise OfferInvalid("not an offer code")
    return match.group(1)


def offer_product(poll: Poll, option_id: str) -> str | None:
    """The product an offer of ``poll`` discounts for a voter of ``option_id`` (None: none)."""
    if poll.offer is None:
        return None
    if poll.offer.product_id:
        return poll.offer.product_id
    option = poll.option(option_id)
    return option.product_id if option else None


class Line(Protocol):
    """An order line as pricing sees it (shop.models.OrderLine is one)."""

    @property
    def sku(self) -> str: ...

    @property
    def qty(self) -> int: ...

    @property
    def unit_price_cents(self) -> int: ...


def discount_cents(
    percent_off: int,
    lines: Sequence[Line],
    eligible: set[str],
    limits: dict[str, int | None],
) -> int:
    """Percent off the eligible lines, on at most each SKU's per-customer limit of units.

    Rounded down per line, so the shop never gives more than the offer says.
    """
    if not 1 <= percent_off <= 100:
        raise ValueError("percent_off out of range")
    left = {sku: limits.get(sku) for sku in eligible}
    total = 0
    for line in lines:
        if line.sku not in eligible or line.qty <= 0:
            continue
        cap = left[line.sku]
        units = line.qty if cap is None else min(line.qty, cap)
        if cap is not None:
            left[line.sku] = cap - units
        total += units * line.unit_price_cents * percent_off // 100
    return total


class OfferSource(Protocol):
    """What pricing an offer needs from storage (PollsRepository implements it)."""

    async def poll(self, poll_id: str) -> Poll | None: ...

    async def redeemed_by(self, poll_id: str, customer_id: str) -> str | None: ...

    async def product_skus(self, product_id: str, skus: Sequence[str]) -> set[str]: ...

    async def customer_limits(self, skus: Sequence[str]) -> dict[str, int | None]: ...


class OfferBook:
    """Prices an offer code against an order's lines for checkout (shop.checkout.Offers)."""

    def __init__(self, source: OfferSource, codes: OfferCodes) -> None:
        self.source = source
        self.codes = codes

    async def discount(self, customer_id: str, code: str, lines: Sequence[Line], now: float) -> int:
        claims = self.codes.verify(customer_id, code, now)
        poll = await self.source.poll(claims.poll_id)
        if poll is None or poll.offer is None:
            raise OfferInvalid("this poll has no offer")
        product = offer_product(poll, claims.option_id)
        if product is None:
            raise OfferInvalid("this vote earned no offer")
        if await self.source.redeemed_by(claims.poll_id, customer_id) is not None:
            raise OfferInvalid("this code was already used")
        skus = sorted({line.sku for line in lines})
        eligible = await self.source.product_skus(product, skus)
        if not eligible:
            raise OfferInvalid(f"the code is for {product}, which is not in this cart")
        limits = await self.source.customer_limits(sorted(eligible))
        return discount_cents(poll.offer.percent_off, lines, eligible, limits)
