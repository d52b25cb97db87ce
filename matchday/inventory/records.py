"""What a shard reads from and writes to storage, and the protocol storage must offer.

The shard core depends on this protocol only; ``matchday.storage.inventory_repo`` implements
it over PostgreSQL and ``tests.fakes`` in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from matchday.inventory.changes import Changes, Entry, Reservation
from matchday.inventory.wire import EXPIRE, RESERVE, REVOKE, WireOutcome


class SkuRow(NamedTuple):
    """A SKU's counters and limits. A named tuple: a batch writes one per touched SKU, and a
    frozen dataclass cost 1 us each to build (ADR 0017)."""

    sku: str
    on_hand: int
    reserved: int
    sold: int
    per_customer_limit: int | None = None
    low_stock_threshold: int | None = None
    low_stock_order_cap: int | None = None


# (sku, channel, max_units, max_percent, held, sold): a channel's share of a SKU.
ChannelRow = tuple[str, str, int | None, int | None, int, int]


@dataclass(slots=True)
class ShardState:
    """Everything a shard owns, as storage has it."""

    skus: list[SkuRow] = field(default_factory=list)
    reservations: list[Reservation] = field(default_factory=list)
    # sku, customer, units: for SKUs with a per-customer limit only
    customer_units: list[tuple[str, str, int]] = field(default_factory=list)
    # sku, channel, max_units, max_percent, held, sold (ADR 0028)
    channels: list[ChannelRow] = field(default_factory=list)


_UNKEYED = frozenset({RESERVE, EXPIRE, REVOKE})


@dataclass(slots=True)
class BatchWrite:
    """One group commit, written in a single transaction fenced by ``epoch``.

    The journal is ``entries`` (see ``ledger.Entry``), one per change, stored once per
    batch; the outbox is one row naming the batch, whose events the relay derives from the
    entries. ``carts`` must all be open (or unknown to the shop) when the batch commits:
    checkout closes a cart in a transaction that conflicts with this one (ADR 0017).
    """

    shard_id: int
    epoch: int
    at: float
    entries: list[Entry] = field(default_factory=list)
    counters: list[SkuRow] = field(default_factory=list)
    created: list[Reservation] = field(default_factory=list)  # inserted
    changed: list[Reservation] = field(default_factory=list)  # updated
    customer_units: list[tuple[str, str, int]] = field(default_factory=list)
    customers_reset: list[str] = field(default_factory=list)  # drop these SKUs' totals first
    carts: list[str] = field(default_factory=list)
    channels: list[ChannelRow] = field(default_factory=list)  # as they stand after the batch

    @classmethod
    def of(cls, ch: Changes, shard_id: int, epoch: int, at: float) -> BatchWrite:
        """What ``ch`` changed, as one write: counters and customer totals as they stand."""
        units = []
        for sku, customer in ch.customers:
            totals = ch.touched[sku].customer_units
            if totals is not None:
                units.append((sku, customer, totals.get(customer, 0)))
        counters = [
            SkuRow(
                g.sku,
                g.on_hand,
                g.reserved,
                g.sold,
                g.per_customer_limit,
                g.low_stock_threshold,
                g.low_stock_order_cap,
            )
            for g in ch.touched.values()
        ]
        created, changed = list(ch.created.values()), list(ch.changed.values())
        carts, reset = sorted(ch.carts), sorted(ch.reset)
        channels = _channel_rows(ch) if ch.channels else []
        return cls(
            shard_id,
            epoch,
            at,
            ch.entries,
            counters,
            created,
            changed,
            units,
            reset,
            carts,
            channels,
        )

    @property
    def empty(self) -> bool:
        return not self.entries

    @property
    def request_ids(self) -> set[str]:
        """The request ids this batch answers for good: an expiry or a revocation is none."""
        return {e[1] for e in self.entries if e[0] != EXPIRE and e[0] != REVOKE}

    @property
    def keyed_ids(self) -> list[str]:
        """The request ids whose keys ``inventory_requests`` stores: all but a reserve's,
        whose hold's primary key is its key (ADR 0034)."""
        return sorted({e[1] for e in self.entries if e[0] not in _UNKEYED})


def _channel_rows(ch: Changes) -> list[ChannelRow]:
    rows: list[ChannelRow] = []
    for sku in sorted(ch.channels):
        channels = ch.touched[sku].channels or {}
        rows.extend((sku, c, *cs.row()) for c, cs in sorted(channels.items()))
    return rows


class BatchRefused(Exception):
    """Storage rolled a batch back for a reason the shard can act on without a recovery.

    ``closed_carts``: carts (id -> status) that went to checkout; ``duplicate``: a request
    id of the batch was journaled before (a retry applied as new); ``moved``: a SKU of the
    batch is owned by another shard now. Memory of the batch's SKUs is ahead of storage.
    """

    def __init__(
        self,
        closed_carts: dict[str, str] | None = None,
        *,
        duplicate: bool = False,
        moved: bool = False,
    ) -> None:
        super().__init__(closed_carts, duplicate, moved)
        self.closed_carts = closed_carts or {}
        self.duplicate = duplicate
        self.moved = moved


class ShardRepository(Protocol):
    async def claim_epoch(self, shard_id: int, expected: int | None = None) -> int:
        """Bump and return the shard's epoch; every older epoch is fenced off from now on.

        With ``expected``, bump only if the stored epoch is still that one, else raise
        StaleEpoch: an instance recovering from a failed write must not take the shard back
        from a successor that started meanwhile.
        """
        ...

    async def load_shard(
        self, shard_id: int, epoch: int, *, pinned_only: bool = False
    ) -> ShardState:
        """The SKUs recorded as owned by ``shard_id``, their held reservations and limits.
        ``pinned_only`` (a dedicated shard): only those pinned to it, since a dedicated shard
        owns no SKU by the ring, whatever its rows still say."""
        ...

    async def reload_skus(
        self, shard_id: int, skus: list[str], *, pinned_only: bool = False
    ) -> ShardState:
        """Like load_shard, for ``skus`` only (those still owned by ``shard_id``)."""
        ...

    async def peek_skus(self, skus: list[str]) -> dict[str, int | None]:
        """For each SKU that exists, its pinned shard (or None). Missing SKUs are absent."""
        ...

    async def claim_skus(
        self, shard_id: int, epoch: int, pins: Mapping[str, int | None]
    ) -> ShardState:
        """Record ``shard_id`` as the owner of ``pins``' SKUs and load them, each only if its
        pin is still the one given (what the caller routed it by): a SKU pinned elsewhere since
        is left out, unclaimed and unloaded, for the caller to route again."""
        ...

    async def bought_units(self, skus: list[str]) -> dict[str, dict[str, int]]:
        """Per SKU, the units each customer bought (committed reservations)."""
        ...

    async def lookup_results(self, request_ids: list[str]) -> dict[str, WireOutcome]:
        """First answers of journaled requests among ``request_ids``."""
        ...

    async def write_batch(self, batch: BatchWrite) -> None:
        """Write atomically, or raise: StaleEpoch if fenced off, BatchRefused (rolled back),
        Unavailable or anything else on a storage failure (committed or not: unknown)."""
        ...
