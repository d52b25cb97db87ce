"""A marketplace channel, its API key, and what it sees of a SKU.

A key is ``mdch_<channel id>_<64 hex digits>``: the prefix lets secret scanners find a leaked
one, the channel id says which hash to compare with (no look-up by secret), and 256 random
bits make a fast hash as safe as a slow one (as admin keys, ADR 0005). Only the hash is
stored; the key is shown once, when it is issued.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from matchday.inventory.commands import CHANNEL_RE

KEY_PREFIX = "mdch_"
_KEY_BYTES = 32


def new_key(channel_id: str) -> str:
    return f"{KEY_PREFIX}{channel_id}_{secrets.token_hex(_KEY_BYTES)}"


def key_hash(channel_id: str, key: str) -> bytes:
    """The channel id is hashed in, so one channel's hash is useless for another."""
    return hashlib.sha256(f"matchday-channel:{channel_id}:{key}".encode()).digest()


def channel_of(key: str) -> str | None:
    """The channel a well-formed key names, or None."""
    if not key.startswith(KEY_PREFIX):
        return None
    channel, _, secret = key[len(KEY_PREFIX) :].partition("_")
    if not CHANNEL_RE.fullmatch(channel) or len(secret) != 2 * _KEY_BYTES:
        return None
    return channel


def key_matches(channel_id: str, key: str, stored: bytes) -> bool:
    return hmac.compare_digest(key_hash(channel_id, key), stored)


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: str
    name: str
    active: bool
    created_at: float
    updated_at: float
    key_issued_at: float

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ChannelStockView:
    """A SKU as one channel sees it, from durable counters (as of the last group commit)."""

    sku: str
    channel_id: str
    available: int  # the SKU's available units, for everyone
    max_units: int | None
    max_percent: int | None
    cap: int | None  # the allocation in units now; None: no allocation
    held: int
    sold: int

    @property
    def remaining(self) -> int | None:
        return None if self.cap is None else max(self.cap - self.held - self.sold, 0)

    @property
    def available_to_channel(self) -> int:
        left = self.remaining
        return self.available if left is None else min(self.available, left)

    def public(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "remaining_allocation": self.remaining,
            "available_to_channel": self.available_to_channel,
        }
