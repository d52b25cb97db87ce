"""Automatic drops over the real stores: demand summed in Redis, drops claimed in PostgreSQL
(two replicas racing for one SKU), the audit log's system:auto entries, Redis away, and
rates from a capacity profile kept with their provenance (ADR 0026)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from matchday.admin.audit import AuditLog
from matchday.domain.errors import InvalidInput
from matchday.settings import Settings
from matchday.storage.admin_repo import AdminRepository
from matchday.waitingroom.auto import AutoConfig, AutoDrops
from matchday.waitingroom.gate import PassGate
from matchday.waitingroom.models import AUTO, CLOSED, OPEN, Drop, drop_id_for
from matchday.waitingroom.rates import RateSource
from matchday.waitingroom.redis_store import RedisDemand, RedisQueue
from tests.conftest import uid
from tests.integration.test_waitingroom_storage import Parts, parts, redis_at, spec
from tests.unit.capacity_cases import profile

pytestmark = pytest.mark.integration
__all__ = ["parts"]  # the fixture, shared

CFG = AutoConfig(adds_per_s=100.0, window_s=10.0, hold_s=30.0, bucket_s=5.0, rate_per_s=20.0)


def auto(parts: Parts, redis: Redis, prefix: str, cfg: AutoConfig = CFG) -> AutoDrops:
    """One replica's watcher, with its own gate, over the shared stores."""
    gate = PassGate(parts.drops.live_skus, parts.tokens, parts.clock, monotonic=parts.clock.now)
    return AutoDrops(
        cfg, gate, RedisDemand(redis, prefix=f"{prefix}:demand"), parts.drops,
        RedisQueue(redis, prefix=prefix), AuditLog(AdminRepository(parts.pool)), parts.clock,
        monotonic=parts.clock.now,
    )  # fmt: skip


def count(watcher: AutoDrops, sku: str, n: int) -> None:
    assert isinstance(watcher.source, PassGate)
    for _ in range(n):
        watcher.source.needs(sku)


async def audited(parts: Parts, action: str, drop_id: str) -> list[tuple[str, str]]:
    log = AuditLog(AdminRepository(parts.pool))
    return [(e.client, e.outcome) for e in await log.recent(1000, action) if e.target == drop_id]


async def test_demand_is_summed_over_replicas_per_bucket_and_expires(settings: Settings) -> None:
    async with redis_at(settings.redis_url) as redis:
        prefix = uid("wr:demand")
        a, b = RedisDemand(redis, prefix=prefix), RedisDemand(redis, prefix=prefix)
        await a.record({"A": 3, "B": 1}, 10, 60.0)
        await b.record({"A": 4}, 10, 60.0)
        await b.record({}, 11, 60.0)  # nothing: no key, no round trip
        assert await a.totals([9, 10, 11]) == [{}, {"A": 7, "B": 1}, {}]
        assert 0 < await redis.ttl(f"{prefix}:10") <= 60


async def test_two_replicas_racing_open_one_drop_audited_once_and_it_closes_after_calm(
    parts: Parts, settings: Settings
) -> None:
    async with redis_at(settings.redis_url) as redis:
        prefix = uid("wr")
        (hot,) = await parts.skus(50)
        one, two = auto(parts, redis, prefix), auto(parts, redis, prefix)
        parts.clock.t = 2_000_000_000.0  # a bucket boundary: both replicas' buckets agree
        for _ in range(2):  # two buckets at 80 adds/s per replica: 160/s in all
            count(one, hot, 400)
            count(two, hot, 400)
            parts.clock.advance(CFG.bucket_s)
            decisions = await asyncio.gather(one.run_once(), two.run_once())
            assert all(d is not None for d in decisions)
        live = await parts.drops.live_skus()
        drop = await parts.drops.get(live[hot])
        assert drop is not None and (drop.state, drop.origin, drop.skus) == (OPEN, AUTO, (hot,))
        assert (drop.rate_per_s, drop.rate_source) == (20.0, "setting")
        assert drop.drop_id in {d.drop_id for d in await parts.drops.live_auto()}
        assert await audited(parts, "drop.create", drop.drop_id) == [("system:auto", "ok")]
        # Calm: 10 adds/s, past the hold-down, nobody waiting: one replica closes it, once.
        for _ in range(8):
            count(one, hot, 50)
            parts.clock.advance(CFG.bucket_s)
            await asyncio.gather(one.run_once(), two.run_once())
        closed = await parts.drops.get(drop.drop_id)
        assert closed is not None and closed.state == CLOSED
        assert hot not in await parts.drops.live_skus()
        assert await audited(parts, "drop.close", drop.drop_id) == [("system:auto", "ok")]


async def test_claiming_one_sku_under_two_ids_at_once_lets_exactly_one_through(
    parts: Parts,
) -> None:
    (sku,) = await parts.skus(5)
    now = parts.clock.now()

    def drop(bucket: int) -> Drop:
        return Drop(drop_id_for(f"auto:{sku}:{bucket}"), f"auto {sku}", (sku,), OPEN, now, 5.0,
                    600.0, 16, 8, now, origin=AUTO, rate_source="setting")  # fmt: skip

    for attempt in range(3):  # a race is not deterministic: run it a few times
        ids = [attempt * 10 + b for b in range(4)]
        got = await asyncio.gather(*(parts.drops.claim(drop(b)) for b in ids))
        winners = [d for d in got if d is not None]
        assert len(winners) == 1
        assert (await parts.drops.live_skus())[sku] == winners[0].drop_id
        assert await parts.drops.claim(winners[0]) is None  # the same id again
        await parts.drops.set_state(winners[0].drop_id, CLOSED, (OPEN,))
    # A SKU that does not exist is not claimed (adds may name anything).
    ghost = Drop(drop_id_for(uid("g")), "auto ghost", ("NO-SUCH-" + uid().upper(),), OPEN,
                 now, 5.0, 600.0, 16, 8, now, origin=AUTO)  # fmt: skip
    assert await parts.drops.claim(ghost) is None


async def test_redis_away_records_nothing_decides_nothing_and_keeps_the_counts(
    parts: Parts,
) -> None:
    (hot,) = await parts.skus(5)
    dead = Redis.from_url("redis://127.0.0.1:1", socket_timeout=0.5, socket_connect_timeout=0.5)
    try:
        watcher = auto(parts, dead, uid("wr"))
        count(watcher, hot, 2000)
        parts.clock.advance(CFG.bucket_s)
        assert await watcher.run_once() is None
        assert isinstance(watcher.source, PassGate) and watcher.source.demand == {hot: 2000}
        assert hot not in await parts.drops.live_skus()
    finally:
        await dead.aclose()


async def test_rate_auto_is_stored_with_its_provenance(
    parts: Parts, settings: Settings, tmp_path: Path
) -> None:
    path = tmp_path / "profile.json"
    path.write_text(profile().to_json())
    async with redis_at(settings.redis_url) as redis:
        admin = parts.admin(RedisQueue(redis, prefix=uid("wr")))
        admin.rates = RateSource(str(path), 0.7)
        (sku,) = await parts.skus(5)
        drop = await admin.create(spec([sku], rate_per_s="auto"), uid("rid"))
        again = await parts.drops.get(drop.drop_id)
        assert again is not None and again.rate_per_s == 350.0
        assert again.rate_source.startswith("auto: profile profile.json measured 2026-12-02")
        assert again.origin == "operator"
        await admin.set_rate(drop.drop_id, 3.0)
        stats = await admin.stats(drop.drop_id)
        assert (stats["rate_per_s"], stats["rate_source"]) == (3.0, "operator")
        path.write_text(json.dumps({"schema": "no"}))
        with pytest.raises(InvalidInput) as refused:
            await admin.set_rate(drop.drop_id, "auto")
        assert refused.value.http_status == 422 and "not a matchday capacity profile" in str(
            refused.value
        )
        assert (await admin.get(drop.drop_id)).rate_per_s == 3.0
