"""A drop, what operators send to create one, and what a fan's status says."""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from matchday.inventory.commands import SKU_RE

SCHEDULED, OPEN, PAUSED, CLOSED = "scheduled", "open", "paused", "closed"
STATES = (SCHEDULED, OPEN, PAUSED, CLOSED)
DROP_ID_RE = re.compile(r"d_[a-z2-7]{16}")
# Shopper ids as Identity hands them out, and what tests and the CLI use: never a dot.
CUSTOMER_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")

# Who made a drop, and where its rate came from (ADR 0026).
OPERATOR, AUTO = "operator", "auto"
# A rate of "auto": derived from the capacity profile (matchday/capacity/admission.py).
Rate = float | Literal["auto"]

# What a status says.
WAITING, ADMITTED, SOLD_OUT = "waiting", "admitted", "sold_out"


def drop_id_for(request_id: str) -> str:
    """The drop a create request makes: the same request id (a retry) names the same drop."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=10).digest()
    return "d_" + base64.b32encode(digest).decode().lower()


class DropIn(BaseModel):
    """A drop as an operator defines it."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str = Field(min_length=1, max_length=80)
    skus: list[str] = Field(min_length=1, max_length=50)
    # Epoch seconds; null: the drop waits for an explicit open.
    opens_at: float | None = Field(None, ge=0, le=1e11)
    # Fans admitted per second, or "auto": from the capacity profile.
    rate_per_s: Rate = Field(10.0)
    pass_ttl_s: float = Field(600.0, ge=30, le=3600)
    pow_bits: int = Field(16, ge=0, le=24)
    address_limit: int = Field(8, ge=1, le=10_000)

    @field_validator("rate_per_s")
    @classmethod
    def _rate(cls, rate: Rate) -> Rate:
        return rate_in_bounds(rate)

    @field_validator("skus")
    @classmethod
    def _skus(cls, skus: list[str]) -> list[str]:
        bad = [s for s in skus if not SKU_RE.fullmatch(s)]
        if bad:
            raise ValueError(f"not a SKU: {', '.join(bad[:5])}")
        return sorted(set(skus))


class RateIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    rate_per_s: Rate

    @field_validator("rate_per_s")
    @classmethod
    def _rate(cls, rate: Rate) -> Rate:
        return rate_in_bounds(rate)


MIN_RATE, MAX_RATE = 0.01, 100_000.0


def rate_in_bounds(rate: Rate) -> Rate:
    if rate != AUTO and not MIN_RATE <= float(rate) <= MAX_RATE:
        raise ValueError(f"a rate is 'auto' or between {MIN_RATE} and {MAX_RATE:g} fans/s")
    return rate


@dataclass(frozen=True, slots=True)
class Drop:
    drop_id: str
    name: str
    skus: tuple[str, ...]
    state: str
    opens_at: float | None
    rate_per_s: float
    pass_ttl_s: float
    pow_bits: int
    address_limit: int
    created_at: float
    origin: str = OPERATOR
    rate_source: str = OPERATOR

    def state_at(self, now: float) -> str:
        """The state fans see: a scheduled drop is open from its opening time on."""
        if self.state == SCHEDULED and self.opens_at is not None and now >= self.opens_at:
            return OPEN
        return self.state

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "drop_id": self.drop_id,
            "name": self.name,
            "skus": list(self.skus),
            "state": self.state_at(now),
            "opens_at": self.opens_at,
            "rate_per_s": self.rate_per_s,
            "pass_ttl_s": self.pass_ttl_s,
            "pow_bits": self.pow_bits,
            "address_limit": self.address_limit,
            "created_at": self.created_at,
            "origin": self.origin,
            "rate_source": self.rate_source,
        }


@dataclass(frozen=True, slots=True)
class Located:
    """Where a fan stands in the store, after the queue was advanced."""

    kind: str  # "admitted", "waiting", or "unknown" (no such ticket in the store)
    rank: int = 0  # 0-based position among the waiting, for "waiting"
    admitted_at: float = 0.0  # epoch seconds, for "admitted"
    waiting: int = 0  # how many wait in all
    admitted_places: tuple[int, ...] = ()  # the places this advance admitted


@dataclass(frozen=True, slots=True)
class Status:
    drop_id: str
    state: str  # scheduled | waiting | admitted | paused | sold_out | closed
    position: int | None = None  # 1 = next in line
    waiting: int = 0
    estimated_wait_s: float | None = None
    held: int = 0  # units in carts that may still come back (sold out)
    ticket: str | None = None
    pass_expires_at: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {
            "drop_id": self.drop_id,
            "state": self.state,
            "position": self.position,
            "waiting": self.waiting,
            "estimated_wait_s": self.estimated_wait_s,
            "held": self.held,
            "pass_expires_at": self.pass_expires_at,
            **self.extra,
        }
        if self.ticket is not None:
            out["ticket"] = self.ticket
        return out
