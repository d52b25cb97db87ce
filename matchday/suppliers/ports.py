"""What the supplier side needs from the rest of matchday, as Protocols."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from matchday.suppliers.model import Counters


class StockAnswer(Protocol):
    """The engine's answer to a stock mutation (``matchday.inventory.commands.StockView``)."""

    @property
    def on_hand(self) -> int: ...

    @property
    def reserved(self) -> int: ...

    @property
    def sold(self) -> int: ...

    @property
    def revoked(self) -> tuple[str, ...]: ...


class StockEngine(Protocol):
    """The inventory engine's stock mutations (``InventoryClient`` provides them): the only
    way supplier data reaches inventory. Idempotent by request id."""

    async def restock(self, request_id: str, sku: str, qty: int) -> StockAnswer: ...

    async def set_on_hand(self, request_id: str, sku: str, units: int) -> StockAnswer: ...

    async def adjust(self, request_id: str, sku: str, delta: int) -> StockAnswer:
        """Units present and unsold change by ``delta`` (not below 0), in one engine step."""
        ...


class CounterReader(Protocol):
    """Durable counters of SKUs (absent: no such SKU), as of the engine's last commit."""

    async def counters(self, skus: Collection[str]) -> dict[str, Counters]: ...


class LoadProbe(Protocol):
    """How busy the shop is, in the unit its threshold is given in (``load``)."""

    async def load(self) -> float: ...
