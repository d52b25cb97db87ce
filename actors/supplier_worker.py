"""SupplierWorkerActor: hosts :class:`matchday.suppliers.worker.SupplierWorker` on Ray.

The payments worker's pattern (actors/payments_worker.py): detached, restartable, its loop
started in ``__init__`` on its own event loop so a restarted actor resumes by itself, its
setup retried with backoff (``supervise``). All its state is in PostgreSQL: a sync it was
running when it died is resumed from its cursor once the lease runs out (ADR 0025).

The shop's load is read from the shards themselves: each one's count of applied mutations
(``InventoryShard.stats()``), summed, per second. That counts every replica's traffic, not
only this process's own calls.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import ray

from actors.detached import detached_options
from actors.metrics import safe_metrics
from matchday.settings import Settings

log = logging.getLogger(__name__)

WORKER_NAME = "supplier-worker"


def shard_totals(handles: dict[int, Any]) -> Any:
    """Mutations applied by every shard so far (a shard that does not answer counts 0)."""

    async def total() -> int:
        answers = await asyncio.gather(
            *(h.stats.remote() for h in handles.values()), return_exceptions=True
        )
        return sum(int(a.get("mutations", 0)) for a in answers if isinstance(a, dict))

    return total


class SupplierWorkerActor:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        self._worker: Any = None
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.restarts = 0
        self._thread = threading.Thread(target=self._main, name="supplier-worker", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from matchday.tasks import supervise

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.restarts = await supervise(self._serve, self._stop, what="supplier worker")

    async def _serve(self) -> None:
        import httpx

        from actors.client import connect_client, shard_handles
        from matchday import bootstrap
        from matchday.suppliers.config import SupplierSettings
        from matchday.suppliers.load import MutationRate
        from matchday.suppliers.pull import FeedPuller, Pulls
        from matchday.suppliers.runner import SyncRunner
        from matchday.suppliers.worker import SupplierWorker

        s = self.settings
        assert self._stop is not None
        handles = shard_handles(s)
        metrics = safe_metrics()
        sup = SupplierSettings()
        shop = await bootstrap.open_shop(s, metrics=metrics, pool_size=4)
        ctx = bootstrap.with_engine(shop, connect_client(s, handles), suppliers=sup)
        try:
            services = ctx.suppliers
            probe = MutationRate(shard_totals(handles))
            runner = SyncRunner(services.bulk, services.applier, probe, metrics=metrics)
            async with httpx.AsyncClient(follow_redirects=False) as client:
                pulls = Pulls(services.bulk, FeedPuller(client), metrics=metrics)
                self._worker = SupplierWorker(runner, pulls, retention_s=sup.message_retention_s)
                await self._worker.run(self._stop)
        finally:
            await ctx.close()

    def stats(self) -> dict[str, int]:
        counters = self._worker.stats() if self._worker is not None else {}
        return {**counters, "running": int(self._worker is not None), "restarts": self.restarts}

    def stop(self) -> bool:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        return True


def start_supplier_worker(settings: Settings) -> Any:
    """Create (or find) the detached worker actor; returns its handle."""
    handle: Any = (  # Ray types a handle's methods as the class's, not as remote methods
        ray.remote(SupplierWorkerActor)
        .options(**detached_options(WORKER_NAME, settings))
        .remote(settings.payload())
    )
    ray.get(handle.stats.remote())
    return handle


def stop_supplier_worker(settings: Settings) -> None:
    try:
        handle = ray.get_actor(WORKER_NAME, namespace=settings.namespace)
    except ValueError:
        return
    ray.get(handle.stop.remote())
    ray.kill(handle)
