"""Exact expiry for a shard: a heap of deadlines and a timer task, never a periodic sweep.

A mixin of :class:`matchday.inventory.shard.ShardCore`, which owns the state named below.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from matchday.domain.clock import Clock
from matchday.domain.errors import StaleEpoch
from matchday.inventory.commands import Expire
from matchday.inventory.ledger import SkuLedger
from matchday.inventory.wire import EXPIRE, WireMutation

log = logging.getLogger(__name__)

# How often an unhealthy shard with no traffic retries recovery.
RECOVERY_RETRY_S = 0.5


class Expiry:
    shard_id: int
    clock: Clock
    ledgers: dict[str, SkuLedger]
    healthy: bool
    fenced: bool
    wake: asyncio.Event
    _lock: asyncio.Lock
    _heap: list[tuple[float, str, str]]

    async def _recover(self) -> None:
        raise NotImplementedError

    def _arm(self, at: float, reservation_id: str, sku: str) -> None:
        if not self._heap or at < self._heap[0][0]:
            self.wake.set()
        heapq.heappush(self._heap, (at, reservation_id, sku))

    def next_deadline(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def due_expiries(self, now: float) -> list[Expire]:
        """Pop every deadline that has passed and still applies (not extended, not closed)."""
        due = []
        while self._heap and self._heap[0][0] <= now:
            at, rid, sku = heapq.heappop(self._heap)
            ledger = self.ledgers.get(sku)
            if ledger is None or ledger.next_deadline(rid) != at:
                continue
            due.append(Expire(f"expire:{rid}:{round(at * 1000)}", sku, rid))
        return due

    async def run_timers(self, submit: Callable[[list[WireMutation]], Awaitable[Any]]) -> None:
        """Exact expiry: sleep until the earliest deadline, never a periodic sweep."""
        while True:
            due = self.due_expiries(self.clock.now())
            if due:
                try:
                    await submit([(EXPIRE, e.request_id, e.sku, e.reservation_id) for e in due])
                except Exception as exc:
                    log.warning("shard %s expiry batch failed: %r", self.shard_id, exc)
            self.wake.clear()
            if not self.healthy and not self.fenced:
                # A failed write popped deadlines that nobody re-arms until the shard
                # recovers; on an idle shard no request would trigger that, so do it here.
                await self._recover_quietly()
            deadline = self.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self.clock.now())
            if not self.healthy and not self.fenced:
                timeout = RECOVERY_RETRY_S  # storage still down: try again soon, do not spin
            # asyncio.timeout, not wait_for: no task of its own per wait (3.11's wait_for
            # wraps the wait in one, which outlives the caller's view of what it started).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self.wake.wait()

    async def _recover_quietly(self) -> None:
        async with self._lock:
            if self.healthy or self.fenced:
                return
            try:
                await self._recover()
            except StaleEpoch:
                log.error("shard %s was superseded; it stays fenced", self.shard_id)
            except Exception as exc:
                log.warning("shard %s cannot recover yet: %r", self.shard_id, exc)
