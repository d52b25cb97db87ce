"""How busy the shop is, from what the engine already counts: mutations per second.

Every shard counts the mutations it has applied (``InventoryShard.stats()["mutations"]``,
its group committer's total: reserves, releases, commits, expiries, restocks). The probe
reads the total over every shard twice, ``window_s`` apart, while the bulk-sync runner sends
nothing (it measures between chunks), and answers the difference per second: shoppers' work
on the engine, the one resource a sync competes with them for. The clock alone would miss
an unplanned surge at 3 a.m. and hold a sync back through a quiet afternoon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from matchday.domain.clock import Clock, SystemClock

Totals = Callable[[], Awaitable[int]]
# One second of mutations: long enough that a single batch landing in it does not read as a
# surge (a cart's add is one reserve), short enough to pause a sync within a second or two.
WINDOW_S = 1.0


class MutationRate:
    def __init__(
        self,
        totals: Totals,
        *,
        window_s: float = WINDOW_S,
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.totals = totals
        self.window_s = window_s
        self.clock = clock or SystemClock()
        self.sleep = sleep
        self.last: float = 0.0

    async def load(self) -> float:
        """Engine mutations per second over the next ``window_s``."""
        t0, n0 = self.clock.now(), await self.totals()
        await self.sleep(self.window_s)
        t1, n1 = self.clock.now(), await self.totals()
        # A shard that restarted counts from zero again: what it lost is not load.
        self.last = max(0, n1 - n0) / max(t1 - t0, 1e-3)
        return self.last


def client_totals(stats: Callable[[], dict[int, tuple[int, int]]]) -> Totals:
    """Totals from an ``InventoryClient``'s own counts (``stats()``: per shard, calls and
    mutations sent): the engine's load when that client carries the shop's traffic, as in
    a single-process stack and the integration tests."""

    async def total() -> int:
        return sum(items for _, items in stats().values())

    return total
