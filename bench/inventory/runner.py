"""``Bench``, the inventory benchmark's whole run: the phase mixins (environment, engine
runs with their baselines, memory and recovery) combined, and ``run``, which opens the pool,
runs every phase under a time limit (``bench.watch.bounded``: past it, ``Stalled`` names the
phase) and stops whatever is left running, even on error."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from bench.inventory.config import SCALE_SHARDS
from bench.inventory.engine_runs import EngineRuns
from bench.inventory.environment import Environment
from bench.inventory.recovery import MemoryAndRecovery
from bench.watch import bounded
from matchday.storage.db import make_pool
from matchday.storage.inventory_repo import InventoryRepository


class Bench(Environment, EngineRuns, MemoryAndRecovery):
    # -- everything ------------------------------------------------------------------------

    async def run(self) -> None:
        self.pool = make_pool(self.base.database_url, min_size=1, max_size=4, name="bench")
        await self.pool.open(wait=True)
        self.repo = InventoryRepository(self.pool)
        cfg = self.cfg
        phase_s = cfg.warmup + cfg.seconds + 90  # one measured phase, with its set-up
        phases: list[tuple[str, Callable[[], Awaitable[None]], float]] = [
            ("describe", self.describe, 60),
            ("hot SKU", self.hot_sku, cfg.runs * (3 * len(cfg.concurrency) * phase_s + 240)),
            ("scaling", self.scaling, len(SCALE_SHARDS) * phase_s),
            ("memory and recovery", self.memory_and_recovery, 300),
        ]
        try:
            for name, phase, limit_s in phases:
                # A hung engine call (Ray retries calls to a crash-looping actor forever)
                # must end the run, with everything stopped, not stall it. Each wait inside
                # has its own, shorter bound that names what it waited for; this one is the
                # backstop (it prints nothing while the phase's own progress lines do).
                async with bounded(self.say, name, "the phase to end", limit_s, None, 2 * limit_s):
                    await phase()
        finally:
            for s in list(self.running):
                with contextlib.suppress(Exception):
                    await self.stop(s)
            with contextlib.suppress(Exception):
                await self.purge_external()
            await self.pool.close()
