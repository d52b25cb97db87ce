"""Operators' side of channels: create, list, rotate a key, disable, set an allocation.

The HTTP routes (matchday/web/admin_channels.py) and the CLI (cluster/channels_cli.py) both
call this and audit every call with its outcome. A key is in one answer only (create,
rotate): it is stored as a hash, so it can never be shown again, and a lost answer is
followed by a rotation. A rotation replaces the key at once: a marketplace switches keys in
one deploy, and a leaked key must stop working the moment it is rotated.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from matchday.channels.model import Channel, ChannelStockView, key_hash, new_key
from matchday.channels.ports import ChannelEngine, ChannelStore
from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Conflict, InvalidInput, NotFound
from matchday.inventory.commands import CHANNEL_RE, SKU_RE

ChannelId = Annotated[str, Field(pattern=f"^{CHANNEL_RE.pattern}$", max_length=32)]
Name = Annotated[str, Field(min_length=1, max_length=120, pattern=r"^[^\x00-\x1f\x7f]+$")]
Sku = Annotated[str, Field(min_length=1, max_length=64, pattern=f"^{SKU_RE.pattern}$")]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelIn(_In):
    channel_id: ChannelId = Field(description="lowercase letters, digits and '-'; in the key")
    name: Name


class AllocationIn(_In):
    """At most ``max_units`` units, or ``max_percent`` of the SKU's stock, held or sold on
    the channel; neither removes the allocation (the channel sells against all stock)."""

    sku: Sku
    max_units: Annotated[int, Field(ge=0, le=1_000_000, strict=True)] | None = None
    max_percent: Annotated[int, Field(ge=0, le=100, strict=True)] | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> AllocationIn:
        if self.max_units is not None and self.max_percent is not None:
            raise ValueError("give max_units or max_percent, not both")
        return self


@dataclass(frozen=True, slots=True)
class Issued:
    """A channel and the API key it was just given: shown this once."""

    channel: Channel
    key: str

    def public(self) -> dict[str, Any]:
        return {**self.channel.public(), "api_key": self.key}


class ChannelAdmin:
    def __init__(
        self,
        repo: ChannelStore,
        engine: ChannelEngine | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.repo = repo
        self.engine = engine  # for allocations only: listing and keys need no engine
        self.clock = clock or SystemClock()

    async def create(self, spec: ChannelIn) -> Issued:
        now = self.clock.now()
        channel = Channel(spec.channel_id, spec.name, True, now, now, now)
        key = new_key(spec.channel_id)
        if not await self.repo.insert(channel, key_hash(spec.channel_id, key)):
            raise Conflict(f"channel {spec.channel_id} exists already")
        return Issued(channel, key)

    async def get(self, channel_id: str) -> Channel:
        channel = await self.repo.get(channel_id)
        if channel is None:
            raise NotFound("channel", channel_id)
        return channel

    async def channels(self) -> list[Channel]:
        return await self.repo.channels()

    async def rotate(self, channel_id: str) -> Issued:
        """A new key now; the old one stops working at once."""
        key = new_key(channel_id)
        channel = await self.repo.set_key(channel_id, key_hash(channel_id, key), self.clock.now())
        if channel is None:
            raise NotFound("channel", channel_id)
        return Issued(channel, key)

    async def set_active(self, channel_id: str, active: bool) -> Channel:
        """A disabled channel's key is refused (403); its holds expire as usual."""
        channel = await self.repo.set_active(channel_id, active, self.clock.now())
        if channel is None:
            raise NotFound("channel", channel_id)
        return channel

    async def allocate(
        self, channel_id: str, body: AllocationIn, request_id: str | None = None
    ) -> ChannelStockView:
        """Set the allocation through the engine, which enforces it (ADR 0028)."""
        if self.engine is None:
            raise InvalidInput("engine", "allocations need the inventory engine")
        await self.get(channel_id)
        rid = request_id or f"alloc:{uuid.uuid4().hex}"
        await self.engine.allocate(rid, body.sku, channel_id, body.max_units, body.max_percent)
        return (await self.stock(channel_id, [body.sku]))[0]

    async def stock(self, channel_id: str, skus: list[str] | None = None) -> list[ChannelStockView]:
        return await self.repo.stock(channel_id, skus)
