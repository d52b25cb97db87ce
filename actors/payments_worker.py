"""PaymentsWorkerActor: hosts :class:`matchday.shop.payments_worker.PaymentsWorker` on Ray.

Detached and restartable: the worker loop starts in ``__init__`` (on its own event loop, in
a thread), so a restarted actor resumes draining the queue without anyone calling it. A
setup that fails (PostgreSQL restarting, Serve not deployed yet) is tried again with
backoff rather than leaving a live actor idle. Its state is all in PostgreSQL, so a restart
loses nothing; two of them would not step on each other either (rows are claimed with
``FOR UPDATE SKIP LOCKED``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import ray

from actors.detached import detached_options
from actors.metrics import GatewayCounters, payment_queue_sampler, safe_metrics, sample_every
from matchday.metrics import LATE_PAYMENTS, ORDERS_UNPAID, PAYMENTS_OVERDUE, Metrics
from matchday.settings import Settings

log = logging.getLogger(__name__)

WORKER_NAME = "payments-worker"
# An order counts as overdue this long past its payment deadline: the worker ends it at the
# deadline, give or take its poll and one round of gateway calls.
OVERDUE_GRACE_S = 60.0
# The window of the "ended unpaid" and "late payments" gauges (their alerts read them).
RECENT_S = 3600.0


def deadline_sampler(
    watch: Any, payment_hold_s: float, metrics: Metrics | None = None
) -> Callable[[], Awaitable[None]]:
    """Sets the payment-deadline gauges from PostgreSQL (a PaymentWatch), so they count what
    every process did (checkout replicas, webhooks, this worker), and survive a restart."""
    m = metrics or safe_metrics()

    async def sample() -> None:
        m.set(PAYMENTS_OVERDUE, await watch.overdue(OVERDUE_GRACE_S, payment_hold_s))
        recent = await watch.recent_endings(RECENT_S)
        for code, n in recent["unpaid"].items():
            m.set(ORDERS_UNPAID, n, {"code": code})
        for kind, n in recent["late"].items():
            m.set(LATE_PAYMENTS, n, {"kind": kind})

    return sample


class PaymentsWorkerActor:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = Settings(**settings)
        self._worker: Any = None
        self.restarts = 0
        self._running = False
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, name="payments-worker", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        from matchday.tasks import supervise

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self.restarts = await supervise(self._serve, self._stop, what="payments worker")

    async def _serve(self) -> None:
        from actors.client import connect_client
        from actors.payments_handle import HandleGateway
        from matchday import bootstrap

        s = self.settings
        # The test gateway's memory lives in the Payments deployment: its handle, which
        # raises until Serve has deployed it (and supervise tries again).
        parts = await bootstrap.open_payments_worker(
            s, connect_client(s), test_gateway=HandleGateway.deployed
        )
        try:
            await self._work(parts)
        finally:
            await parts.close()

    async def _work(self, parts: Any) -> None:
        s = self.settings
        assert self._stop is not None
        self._worker = parts.worker
        sampler = sample_every(payment_queue_sampler(self._worker.payments))
        deadlines = sample_every(deadline_sampler(parts.watch, s.payment_hold_s))
        # The worker's retries charge through its own router: its counts are exported too
        # (a HandleGateway's charges are counted by the Payments deployment itself).
        charges = (
            sample_every(GatewayCounters(parts.gateway).sample) if parts.worker.gateways else None
        )
        self._running = True
        try:
            await self._worker.run(self._stop, poll_s=s.payment_worker_poll_s)
        finally:
            self._running = False
            sampler.cancel()
            deadlines.cancel()
            if charges is not None:
                charges.cancel()

    def stats(self) -> dict[str, int]:
        """The worker's counters; ``running`` is 0 while its setup is still being retried."""
        counters = dict(self._worker.counters) if self._worker is not None else {}
        return {**counters, "running": int(self._running)}

    def stop(self) -> bool:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        return True


def start_payments_worker(settings: Settings) -> Any:
    """Create (or find) the detached worker actor; returns its handle."""
    handle: Any = (  # Ray types a handle's methods as the class's, not as remote methods
        ray.remote(PaymentsWorkerActor)
        .options(**detached_options(WORKER_NAME, settings))
        .remote(settings.payload())
    )
    ray.get(handle.stats.remote())
    return handle


def stop_payments_worker(settings: Settings) -> None:
    try:
        handle = ray.get_actor(WORKER_NAME, namespace=settings.namespace)
    except ValueError:
        return
    ray.get(handle.stop.remote())
    ray.kill(handle)
