"""What carts and checkout need from the rest of the shop, as protocols (fakes in tests)."""

from __future__ import annotations

from typing import Any, Protocol

from matchday.domain.prices import PriceInfo
from matchday.inventory.commands import ReservationView


class Stock(Protocol):
    """The inventory engine as seen by the shop; InventoryClient implements it."""

    async def reserve(
        self, request_id: str, sku: str, qty: int, cart_id: str, customer_id: str, ttl_s: float
    ) -> ReservationView: ...

    async def release(self, request_id: str, sku: str, reservation_id: str) -> ReservationView: ...

    async def resize(
        self, request_id: str, sku: str, reservation_id: str, qty: int
    ) -> ReservationView: ...

    async def extend(
        self, request_id: str, sku: str, reservation_id: str, ttl_s: float
    ) -> ReservationView: ...

    async def commit(
        self, request_id: str, sku: str, reservation_id: str, order_id: str
    ) -> ReservationView: ...


class Prices(Protocol):
    async def price_of(self, skus: list[str]) -> dict[str, PriceInfo]: ...


class OrderEvents(Protocol):
    async def publish(self, order_id: str, status: str, detail: dict[str, Any]) -> None: ...
