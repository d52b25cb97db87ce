"""The bulk-sync runner: one queued sync at a time, in chunks, while the shop is quiet.

Each round: measure the shop's load (``load``: the engine's mutations/s over a second in
which the runner sends nothing, which is also the pause that lets shoppers' batches
through), lease the next sync (forced ones whatever the load), apply one chunk of its lines
through the engine, record every line's outcome and move the durable cursor, renew the
lease, measure again. A surge that starts mid-sync makes the runner give the sync back to
the queue after the chunk in flight; it resumes from its cursor once the load falls.

A runner that dies mid-chunk loses its lease; the next one resumes at the cursor and
re-sends that chunk with the same request ids, which the engine answers with its first
answers (from its cache, ten minutes by default, then from its journal), so no line applies
twice. A line whose outcome was recorded is never sent again, however late the resume.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence

from matchday.metrics import (
    NOOP,
    SUPPLIER_SHOP_LOAD,
    SUPPLIER_SYNC_PROGRESS,
    SUPPLIER_SYNCS,
    Metrics,
)
from matchday.suppliers.apply import Applier
from matchday.suppliers.bulk import BulkSyncs
from matchday.suppliers.model import FeedLine, Plan, SyncRecord, levels_standing
from matchday.suppliers.ports import LoadProbe
from matchday.suppliers.stats import count_lines

log = logging.getLogger(__name__)


class SyncRunner:
    def __init__(
        self,
        syncs: BulkSyncs,
        applier: Applier,
        probe: LoadProbe,
        *,
        owner: str | None = None,
        metrics: Metrics = NOOP,
    ) -> None:
        self.syncs = syncs
        self.repo = syncs.syncs
        self.suppliers = syncs.suppliers
        self.applier = applier
        self.probe = probe
        self.tuning = syncs.tuning
        self.clock = syncs.clock
        self.owner = owner or "runner-" + uuid.uuid4().hex[:12]
        self.metrics = metrics
        self.chunks = 0  # chunks applied by this runner, for stats()

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set. A failure (storage or engine away) is logged and the runner
        tries again after ``idle_s``; its sync waits, leased, or is resumed by another."""
        while not stop.is_set():
            try:
                worked = await self.step()
            except Exception as exc:
                log.warning("bulk sync round failed, trying again: %r", exc)
                worked = False
            if not worked:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.tuning.idle_s)

    async def step(self) -> bool:
        """Run one sync as far as the load allows; False when there was nothing to run."""
        quiet = await self.quiet()
        now = self.clock.now()
        sync = await self.repo.claim(self.owner, now, self.tuning.lease_s, forced_only=not quiet)
        if sync is None:
            return False
        try:
            await self._run(sync)
        except BaseException:
            await asyncio.shield(self.repo.release(sync.sync_id, self.owner))
            raise
        return True

    async def quiet(self) -> bool:
        load = await self.probe.load()
        self.metrics.set(SUPPLIER_SHOP_LOAD, load)
        return load <= self.tuning.max_load

    async def _run(self, sync: SyncRecord) -> None:
        cursor = sync.cursor
        while True:
            until = self.clock.now() + self.tuning.lease_s
            if await self.repo.renew(sync.sync_id, self.owner, until) != "running":
                return  # cancelled, or another runner took it over
            chunk = await self.repo.pending_lines(sync.sync_id, cursor, self.tuning.chunk_lines)
            if not chunk:
                await self._finish(sync)
                return
            done = await self._chunk(sync, chunk)
            if done is None:
                return
            cursor = done
            current = await self.repo.get(sync.sync_id)
            if current is None or current.status != "running":
                return
            self.metrics.set(
                SUPPLIER_SYNC_PROGRESS, current.progress, {"supplier": sync.supplier_id}
            )
            if not current.forced and not await self.quiet():
                log.info("sync %s waits: the shop is busy", sync.sync_id)
                await self.repo.release(sync.sync_id, self.owner)
                return

    async def _chunk(
        self, sync: SyncRecord, chunk: Sequence[tuple[FeedLine, Plan | None]]
    ) -> int | None:
        """Apply and record one chunk; its last line, or None when the sync was taken away."""
        lines = [ln for ln, _ in chunk]
        plans = {ln.line: plan for ln, plan in chunk if plan is not None}
        sid = sync.supplier_id
        mappings = await self.suppliers.mappings(sid, {ln.supplier_sku for ln in lines})
        scope = (sid, "sync", sync.sync_id)
        prepared = await self.applier.prepare(scope, lines, mappings, sync.as_of, plans)
        await self.repo.store_plans(sync.sync_id, prepared.plans)
        results, failure = await self.applier.execute(prepared.todo)
        outcomes = [*prepared.done, *results]
        last = None if failure is not None else lines[-1].line
        held = await self.repo.record(sync.sync_id, self.owner, outcomes, last)
        if held:
            await self.suppliers.note_levels(sid, levels_standing(outcomes), sync.as_of)
            count_lines(self.metrics, sid, outcomes)
            self.chunks += 1
        if failure is not None:
            raise failure
        return last if held else None

    async def _finish(self, sync: SyncRecord) -> None:
        report = await self.repo.report(sync.sync_id)
        current = await self.repo.get(sync.sync_id)
        assert current is not None
        counts = {k: getattr(current, k) for k in ("applied", "unchanged", "rejected")}
        report = {**counts, **report}
        if await self.repo.finish(sync.sync_id, "done", report, self.clock.now(), self.owner):
            self.metrics.inc(SUPPLIER_SYNCS, tags={"supplier": sync.supplier_id, "status": "done"})
            self.metrics.set(SUPPLIER_SYNC_PROGRESS, 1.0, {"supplier": sync.supplier_id})
            log.info("sync %s done: %s", sync.sync_id, counts)
