"""Automatic drops: a queue that starts by itself when a SKU's adds outrun its shard, and ends
by itself when they fall back (ADR 0026, "Automatic drops").

Signal: add-path calls per SKU (adds, and quantity changes that grow a line), counted by
each process in a dict as :meth:`PassGate.needs` is asked (no I/O per add), and summed over
the replicas in Redis once per bucket per process (:class:`RedisDemand`). Load shedding
itself (Serve's 503 at the proxy) happens before a replica reads the body, so no replica can
say which SKU was shed; the demand a SKU's shard is asked to serve is what a replica can count
honestly, and it is what saturates that one shard (`matchday capacity plan`).

Policy (:func:`decide`, pure): a SKU in no drop whose adds over the window reach
``adds_per_s`` gets an automatic drop, created open. An automatic drop that is open closes
when it is at least ``hold_s`` old, nobody waits in its queue, and every bucket of the last
``hold_s`` stayed under half the threshold (the hysteresis that keeps it from flapping).
Closing frees its SKU (the pass is no longer asked), so no admitted fan is stranded: a pass
it holds is simply no longer needed. A paused automatic drop is an operator's: never closed
here.

Runs: no timer and no loop of its own. :meth:`AutoDrops.tick` is called where the gate
refreshes its SKU map (and by queue status calls); when a bucket has passed it starts one
evaluation as a task, never awaited by the request (one at a time per process).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from matchday.admin.records import AdminIdentity
from matchday.domain.clock import Clock
from matchday.domain.errors import MatchdayError
from matchday.metrics import NOOP, WR_AUTO, Metrics
from matchday.waitingroom.models import AUTO, CLOSED, OPEN, Drop, drop_id_for
from matchday.waitingroom.ports import DemandStore, DropStore, QueueStore
from matchday.waitingroom.rates import RateSource, ResolvedRate

log = logging.getLogger(__name__)

SYSTEM_ACTOR = AdminIdentity(None, "system:auto", client="system:auto")
# An automatic drop closes once every bucket of the hold-down stayed under this share of the
# threshold: between the two, it stays as it is.
RELEASE = 0.5
# More hot SKUs at once than this is not a drop but an incident: an operator's call.
MAX_AUTO_DROPS = 20
SETTING = "setting"


class Audit(Protocol):
    async def record(
        self,
        identity: AdminIdentity | None,
        action: str,
        target: str = "",
        params: Mapping[str, Any] | None = None,
        outcome: str = "ok",
        request_id: str | None = None,
        client: str | None = None,
    ) -> int: ...


class DemandSource(Protocol):
    """Where a process counts its adds per SKU (the pass gate)."""

    def count_demand(self) -> None: ...

    def take_demand(self) -> dict[str, int]: ...

    def give_back(self, counts: Mapping[str, int]) -> None: ...


@dataclass(frozen=True, slots=True)
class AutoConfig:
    adds_per_s: float = 300.0  # adds/s on one SKU that start a queue
    window_s: float = 10.0  # measured over this
    hold_s: float = 120.0  # an automatic drop lives at least this, and closes after this calm
    bucket_s: float = 5.0  # each process flushes its counts this often
    rate_per_s: float = 50.0  # the admission rate without a capacity profile
    rates: RateSource = field(default_factory=RateSource)
    pass_ttl_s: float = 600.0
    pow_bits: int = 16
    address_limit: int = 8

    @property
    def n_window(self) -> int:
        return max(1, math.ceil(self.window_s / self.bucket_s))

    @property
    def n_hold(self) -> int:
        return max(1, math.ceil(self.hold_s / self.bucket_s))

    def rate(self) -> ResolvedRate:
        """The profile's rate when one is configured and readable, else the setting's."""
        if self.rates.profile_path:
            try:
                return self.rates.from_profile()
            except MatchdayError as exc:
                log.warning("automatic drop: the capacity profile is refused: %s", exc)
        return ResolvedRate(self.rate_per_s, SETTING)


@dataclass(frozen=True, slots=True)
class Decision:
    opens: tuple[tuple[str, float], ...] = ()  # (SKU, its adds/s over the window)
    closes: tuple[tuple[str, float], ...] = ()  # (drop id, its peak adds/s in the hold-down)


def decide(
    cfg: AutoConfig,
    buckets: Sequence[Mapping[str, int]],
    live: Mapping[str, str],
    autos: Sequence[Drop],
    waiting: Mapping[str, int],
    now: float,
) -> Decision:
    """``buckets``: complete buckets, oldest first; ``live``: SKU -> drop of drops not closed;
    ``autos``: automatic drops not closed; ``waiting``: fans waiting per drop (a drop missing
    from it is treated as having some: not closed)."""
    window = buckets[-cfg.n_window :]
    span = cfg.n_window * cfg.bucket_s
    totals: dict[str, int] = {}
    for b in window:
        for sku, n in b.items():
            totals[sku] = totals.get(sku, 0) + n
    hot = sorted(
        ((sku, n / span) for sku, n in totals.items() if sku not in live),
        key=lambda x: (-x[1], x[0]),
    )
    room = max(0, MAX_AUTO_DROPS - len(autos))
    opens = tuple((sku, rate) for sku, rate in hot if rate >= cfg.adds_per_s)[:room]
    hold = buckets[-cfg.n_hold :]
    closes = []
    for drop in autos:
        if drop.state != OPEN or now - drop.created_at < cfg.hold_s:
            continue
        if waiting.get(drop.drop_id, 1) > 0:
            continue
        peak = max((b.get(sku, 0) / cfg.bucket_s for b in hold for sku in drop.skus), default=0)
        if peak < cfg.adds_per_s * RELEASE:
            closes.append((drop.drop_id, peak))
    return Decision(opens, tuple(closes))


class AutoDrops:
    """One per process: flushes its counts and applies :func:`decide` once per bucket."""

    def __init__(
        self,
        cfg: AutoConfig,
        source: DemandSource,
        demand: DemandStore,
        drops: DropStore,
        queue: QueueStore,
        audit: Audit,
        clock: Clock,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        metrics: Metrics = NOOP,
    ) -> None:
        self.cfg = cfg
        self.metrics = metrics
        self.source = source
        self.demand = demand
        self.drops = drops
        self.queue = queue
        self.audit = audit
        self.clock = clock
        self._monotonic = monotonic
        self._next = monotonic() + cfg.bucket_s
        self._task: asyncio.Task[Decision | None] | None = None
        source.count_demand()

    def tick(self) -> None:
        """Start an evaluation in the background when a bucket has passed; else nothing."""
        if self._monotonic() < self._next or (self._task is not None and not self._task.done()):
            return
        self._next = self._monotonic() + self.cfg.bucket_s
        self._task = asyncio.get_running_loop().create_task(self.run_once())

    async def run_once(self) -> Decision | None:
        """Flush, read every replica's counts and the drops, act. None when a store failed
        (the counts are kept for the next flush; nothing changed)."""
        now = self.clock.now()
        bucket = int(now // self.cfg.bucket_s)
        counts = self.source.take_demand()
        span = max(self.cfg.n_window, self.cfg.n_hold)
        try:
            # Counted since the last flush, about one bucket ago: the bucket just gone. A
            # replica that flushes later this bucket adds to it too, so the window's rate is
            # an estimate to within one flush period; the next evaluation sees it whole.
            await self.demand.record(counts, bucket - 1, (span + 2) * self.cfg.bucket_s)
        except Exception as exc:
            self.source.give_back(counts)
            log.warning("automatic drops: demand not recorded, kept for later: %s", exc)
            return None
        try:
            buckets = await self.demand.totals(range(bucket - span, bucket))
            live = await self.drops.live_skus()
            autos = await self.drops.live_auto()
            waiting = {}
            for drop in autos:
                if drop.state == OPEN and now - drop.created_at >= self.cfg.hold_s:
                    waiting[drop.drop_id] = (await self.queue.stats(drop.drop_id, now))["waiting"]
        except Exception as exc:
            log.warning("automatic drops: not evaluated this time: %s", exc)
            return None
        decision = decide(self.cfg, buckets, live, autos, waiting, now)
        for sku, rate in decision.opens:
            await self._guarded(self._open(sku, rate, bucket, now))
        for drop_id, peak in decision.closes:
            await self._guarded(self._close(drop_id, peak))
        return decision

    async def _open(self, sku: str, adds_per_s: float, bucket: int, now: float) -> None:
        rate = self.cfg.rate()
        request_id = f"auto:{sku}:{bucket}"  # the same on every replica in this bucket
        drop = Drop(
            drop_id=drop_id_for(request_id),
            name=f"auto {sku}"[:80],
            skus=(sku,),
            state=OPEN,
            opens_at=now,
            rate_per_s=rate.per_s,
            pass_ttl_s=self.cfg.pass_ttl_s,
            pow_bits=self.cfg.pow_bits,
            address_limit=self.cfg.address_limit,
            created_at=now,
            origin=AUTO,
            rate_source=rate.source,
        )
        made = await self.drops.claim(drop)
        if made is None:  # another replica opened it (or the SKU is in a drop, or unknown)
            return
        params = {
            "sku": sku,
            "adds_per_s": round(adds_per_s, 1),
            "threshold_per_s": self.cfg.adds_per_s,
            "window_s": self.cfg.n_window * self.cfg.bucket_s,
            "rate_per_s": made.rate_per_s,
            "rate_source": made.rate_source,
        }
        self.metrics.inc(WR_AUTO, tags={"action": "opened"})
        log.warning("automatic drop %s opened for %s at %.0f adds/s", made.drop_id, sku, adds_per_s)
        await self.audit.record(
            SYSTEM_ACTOR, "drop.create", made.drop_id, params, request_id=request_id
        )

    async def _close(self, drop_id: str, peak: float) -> None:
        closed = await self.drops.set_state(drop_id, CLOSED, (OPEN,))
        if closed is None:  # another replica closed it, or an operator paused it meanwhile
            return
        params = {"peak_adds_per_s": round(peak, 1), "hold_s": self.cfg.hold_s, "waiting": 0}
        self.metrics.inc(WR_AUTO, tags={"action": "closed"})
        log.warning("automatic drop %s closed: demand fell back", drop_id)
        await self.audit.record(SYSTEM_ACTOR, "drop.close", drop_id, params)

    @staticmethod
    async def _guarded(step: Any) -> None:
        try:
            await step
        except Exception as exc:  # one SKU's failure must not stop the others
            log.warning("automatic drops: a step failed: %s", exc)
