"""In-memory stand-ins for time and storage, for tests without PostgreSQL or Ray."""

from __future__ import annotations

import copy
from typing import Any

from matchday.domain.errors import StaleEpoch, Unavailable
from matchday.inventory.changes import R_ID, Entry, reservation_view
from matchday.inventory.commands import ReservationView
from matchday.inventory.journal import answers
from matchday.inventory.records import BatchRefused, BatchWrite, ShardState, SkuRow
from matchday.inventory.wire import RESERVATION, WireOutcome


class ManualClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakeShardRepository:
    """Behaves like InventoryRepository: fencing, ownership, the cart fence, the journal with
    its unique request ids, the outbox; can fail on cue. ``carts`` stands for the shop's
    carts table (cart id -> status); a cart it does not name counts as open."""

    def __init__(self) -> None:
        self.epochs: dict[int, int] = {}
        self.skus: dict[str, SkuRow] = {}
        self.owner: dict[str, int] = {}
        self.pins: dict[str, int] = {}
        self.reservations: dict[str, ReservationView] = {}  # the reservations table
        self.customer_units: dict[tuple[str, str], int] = {}
        self.channels: dict[tuple[str, str], tuple[Any, ...]] = {}  # the channel_stock table
        self.carts: dict[str, str] = {}
        self.batches: list[BatchWrite] = []  # the journal: batch id = index + 1
        self.requests: dict[str, int] = {}  # request id -> batch id
        # Request ids whose 64-bit journal key another request id already took.
        self.collisions: set[str] = set()
        self.outbox: list[tuple[int, list[str]]] = []  # (batch id, its SKUs)
        self.fail_writes = 0  # fail this many upcoming write_batch calls
        self.writes = 0

    def add_sku(self, sku: str, on_hand: int, owner: int = 0, **limits: Any) -> None:
        self.skus[sku] = SkuRow(sku, on_hand, 0, 0, **limits)
        self.owner[sku] = owner

    @property
    def entries(self) -> list[Entry]:
        """Every journal entry, in order."""
        return [e for b in self.batches for e in b.entries]

    def journaled(self, request_id: str) -> list[Entry]:
        return [e for e in self.entries if e[1] == request_id]

    async def claim_epoch(self, shard_id: int, expected: int | None = None) -> int:
        if expected is not None and self.epochs.get(shard_id) != expected:
            raise StaleEpoch(shard_id, expected, self.epochs.get(shard_id, -1))
        self.epochs[shard_id] = self.epochs.get(shard_id, 0) + 1
        return self.epochs[shard_id]

    def _state(self, skus: list[str]) -> ShardState:
        wanted = set(skus)
        limited = {s for s in wanted if self.skus[s].per_customer_limit is not None}
        return ShardState(
            skus=[self.skus[s] for s in skus],
            reservations=[
                _held(r)
                for r in self.reservations.values()
                if r.sku in wanted and r.status == "held"
            ],
            channels=[(s, c, *row) for (s, c), row in self.channels.items() if s in wanted],
            customer_units=[
                (s, c, u) for (s, c), u in self.customer_units.items() if s in limited and u
            ],
        )

    def _owned(self, shard_id: int) -> list[str]:
        return [
            s
            for s, o in self.owner.items()
            if o == shard_id and self.pins.get(s, shard_id) == shard_id
        ]

    async def load_shard(self, shard_id: int, epoch: int) -> ShardState:
        return self._state(self._owned(shard_id))

    async def reload_skus(self, shard_id: int, skus: list[str]) -> ShardState:
        owned = set(self._owned(shard_id))
        return self._state([s for s in skus if s in owned])

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        return {s: self.pins.get(s) for s in skus if s in self.skus}

    async def claim_skus(self, shard_id: int, epoch: int, skus: list[str]) -> ShardState:
        self._check(shard_id, epoch)
        for s in skus:
            self.owner[s] = shard_id
        return self._state(skus)

    async def bought_units(self, skus: list[str]) -> dict[str, dict[str, int]]:
        bought: dict[str, dict[str, int]] = {}
        for r in self.reservations.values():
            if r.sku in skus and r.status == "committed":
                units = bought.setdefault(r.sku, {})
                units[r.customer_id] = units.get(r.customer_id, 0) + r.qty
        return bought

    async def lookup_results(self, request_ids: list[str]) -> dict[str, WireOutcome]:
        wanted = set(request_ids)
        rows: list[tuple[Any, ...]] = [
            (rid, *[None] * 14) for rid in request_ids if rid in self.collisions
        ]
        for batch_id in sorted({self.requests[r] for r in wanted if r in self.requests}):
            for e in self.batches[batch_id - 1].entries:
                if e[1] in wanted:
                    padded = (*e, None, None, None, None, None)[:13]
                    r = self.reservations.get(e[3]) if e[3] else None
                    where = (
                        (r.cart_id, r.customer_id, r.order_id, r.channel)
                        if r
                        else (None, None, None, None)
                    )
                    rows.append((e[1], e[0], e[2], e[3], e[4], e[6], e[7], *padded[8:], *where))
        return answers(rows)

    def _check(self, shard_id: int, epoch: int) -> None:
        if self.epochs.get(shard_id) != epoch:
            raise StaleEpoch(shard_id, epoch, self.epochs.get(shard_id, -1))

    async def write_batch(self, batch: BatchWrite) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise Unavailable("injected write failure")
        self._check(batch.shard_id, batch.epoch)
        closed = {c: self.carts[c] for c in batch.carts if self.carts.get(c, "open") != "open"}
        if closed:
            raise BatchRefused(closed)
        if any(self.owner.get(c.sku) != batch.shard_id for c in batch.counters):
            raise BatchRefused(moved=True)
        if any(rid in self.requests or rid in self.collisions for rid in batch.request_ids):
            raise BatchRefused(duplicate=True)
        for c in batch.counters:
            assert c.on_hand - c.reserved - c.sold >= 0, c
            self.skus[c.sku] = c
        for r in batch.created:
            assert r[R_ID] not in self.reservations, "inserted twice"
            self.reservations[r[R_ID]] = reservation_view(r)
        for r in batch.changed:
            assert r[R_ID] in self.reservations, "updated without a row"
            self.reservations[r[R_ID]] = reservation_view(r)
        for key in [k for k in self.customer_units if k[0] in batch.customers_reset]:
            del self.customer_units[key]
        for sku, customer, units in batch.customer_units:
            self.customer_units[(sku, customer)] = units
        for sku, channel, *row in batch.channels:
            self.channels[(sku, channel)] = tuple(row)
        self.batches.append(copy.copy(batch))
        for rid in batch.request_ids:
            self.requests[rid] = len(self.batches)
        self.outbox.append((len(self.batches), [c.sku for c in batch.counters]))
        self.writes += 1


def _held(r: ReservationView) -> tuple[Any, ...]:
    """A reservations row as the shard loads it: a shop hold has no channel element."""
    out = (RESERVATION, *(getattr(r, f) for f in r.__slots__))
    return out if r.channel is not None else out[:-1]
