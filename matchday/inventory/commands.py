"""Inventory mutations and their results, as typed values for the engine's callers.

Mutations are small frozen dataclasses. They cross Ray as plain tuples (``wire.to_wire``),
and are validated on that form both in the client and once more inside the shard (a shard
trusts no caller): :func:`matchday.inventory.wire.check`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from matchday.domain.errors import InvalidInput, MatchdayError

SKU_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
CHANNEL_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


@dataclass(frozen=True, slots=True)
class Policy:
    """Bounds on what a single request may ask for. Defaults come from settings."""

    max_qty_per_request: int = 1_000
    max_restock: int = 1_000_000
    max_on_hand: int = 1_000_000_000
    min_ttl_s: float = 1.0
    max_ttl_s: float = 24 * 3600.0
    max_limit: int = 1_000_000


DEFAULT_POLICY = Policy()


@dataclass(frozen=True, slots=True)
class Reserve:
    kind: ClassVar[str] = "reserve"
    request_id: str
    sku: str
    qty: int
    cart_id: str
    customer_id: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Release:
    kind: ClassVar[str] = "release"
    request_id: str
    sku: str
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Commit:
    """Reserved becomes sold. Sent only after the payment succeeded."""

    kind: ClassVar[str] = "commit"
    request_id: str
    sku: str
    reservation_id: str
    order_id: str


@dataclass(frozen=True, slots=True)
class Extend:
    """Push a held reservation's expiry out, e.g. while its checkout is paying."""

    kind: ClassVar[str] = "extend"
    request_id: str
    sku: str
    reservation_id: str
    ttl_s: float


@dataclass(frozen=True, slots=True)
class Resize:
    """Change a held reservation's quantity in place: a cart line's new quantity.

    One mutation instead of release-then-reserve, so a shrinking line never loses its units
    to another fan in between and a growing one is checked against the same limits as a
    reserve (per customer, low-stock per order, availability of the extra units only).
    """

    kind: ClassVar[str] = "resize"
    request_id: str
    sku: str
    reservation_id: str
    qty: int


@dataclass(frozen=True, slots=True)
class Restock:
    kind: ClassVar[str] = "restock"
    request_id: str
    sku: str
    qty: int


@dataclass(frozen=True, slots=True)
class SetOnHand:
    """Supplier or batch sync: ``units`` physically in stock and not yet sold."""

    kind: ClassVar[str] = "set_on_hand"
    request_id: str
    sku: str
    units: int


@dataclass(frozen=True, slots=True)
class AdjustLimits:
    """``None`` removes a limit."""

    kind: ClassVar[str] = "adjust_limits"
    request_id: str
    sku: str
    per_customer_limit: int | None = None
    low_stock_threshold: int | None = None
    low_stock_order_cap: int | None = None


@dataclass(frozen=True, slots=True)
class Expire:
    """Issued by the shard's own timer, never by a client."""

    kind: ClassVar[str] = "expire"
    request_id: str
    sku: str
    reservation_id: str


@dataclass(frozen=True, slots=True)
class Adjust:
    """Supplier delta: the units present and unsold change by ``delta`` (never below 0),
    applied against the ledger's own count, reconciled with live holds like a count."""

    kind: ClassVar[str] = "adjust"
    request_id: str
    sku: str
    delta: int


@dataclass(frozen=True, slots=True)
class Allocate:
    """A channel's allocation of a SKU: at most ``max_units`` units, or ``max_percent`` of
    its stock (``on_hand``, sold units included), held or sold on that channel at once.
    Neither: no cap (the channel sells against all available units). ADR 0028."""

    kind: ClassVar[str] = "allocate"
    request_id: str
    sku: str
    channel: str
    max_units: int | None = None
    max_percent: int | None = None


@dataclass(frozen=True, slots=True)
class ChannelReserve:
    """A reserve by a marketplace channel: checked against its allocation as well."""

    kind: ClassVar[str] = "channel_reserve"
    request_id: str
    sku: str
    qty: int
    cart_id: str
    customer_id: str
    ttl_s: float
    channel: str


@dataclass(frozen=True, slots=True)
class Revoke:
    """Journal only (a hold a count revoked): never a request. Holds wire code 9."""

    kind: ClassVar[str] = "revoke"
    request_id: str
    sku: str


Mutation = (
    Reserve
    | Release
    | Commit
    | Extend
    | Resize
    | Restock
    | SetOnHand
    | AdjustLimits
    | Expire
    | Adjust
    | Allocate
    | ChannelReserve
)


@dataclass(frozen=True, slots=True)
class ReservationView:
    reservation_id: str
    sku: str
    qty: int
    cart_id: str
    customer_id: str
    expires_at: float
    status: str
    order_id: str | None = None
    channel: str | None = None  # the marketplace channel that holds it; None: the shop


@dataclass(frozen=True, slots=True)
class StockView:
    sku: str
    on_hand: int
    reserved: int
    sold: int
    available: int
    per_customer_limit: int | None = None
    low_stock_threshold: int | None = None
    low_stock_order_cap: int | None = None
    revoked: tuple[str, ...] = field(default=())


Result = ReservationView | StockView


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a shard answers for one mutation: a result or a typed error, never both."""

    value: Result | None = None
    error: MatchdayError | None = None

    def unwrap(self) -> Result:
        if self.error is not None:
            raise self.error
        assert self.value is not None
        return self.value


def fields_of(obj: Any) -> dict[str, Any]:
    """A flat dataclass as a dict; ``dataclasses.asdict`` deep-copies and is ~10x slower,
    which showed up as a fifth of a shard's CPU time per batch."""
    return {name: getattr(obj, name) for name in obj.__slots__}


def check_sku(sku: object) -> str:
    if not isinstance(sku, str) or not SKU_RE.fullmatch(sku):
        raise InvalidInput("sku", "must be 1-64 characters of letters, digits, '.', '_', '-'")
    return sku
