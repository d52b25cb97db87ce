"""In-memory stand-ins for time and storage, for tests without PostgreSQL or Ray."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

from matchday.domain.errors import StaleEpoch, Unavailable
from matchday.inventory.ledger import Reservation
from matchday.inventory.records import BatchWrite, ShardState, SkuRow


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeShardRepository:
    """Behaves like InventoryRepository: fencing, ownership, journal, outbox; can fail on cue."""

    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}
        self.skus: dict[str, SkuRow] = {}
        self.owner: dict[str, int] = {}
        self.pins: dict[str, int] = {}
        self.reservations: dict[str, Reservation] = {}
        self.customer_units: dict[tuple[str, str], int] = {}
        self.journal: dict[str, dict[str, Any]] = {}
        self.outbox: list[tuple[str, list[dict[str, Any]]]] = []
        self.fail_writes = 0  # fail this many upcoming write_batch calls
        self.writes = 0

    def add_sku(self, sku: str, on_hand: int, owner: int = 0, **limits: Any) -> None:
        self.skus[sku] = SkuRow(sku, on_hand, 0, 0, **limits)
        self.owner[sku] = owner

    async def claim_epoch(self, shard_id: int, expected: int | None = None) -> int:
        if expected is not None and self.epochs.get(shard_id) != expected:
            raise StaleEpoch(shard_id, expected, self.epochs.get(shard_id, -1))
        self.epochs[shard_id] = self.epochs.get(shard_id, 0) + 1
        return self.epochs[shard_id]

    def _state(self, skus: list[str]) -> ShardState:
        wanted = set(skus)
        return ShardState(
            skus=[self.skus[s] for s in skus],
            reservations=[
                copy.copy(r)
                for r in self.reservations.values()
                if r.sku in wanted and r.status == "held"
            ],
            customer_units=[
                (s, c, u) for (s, c), u in self.customer_units.items() if s in wanted and u
            ],
        )

    async def load_shard(self, shard_id: int, epoch: int) -> ShardState:
        return self._state(
            [
                s
                for s, o in self.owner.items()
                if o == shard_id and self.pins.get(s, shard_id) == shard_id
            ]
        )

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        return {s: self.pins.get(s) for s in skus if s in self.skus}

    async def claim_skus(self, shard_id: int, epoch: int, skus: list[str]) -> ShardState:
        self._check(shard_id, epoch)
        for s in skus:
            self.owner[s] = shard_id
        return self._state(skus)

    async def lookup_results(self, request_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {r: self.journal[r] for r in request_ids if r in self.journal}

    def _check(self, shard_id: int, epoch: int) -> None:
        if self.epochs.get(shard_id) != epoch:
            raise StaleEpoch(shard_id, epoch, self.epochs.get(shard_id, -1))

    async def write_batch(self, batch: BatchWrite) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise Unavailable("injected write failure")
        self._check(batch.shard_id, batch.epoch)
        if any(self.owner.get(c.sku) != batch.shard_id for c in batch.counters):
            raise Unavailable("a SKU moved to another shard; retry")
        for c in batch.counters:
            assert c.on_hand - c.reserved - c.sold >= 0, c
            self.skus[c.sku] = c
        for r in batch.reservations:
            self.reservations[r.reservation_id] = replace(r)
        for sku, customer, units in batch.customer_units:
            self.customer_units[(sku, customer)] = units
        for j in batch.journal:
            self.journal.setdefault(j.request_id, j.result)
        self.outbox.extend(batch.outbox)
        self.writes += 1
