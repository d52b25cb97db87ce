"""InventoryShard: a thin async Ray actor around :class:`matchday.inventory.shard.ShardCore`.

Ray restarts a dead shard (``max_restarts=-1``) and re-sends calls that were in flight
(``max_task_retries=-1``); both are safe because a shard recovers its state from PostgreSQL
and answers a repeated request id with its first answer.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from actors.metrics import metered_batches, safe_metrics, sample_every
from actors.shard_link import Endpoint, LinkServer
from matchday.batching import Coalescer
from matchday.inventory.commands import Outcome
from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import WireMutation, WireOutcome
from matchday.metrics_buffer import BufferedMetrics
from matchday.settings import Settings

log = logging.getLogger(__name__)


def shard_name(shard_id: int) -> str:
    return f"inventory-shard-{shard_id}"


# Young objects a collection waits for (CPython's default is 700). python -m
# bench.shard_core gc, 2026-12-02: with the recovered heap frozen and this threshold, a shard
# holding 100k SKUs and 10k holds spent 0.9 us per reserve in collections instead of 3-4.4,
# its batch CPU p99 fell from 2.7-6.0 to 1.5-1.7 ms, and its longest collection from
# 144-159 to 55-98 ms. 10,000 spent as much in all, with a p99 of 4 ms: one batch in fifty
# paid for a collection.
GC_GEN0_THRESHOLD = 50_000
# How often the shard hands its batches' counts to Ray (matchday/metrics_buffer.py).
METRICS_FLUSH_S = 1.0


def settle_heap() -> None:
    """After a recovery: collect once, then freeze what was loaded (ledgers, reservations)
    so that no later collection walks it again, and collect young objects less often.
    The shard's objects hold no reference cycles: they are freed by reference counting,
    frozen or not."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _flushing(metrics: BufferedMetrics) -> Callable[[], Awaitable[None]]:
    async def flush() -> None:
        metrics.flush()

    return flush


class InventoryShard:
    def __init__(self, shard_id: int, settings: dict[str, Any]) -> None:
        self.shard_id = shard_id
        self.settings = Settings(**settings)
        self._core: ShardCore | None = None
        self._committer: Coalescer[WireMutation, WireOutcome] | None = None
        self._start_lock = asyncio.Lock()
        self._timers: asyncio.Task[None] | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._link: LinkServer | None = None
        self._endpoint: Endpoint | None = None

    async def _ready(self) -> tuple[ShardCore, Coalescer[WireMutation, WireOutcome]]:
        # Async start on first call: __init__ cannot await, and a shard that cannot reach
        # PostgreSQL yet should still come up and answer 503s until it can.
        if self._core is None or self._committer is None:
            async with self._start_lock:
                if self._core is None:
                    await self._start()
        assert self._core is not None and self._committer is not None
        return self._core, self._committer

    async def _start(self) -> None:
        from matchday import bootstrap

        core = await bootstrap.open_shard_core(
            self.settings,
            self.shard_id,
            pool_name=shard_name(self.shard_id),
            after_recovery=settle_heap,
        )
        try:
            await core.start()
        except Exception as exc:  # recovered on the next batch instead
            log.warning("shard %s could not recover at start: %r", self.shard_id, exc)
        s = self.settings
        metrics = BufferedMetrics(safe_metrics())  # a batch's counts, handed to Ray each second
        self._flusher = sample_every(_flushing(metrics), METRICS_FLUSH_S)
        self._committer = Coalescer(
            metered_batches(core, metrics), max_batch=s.max_batch, max_in_flight=1
        )
        self._core = core
        if s.shard_link:
            link = LinkServer(self.apply)
            host = ray.util.get_node_ip_address()  # type: ignore[no-untyped-call]
            try:
                self._endpoint = await link.start(host)
                self._link = link
            except OSError as exc:  # batches keep coming over Ray
                log.warning("shard %s: no direct link on %s: %r", self.shard_id, host, exc)
        self._timers = asyncio.get_running_loop().create_task(
            core.run_timers(self._committer.submit_many)
        )

    async def apply(self, mutations: list[WireMutation]) -> list[WireOutcome]:
        core, committer = await self._ready()
        outcomes = await committer.submit_many(mutations)
        if core.fenced:
            # A newer incarnation owns this shard: die so nothing here is ever mistaken
            # for the live shard. Ray only restarts it if it still counts as the live one.
            asyncio.get_running_loop().call_later(0.1, os._exit, 1)
        return outcomes

    async def link(self) -> Endpoint | None:
        """Where this incarnation takes batches directly (actors/shard_link.py), if it does."""
        await self._ready()
        return self._endpoint

    async def stock(self, sku: str) -> Outcome:
        core, _ = await self._ready()
        return core.stock(sku)

    async def evict(self, skus: list[str]) -> list[str]:
        core, _ = await self._ready()
        return await core.evict(skus)

    async def adopt(self, skus: list[str]) -> list[str]:
        core, _ = await self._ready()
        return await core.adopt(skus)

    async def stats(self) -> dict[str, Any]:
        core, committer = await self._ready()
        return {
            **core.stats(),
            "pid": os.getpid(),
            "batches": committer.batches,
            "mutations": committer.items,
            "link_calls": self._link.calls if self._link else 0,
        }

    async def ready(self) -> bool:
        core, _ = await self._ready()
        return core.healthy

    def pid(self) -> int:
        return os.getpid()
