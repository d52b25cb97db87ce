"""What channels need from the inventory engine (``InventoryClient`` provides it)."""

from __future__ import annotations

from typing import Protocol

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
