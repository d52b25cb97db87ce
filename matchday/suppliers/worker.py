"""The supplier worker: the bulk-sync runner and the feed poller, in one long-running loop.

Hosted by ``actors/supplier_worker.py`` beside the payments worker, on the same pattern
(detached, restartable, all state in PostgreSQL). Two tasks:

- the **runner** (``runner.SyncRunner``): queued syncs, in chunks, while the shop is quiet;
- the **poller**: every ``tick_s``, the suppliers whose pull is due (``pull.Pulls``), and
  once an hour the answered push messages past their retention are forgotten.

Either task failing (PostgreSQL restarting) is logged and retried after ``tick_s``; the other
goes on. Nothing here applies stock itself: the runner goes through the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from matchday.suppliers.pull import Pulls
from matchday.suppliers.runner import SyncRunner

log = logging.getLogger(__name__)

# Pull schedules are whole minutes (pull_every_s >= 60): a 5 s tick keeps a feed within 5 s
# of its schedule at one cheap query per tick.
TICK_S = 5.0
PRUNE_EVERY_S = 3600.0


class SupplierWorker:
    def __init__(
        self,
        runner: SyncRunner,
        pulls: Pulls,
        *,
        retention_s: float,
        tick_s: float = TICK_S,
    ) -> None:
        self.runner = runner
        self.pulls = pulls
        self.retention_s = retention_s
        self.tick_s = tick_s
        self.counters = {"pulls": 0, "pull_rounds_failed": 0, "pruned": 0}

    async def run(self, stop: asyncio.Event) -> None:
        """Until ``stop`` is set."""
        tasks = [
            asyncio.create_task(self.runner.run(stop), name="supplier-syncs"),
            asyncio.create_task(self._poll(stop), name="supplier-pulls"),
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, stop: asyncio.Event) -> None:
        clock = self.pulls.clock
        pruned_at = 0.0
        while not stop.is_set():
            try:
                self.counters["pulls"] += len(await self.pulls.pull_due())
                if clock.now() - pruned_at >= PRUNE_EVERY_S:
                    before = clock.now() - self.retention_s
                    self.counters["pruned"] += await self.pulls.repo.prune_messages(before)
                    pruned_at = clock.now()
            except Exception as exc:
                self.counters["pull_rounds_failed"] += 1
                log.warning("supplier pull round failed, trying again: %r", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.tick_s)

    def stats(self) -> dict[str, int]:
        return {**self.counters, "sync_chunks": self.runner.chunks}
