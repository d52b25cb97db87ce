"""What a shard reads from and writes to storage, and the protocol storage must offer.

The shard core depends on this protocol only; ``matchday.storage.inventory_repo`` implements
it over PostgreSQL and ``tests.fakes`` in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from matchday.inventory.ledger import Reservation


@dataclass(frozen=True, slots=True)
class SkuRow:
    sku: str
    on_hand: int
    reserved: int
    sold: int
    per_customer_limit: int | None = None
    low_stock_threshold: int | None = None
    low_stock_order_cap: int | None = None


@dataclass(slots=True)
class ShardState:
    """Everything a shard owns, as storage has it."""

    skus: list[SkuRow] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    customer_units: list[tuple[str, str, int]] = field(default_factory=list)  # sku, customer, units


@dataclass(frozen=True, slots=True)
class JournalRow:
    request_id: str
    sku: str
    kind: str
    mutation: dict[str, Any]
    result: dict[str, Any]
    at: float


@dataclass(slots=True)
class BatchWrite:
    """One group commit: written in a single transaction, fenced by ``epoch``."""

    shard_id: int
    epoch: int
    counters: list[SkuRow] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    customer_units: list[tuple[str, str, int]] = field(default_factory=list)
    journal: list[JournalRow] = field(default_factory=list)
    # One outbox row per touched SKU: its events in order, and the counters they led to.
    outbox: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.journal


class ShardRepository(Protocol):
    async def claim_epoch(self, shard_id: int, expected: int | None = None) -> int:
        """Bump and return the shard's epoch; every older epoch is fenced off from now on.

        With ``expected``, bump only if the stored epoch is still that one, else raise
        StaleEpoch: an instance recovering from a failed write must not take the shard back
        from a successor that started meanwhile.
        """
        ...

    async def load_shard(self, shard_id: int, epoch: int) -> ShardState:
        """The SKUs recorded as owned by ``shard_id``, their held reservations and limits."""
        ...

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        """For each SKU that exists, its pinned shard (or None). Missing SKUs are absent."""
        ...

    async def claim_skus(self, shard_id: int, epoch: int, skus: list[str]) -> ShardState:
        """Record ``shard_id`` as the owner of ``skus`` (fencing any old owner) and load them."""
        ...

    async def lookup_results(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Results of journaled requests among ``request_ids``."""
        ...

    async def write_batch(self, batch: BatchWrite) -> None:
        """Write atomically; raise StaleEpoch if fenced off, Unavailable on storage failure."""
        ...
