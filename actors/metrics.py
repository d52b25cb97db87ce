"""The :class:`matchday.metrics.Metrics` protocol on ``ray.util.metrics``.

Ray exports what any worker records on its node's Prometheus endpoint (the dashboard agent's
``metrics_export_port``), prefixed ``ray_``; see docs/ops/monitoring.md. Metric objects are
created on first use in each process, never at import (STYLE 4: every worker imports this).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from matchday.inventory.shard import ShardCore
from matchday.inventory.wire import WireMutation, WireOutcome, skus_of
from matchday.metrics import (
    FAILOVERS,
    OUTBOX_BACKLOG,
    PAYMENT_QUEUE,
    PAYMENTS,
    PINNED_AVAILABLE,
    SHARD_STARTS,
    SPEC_BY_NAME,
    DeltaExporter,
    Metrics,
    MetricSpec,
    record_batch,
)

log = logging.getLogger(__name__)

# How often samplers read queue depths and in-memory counters. Ray itself exports every
# 10 s (metrics_report_interval_ms) and Prometheus scrapes every 10-15 s, so sampling
# faster than that only costs queries.
SAMPLE_EVERY_S = 10.0


class RayMetrics:
    """One ``ray.util.metrics`` object per spec, created when first recorded."""

    def __init__(self) -> None:
        self._objects: dict[str, Any] = {}

    def _get(self, name: str) -> Any:
        obj = self._objects.get(name)
        if obj is None:
            obj = self._objects[name] = _make(SPEC_BY_NAME[name])
        return obj

    def inc(self, name: str, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        self._get(name).inc(value, tags=dict(tags) if tags else None)

    def set(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self._get(name).set(value, tags=dict(tags) if tags else None)

    def observe(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self._get(name).observe(value, tags=dict(tags) if tags else None)


def _make(spec: MetricSpec) -> Any:
    from ray.util import metrics as rm

    if spec.kind == "counter":
        return rm.Counter(spec.name, spec.description, tag_keys=spec.tag_keys)
    if spec.kind == "gauge":
        return rm.Gauge(spec.name, spec.description, tag_keys=spec.tag_keys)
    return rm.Histogram(
        spec.name, spec.description, boundaries=list(spec.boundaries), tag_keys=spec.tag_keys
    )


@functools.cache
def ray_metrics() -> Metrics:
    """This process's recorder (one per process: Ray dedupes metrics by name anyway)."""
    return RayMetrics()


class SafeMetrics:
    """Never lets a metrics failure fail the business call that records it."""

    def __init__(self, inner: Metrics) -> None:
        self.inner = inner

    def inc(self, name: str, value: float = 1.0, tags: Mapping[str, str] | None = None) -> None:
        self._call(self.inner.inc, name, value, tags)

    def set(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self._call(self.inner.set, name, value, tags)

    def observe(self, name: str, value: float, tags: Mapping[str, str] | None = None) -> None:
        self._call(self.inner.observe, name, value, tags)

    @staticmethod
    def _call(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception as exc:  # a lost data point, logged, never a lost sale
            log.warning("metric %s not recorded: %r", args[0], exc)


@functools.cache
def safe_metrics() -> Metrics:
    return SafeMetrics(ray_metrics())


def sample_every(
    sample: Callable[[], Awaitable[None]], every_s: float = SAMPLE_EVERY_S
) -> asyncio.Task[None]:
    """Run ``sample`` now and then on the running loop until the task is cancelled."""

    async def loop() -> None:
        while True:
            try:
                await sample()
            except Exception as exc:  # storage down: the next sample will tell
                log.warning("metrics sample failed: %r", exc)
            await asyncio.sleep(every_s)

    return asyncio.get_running_loop().create_task(loop(), name="matchday-metrics")


def metered_batches(
    core: ShardCore, metrics: Metrics | None = None
) -> Callable[[list[WireMutation]], Awaitable[list[WireOutcome]]]:
    """``core.apply_wire`` recording each batch's outcomes; counts this shard process's start.

    It wraps the shard's group committer, so it sees every batch exactly once, the expiry
    timer's included, and nothing runs between the before and after snapshots (the
    committer flushes one batch at a time).
    """
    m = metrics or safe_metrics()
    shard = str(core.shard_id)
    m.inc(SHARD_STARTS, tags={"shard": shard})
    # Every SKU on a dedicated shard is pinned: a handful, so one gauge series each is fine.
    pinned = core.shard_id in core.router.dedicated

    def available(skus: set[str]) -> dict[str, int]:
        return {s: core.ledgers[s].available for s in skus if s in core.ledgers}

    def set_pinned(units: dict[str, int]) -> None:
        for sku, n in units.items():
            m.set(PINNED_AVAILABLE, n, {"shard": shard, "sku": sku})

    if pinned:
        set_pinned(available(set(core.ledgers)))  # recovered at start: show them at once

    async def apply(mutations: list[WireMutation]) -> list[WireOutcome]:
        skus = skus_of(mutations)
        before = available(skus)
        outcomes = await core.apply_wire(mutations)
        after = available(skus)
        record_batch(m, core.shard_id, mutations, outcomes, before, after)
        if pinned:
            set_pinned(after)
        return outcomes

    return apply


def outbox_sampler(relay: Any, metrics: Metrics | None = None) -> Callable[[], Awaitable[None]]:
    m = metrics or safe_metrics()

    async def sample() -> None:
        m.set(OUTBOX_BACKLOG, await relay.backlog())

    return sample


def payment_queue_sampler(
    payments_repo: Any, metrics: Metrics | None = None
) -> Callable[[], Awaitable[None]]:
    m = metrics or safe_metrics()

    async def sample() -> None:
        m.set(PAYMENT_QUEUE, await payments_repo.queue_depth())

    return sample


class GatewayCounters:
    """Exports a payment router's (or any gateway's) in-memory counters.

    The router keeps ``counters[(gateway, region, outcome)]`` for its ``stats()``; a gateway
    without counters (the test gateway) gets them from :func:`counted`.
    """

    def __init__(self, gateway: Any, metrics: Metrics | None = None) -> None:
        m = metrics or safe_metrics()
        self.gateway = gateway
        self._payments = DeltaExporter(m, PAYMENTS)
        self._failovers = DeltaExporter(m, FAILOVERS)

    async def sample(self) -> None:
        counters: Mapping[tuple[str, str, str], int] = getattr(self.gateway, "counters", {})
        self._payments.export(
            ({"gateway": g, "region": r, "outcome": o}, n)
            for (g, r, o), n in counters.items()
            if o != "failover"
        )
        self._failovers.export(
            ({"gateway": g}, n) for (g, _, o), n in counters.items() if o == "failover"
        )


class CountedGateway:
    """A gateway without counters (the test gateway) with the router's ``counters`` shape.

    Everything but ``charge`` is the wrapped gateway's own (``name``, ``refund``, ...).
    """

    def __init__(self, inner: Any, region: str = "default") -> None:
        self.inner = inner
        self.region = region
        self.counters: Counter[tuple[str, str, str]] = Counter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def charge(self, req: Any) -> Any:
        try:
            result = await self.inner.charge(req)
        except Exception as exc:
            self.counters[(self.inner.name, self.region, getattr(exc, "code", "error"))] += 1
            raise
        self.counters[(self.inner.name, self.region, str(result.status))] += 1
        return result


def counted(gateway: Any) -> Any:
    """The gateway itself if it already counts its charges (the router), else wrapped."""
    return gateway if hasattr(gateway, "counters") else CountedGateway(gateway)
