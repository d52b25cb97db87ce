"""What the supplier side needs from the rest of matchday, as Protocols: the engine, and
storage (``matchday/storage/suppliers_repo.py`` and ``supplier_syncs_repo.py`` implement
SupplierStore and SyncStore)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from matchday.suppliers.model import (
    Counters,
    FeedLine,
    LineResult,
    MessageRecord,
    Plan,
    SealedSecrets,
    Supplier,
    SyncRecord,
)
from matchday.suppliers.model import Mapping as SkuMapping


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


class SupplierStore(Protocol):
    """Suppliers, their sealed secrets, SKU mappings, pulls and pushed messages."""

    async def insert_supplier(self, s: Supplier, sealed: str, issue_key: str | None) -> bool:
        """False if the id is taken (nothing changed)."""
        ...

    async def issued(self, supplier_id: str) -> tuple[str | None, str] | None:
        """(the issue key, the sealed current secret) of a supplier, or None."""
        ...

    async def get_supplier(self, supplier_id: str) -> Supplier | None: ...

    async def list_suppliers(self) -> list[Supplier]: ...

    async def update_supplier(
        self, supplier_id: str, changes: Mapping[str, Any], at: float
    ) -> Supplier | None: ...

    async def sealed_secrets(self, supplier_id: str) -> tuple[bool, SealedSecrets] | None:
        """(active, sealed secrets) of a supplier, or None."""
        ...

    async def rotate_secret(
        self,
        supplier_id: str,
        sealed: str,
        previous_until: float,
        at: float,
        issue_key: str | None,
    ) -> bool:
        """The new secret becomes current; the current one stays valid until
        ``previous_until`` (one rotation's predecessor only). False, and nothing changed,
        when there is no such supplier or ``issue_key`` already issued its current secret.
        """
        ...

    async def sealed_rows(self) -> list[tuple[str, str]]:
        """(supplier id, sealed current secret) of every supplier."""
        ...

    async def replace_sealed(self, supplier_id: str, expected: str, stored: str) -> bool:
        """Re-sealed under a new key, if the row still holds ``expected`` (compare and set).
        The previous secret of a rotation is dropped: it was sealed under the old key.
        """
        ...

    async def record_pull(
        self, supplier_id: str, etag: str | None, last_modified: str | None, at: float
    ) -> None: ...

    async def due_pulls(self, now: float) -> list[Supplier]:
        """Active suppliers with a feed whose next scheduled pull is due."""
        ...

    async def put_mappings(
        self, supplier_id: str, pairs: Sequence[tuple[str, str]], at: float
    ) -> None:
        """Map supplier SKU -> SKU, replacing a supplier SKU's earlier target; all or none.
        :class:`Conflict` when a SKU is already fed through another mapping.
        """
        ...

    async def delete_mapping(self, supplier_id: str, supplier_sku: str) -> bool: ...

    async def mappings(
        self, supplier_id: str, supplier_skus: Collection[str] | None = None
    ) -> dict[str, SkuMapping]:
        """Of the given supplier SKUs (all of the supplier's when None)."""
        ...

    async def note_levels(
        self, supplier_id: str, supplier_skus: Sequence[str], as_of: float
    ) -> None:
        """Levels as of ``as_of`` were applied through these mappings."""
        ...

    async def counters(self, skus: Collection[str]) -> dict[str, Counters]: ...

    async def claim_message(
        self, supplier_id: str, message_id: str, sha: str, plans: Mapping[int, Plan], at: float
    ) -> MessageRecord | None:
        """None when this call claimed the id; else the record of whoever did first."""
        ...

    async def finish_message(
        self, supplier_id: str, message_id: str, answer: dict[str, Any], at: float
    ) -> None: ...

    async def prune_messages(self, before: float) -> int:
        """Forget answered messages received before ``before`` (far outside the signature
        window, so they cannot be replayed anyway).
        """
        ...


class SyncStore(Protocol):
    """Bulk syncs: the queue, its leases, the per-line record and the report."""

    async def create(
        self, record: SyncRecord, lines: Sequence[FeedLine]
    ) -> tuple[SyncRecord, bool]:
        """Queue a sync with its lines; (the open sync of the same content, False) instead
        when one is queued or running for this supplier already.
        """
        ...

    async def get(self, sync_id: str) -> SyncRecord | None: ...

    async def recent(self, supplier_id: str | None, limit: int) -> list[SyncRecord]: ...

    async def claim(
        self, owner: str, now: float, lease_s: float, *, forced_only: bool
    ) -> SyncRecord | None:
        """Lease the next sync to run: forced ones first, then the oldest; a running one
        whose lease ran out (its runner died) is resumed. None when nothing may run.
        """
        ...

    async def renew(self, sync_id: str, owner: str, until: float) -> str | None:
        """Extend the lease; the sync's status, or None when another runner holds it."""
        ...

    async def release(self, sync_id: str, owner: str) -> None:
        """Give a running sync back to the queue (the shop got busy): it keeps its cursor."""
        ...

    async def pending_lines(
        self, sync_id: str, after: int, limit: int
    ) -> list[tuple[FeedLine, Plan | None]]:
        """Lines past ``after`` without an outcome, with the plans stored for them."""
        ...

    async def store_plans(self, sync_id: str, plans: Mapping[int, Plan]) -> None:
        """``plans`` by file line (FeedLine.line), stored before the engine is called."""
        ...

    async def record(
        self, sync_id: str, owner: str, results: Sequence[LineResult], cursor: int | None
    ) -> bool:
        """Store each line's outcome once and count it; move the cursor when given. False
        (and nothing stored) when this runner no longer holds the sync.
        """
        ...

    async def finish(
        self, sync_id: str, status: str, report: dict[str, Any], at: float, owner: str | None
    ) -> bool:
        """End an open sync (``owner`` None: whoever holds it, for a cancel)."""
        ...

    async def force(self, sync_id: str) -> bool: ...

    async def report(self, sync_id: str) -> dict[str, Any]:
        """Rejections by reason with the first of them, and the largest drifts."""
        ...
