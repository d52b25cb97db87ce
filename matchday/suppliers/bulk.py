"""Bulk syncs: a full feed or a large file, queued, then applied off-peak by ``runner``.

Queueing validates the whole feed first (``parsing``): a malformed one is refused (422, or a
sync recorded as ``rejected`` for a pulled feed, so an operator sees why) and nothing of it
is queued. A valid one is stored line by line with the time it was counted (``as_of``): run
later, a line older than a level pushed since is stale, not applied. The same content queued
again while the first is still open is the same sync.

A small sync (``immediate_lines`` or fewer) is *forced*: it runs whatever the load, as near
real time as a push. An operator can force any sync, or cancel one; a cancelled sync keeps
what it applied and reports it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from dataclasses import dataclass

from matchday.domain.clock import Clock, SystemClock
from matchday.domain.errors import Conflict, NotFound
from matchday.metrics import NOOP, SUPPLIER_SYNCS, Metrics
from matchday.suppliers.model import FORMATS, FeedRejected, Supplier, SyncRecord
from matchday.suppliers.parsing import Parsed, parse_feed
from matchday.suppliers.ports import SupplierStore, SyncStore


@dataclass(frozen=True, slots=True)
class SyncTuning:
    # Shoppers' engine mutations/s above which a sync waits. A quiet shop's background is a
    # few expiries and carts a second; a surge is hundreds to thousands (DESIGN.md: ~900
    # single calls/s per actor). 50 lets a sync through a trickle, never through a surge.
    max_load: float = 50.0
    # Lines applied between two load checks: at most a couple of shard batches each, so a
    # surge that starts mid-sync waits behind one chunk, not the whole file.
    chunk_lines: int = 500
    # A sync this short runs at once whatever the load: it costs about one chunk.
    immediate_lines: int = 500
    # A runner holds its sync this long between renewals; one that died is resumed by the
    # next runner after it (the engine's request ids make a resent chunk harmless).
    lease_s: float = 60.0
    # How often an idle runner looks for work, and backs off after a failure.
    idle_s: float = 2.0


class BulkSyncs:
    def __init__(
        self,
        suppliers: SupplierStore,
        syncs: SyncStore,
        *,
        clock: Clock | None = None,
        tuning: SyncTuning | None = None,
        metrics: Metrics = NOOP,
    ) -> None:
        self.suppliers = suppliers
        self.syncs = syncs
        self.clock = clock or SystemClock()
        self.tuning = tuning or SyncTuning()
        self.metrics = metrics

    async def queue(
        self,
        supplier_id: str,
        data: bytes,
        fmt: str,
        *,
        source: str = "upload",
        queued_by: str = "",
        as_of: float | None = None,
    ) -> tuple[SyncRecord, bool]:
        """(the sync, True) once queued; (the open sync of the same content, False).
        :class:`FeedRejected` (nothing queued) for a malformed feed."""
        supplier = await self.supplier(supplier_id)
        parsed = self.parse(supplier, data, fmt)
        if not parsed.ok:
            raise FeedRejected(parsed.errors)
        now = self.clock.now()
        when = parsed.as_of or as_of or now
        record = self._record(supplier_id, source, data, when, queued_by, len(parsed.lines))
        return await self.syncs.create(record, parsed.lines)

    async def record_rejected(
        self, supplier_id: str, data: bytes, errors: FeedRejected, queued_by: str
    ) -> SyncRecord:
        """A pulled feed that was malformed: kept as a ``rejected`` sync with its reasons."""
        now = self.clock.now()
        record = self._record(supplier_id, "pull", data, now, queued_by, 0)
        report = {"errors": errors.records()}
        record = dataclasses.replace(record, status="rejected", report=report, finished_at=now)
        created, _ = await self.syncs.create(record, [])
        self.metrics.inc(SUPPLIER_SYNCS, tags={"supplier": supplier_id, "status": "rejected"})
        return created

    def parse(self, supplier: Supplier, data: bytes, fmt: str) -> Parsed:
        if fmt not in FORMATS:
            return Parsed([], [(0, f"format must be one of {', '.join(FORMATS)}")])
        return parse_feed(data, fmt, supplier.max_units)

    async def get(self, sync_id: str) -> SyncRecord:
        sync = await self.syncs.get(sync_id)
        if sync is None:
            raise NotFound("sync", sync_id)
        return sync

    async def force(self, sync_id: str) -> SyncRecord:
        """Run it now whatever the load (the runner picks forced syncs first)."""
        if not await self.syncs.force(sync_id):
            await self._closed(sync_id)
        return await self.get(sync_id)

    async def cancel(self, sync_id: str) -> SyncRecord:
        """Stop it after the chunk in flight; what was applied stays, and is reported."""
        report = await self.syncs.report(sync_id)
        if not await self.syncs.finish(sync_id, "cancelled", report, self.clock.now(), None):
            await self._closed(sync_id)
        sync = await self.get(sync_id)
        self.metrics.inc(SUPPLIER_SYNCS, tags={"supplier": sync.supplier_id, "status": "cancelled"})
        return sync

    async def supplier(self, supplier_id: str) -> Supplier:
        supplier = await self.suppliers.get_supplier(supplier_id)
        if supplier is None:
            raise NotFound("supplier", supplier_id)
        return supplier

    async def _closed(self, sync_id: str) -> None:
        sync = await self.get(sync_id)  # NotFound when there is none
        raise Conflict(f"sync {sync_id} is {sync.status} already")

    def _record(
        self, supplier_id: str, source: str, data: bytes, as_of: float, by: str, total: int
    ) -> SyncRecord:
        tuning = self.tuning
        return SyncRecord(
            sync_id="sync-" + uuid.uuid4().hex[:20],
            supplier_id=supplier_id,
            source=source,
            status="queued",
            forced=total <= tuning.immediate_lines,
            content_sha256=hashlib.sha256(data).hexdigest(),
            as_of=as_of,
            total_lines=total,
            cursor=0,
            applied=0,
            unchanged=0,
            rejected=0,
            queued_by=by[:200],
            created_at=self.clock.now(),
            started_at=None,
            finished_at=None,
            report=None,
        )
