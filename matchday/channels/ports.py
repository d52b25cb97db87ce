"""What channels need from the inventory engine (``InventoryClient`` provides it) and from
storage (``matchday/storage/channels_repo.py`` implements it)."""

from __future__ import annotations

from typing import Protocol

from matchday.channels.model import Channel, ChannelStockView
from matchday.inventory.commands import ReservationView, StockView


class ChannelEngine(Protocol):
    """The engine's calls a channel sells through, idempotent by request id."""

    async def reserve_for(
        self,
        channel: str,
        request_id: str,
        sku: str,
        qty: int,
        cart_id: str,
        customer_id: str,
        ttl_s: float,
    ) -> ReservationView: ...

    async def commit(
        self, request_id: str, sku: str, reservation_id: str, order_id: str
    ) -> ReservationView: ...

    async def release(self, request_id: str, sku: str, reservation_id: str) -> ReservationView: ...

    async def allocate(
        self,
        request_id: str,
        sku: str,
        channel: str,
        max_units: int | None = None,
        max_percent: int | None = None,
    ) -> StockView: ...


class ChannelStore(Protocol):
    """Channels, their API keys' hashes, and their view of stock."""

    async def insert(self, c: Channel, hashed: bytes) -> bool:
        """False if the id is taken (nothing changed)."""
        ...

    async def get(self, channel_id: str) -> Channel | None: ...

    async def channels(self) -> list[Channel]: ...

    async def key_of(self, channel_id: str) -> tuple[bool, bytes] | None:
        """(active, key hash) of a channel, or None."""
        ...

    async def set_key(self, channel_id: str, hashed: bytes, at: float) -> Channel | None: ...

    async def set_active(self, channel_id: str, active: bool, at: float) -> Channel | None: ...

    async def stock(self, channel_id: str, skus: list[str] | None) -> list[ChannelStockView]:
        """Each SKU of ``skus`` that exists, or every SKU the channel has a share of."""
        ...

    async def holder(self, reservation_id: str) -> tuple[str | None, str] | None:
        """(channel, SKU) of a reservation (channel None: the shop's), or None."""
        ...
