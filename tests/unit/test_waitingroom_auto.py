"""Automatic drops and rates from a capacity profile, over in-memory stores and a manual
clock (no Redis, PostgreSQL or Ray): the policy, two replicas at once, stores down, the
hold-down, and ``auto`` rates refused without a readable profile (ADR 0026)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from matchday.capacity.admission import SHARD_CALLS_PER_FAN, admission_fans_per_s
from matchday.capacity.demand import IN_STOCK, demand
from matchday.capacity.plan import make_plan
from matchday.capacity.plan_model import Node, Options
from matchday.capacity.report import markdown
from matchday.domain.errors import InvalidInput
from matchday.metrics import WR_AUTO, MemoryMetrics
from matchday.waitingroom.auto import (
    MAX_AUTO_DROPS,
    SETTING,
    AutoConfig,
    AutoDrops,
    decide,
)
from matchday.waitingroom.gate import KEEP_SKUS, PassGate
from matchday.waitingroom.models import AUTO, CLOSED, OPEN, PAUSED, Drop, DropIn, RateIn
from matchday.waitingroom.rates import NO_PROFILE, RateSource
from matchday.waitingroom.service import DropAdmin
from matchday.waitingroom.tokens import Tokens
from tests.fakes import ManualClock
from tests.unit.capacity_cases import BUYER, profile, steady_mix
from tests.unit.waitingroom_fakes import FakeAudit, FakeDemand, FakeDrops, FakeQueue, FakeStock

SECRET = "s" * 16 + "e" * 16
HOT = "JERSEY-FINAL-L"
CFG = AutoConfig(adds_per_s=100.0, window_s=10.0, hold_s=60.0, bucket_s=5.0, rate_per_s=25.0)


def auto_drop(drop_id: str, sku: str, created_at: float, state: str = OPEN) -> Drop:
    return Drop(drop_id, f"auto {sku}", (sku,), state, created_at, 25.0, 600.0, 16, 8,
                created_at, origin=AUTO, rate_source=SETTING)  # fmt: skip


# -- the policy ----------------------------------------------------------------------------


def test_a_sku_in_no_drop_above_the_threshold_over_the_window_gets_a_drop() -> None:
    # 12 buckets of 5 s: the last two (the 10 s window) carry 600 and 500 adds: 110/s.
    buckets = [{HOT: 0} for _ in range(10)] + [{HOT: 600, "CALM": 40}, {HOT: 500, "DROP": 9e3}]
    got = decide(CFG, buckets, {"DROP": "d_x"}, [], {}, 1000.0)
    assert got.opens == ((HOT, 110.0),) and got.closes == ()
    # Just under the threshold over the window (a burst in one bucket is not enough): nothing.
    assert decide(CFG, [{HOT: 999}, {HOT: 0}], {}, [], {}, 0.0).opens == ()
    # At most MAX_AUTO_DROPS at once, the hottest first.
    many = [{f"SKU-{i:03d}": 1000 + i for i in range(MAX_AUTO_DROPS + 5)}] * 2
    opened = decide(CFG, many, {}, [], {}, 0.0).opens
    assert len(opened) == MAX_AUTO_DROPS and opened[0][0] == f"SKU-{MAX_AUTO_DROPS + 4:03d}"


def test_an_automatic_drop_closes_only_after_the_hold_down_calm_and_an_empty_queue() -> None:
    calm = [{HOT: 200}] * 12  # 40 adds/s in every bucket: under half the threshold (50)
    drop = auto_drop("d_a", HOT, created_at=1000.0)
    live = {HOT: "d_a"}
    assert decide(CFG, calm, live, [drop], {"d_a": 0}, 1059.0).closes == ()  # too young
    assert decide(CFG, calm, live, [drop], {"d_a": 0}, 1060.0).closes == (("d_a", 40.0),)
    assert decide(CFG, calm, live, [drop], {"d_a": 3}, 1060.0).closes == ()  # fans wait
    assert decide(CFG, calm, live, [drop], {}, 1060.0).closes == ()  # queue not read
    spike = [*calm[:5], {HOT: 260}, *calm[6:]]  # one bucket at 52/s within the hold-down
    assert decide(CFG, spike, live, [drop], {"d_a": 0}, 1060.0).closes == ()
    paused = auto_drop("d_a", HOT, created_at=1000.0, state=PAUSED)  # an operator's call now
    assert decide(CFG, calm, live, [paused], {"d_a": 0}, 9999.0).closes == ()
    # Its own SKU never opens a second drop while it lives.
    assert decide(CFG, [{HOT: 9000}] * 12, live, [drop], {"d_a": 0}, 1060.0).opens == ()


# -- the watcher: counts, replicas, stores down ----------------------------------------------


class Replica:
    """One process: its gate (which counts) and its watcher, over shared stores."""

    def __init__(self, clock: ManualClock, drops: FakeDrops, queue: FakeQueue,
                 demand: FakeDemand, audit: FakeAudit, cfg: AutoConfig = CFG) -> None:  # fmt: skip
        self.gate = PassGate(drops.live_skus, Tokens(SECRET), clock, monotonic=clock.now)
        self.auto = AutoDrops(cfg, self.gate, demand, drops, queue, audit, clock,
                              monotonic=clock.now)  # fmt: skip

    def adds(self, sku: str, n: int) -> None:
        for _ in range(n):
            self.gate.needs(sku)


class Shop:
    def __init__(self, replicas: int = 2) -> None:
        self.clock = ManualClock(1_000_000.0)  # a multiple of the bucket: buckets line up
        self.drops, self.queue = FakeDrops(), FakeQueue()
        self.demand, self.audit = FakeDemand(), FakeAudit()
        self.replicas = [
            Replica(self.clock, self.drops, self.queue, self.demand, self.audit)
            for _ in range(replicas)
        ]

    async def second(self, adds_per_replica: int, sku: str = HOT) -> None:
        """A bucket of traffic: each replica counts, then every replica evaluates."""
        for r in self.replicas:
            r.adds(sku, adds_per_replica)
        self.clock.advance(CFG.bucket_s)
        await asyncio.gather(*(r.auto.run_once() for r in self.replicas))


async def test_two_replicas_detecting_at_once_open_one_drop_audited_once_as_the_system() -> None:
    shop = Shop()
    await shop.second(200)  # 400 adds in 5 s over two replicas: 40/s over the 10 s window
    await shop.second(200)  # 80/s: under the 100/s threshold
    assert shop.drops.drops == {}
    await shop.second(400)  # the window (the last two buckets): (400 + 800) / 10 s = 120/s
    (drop,) = shop.drops.drops.values()
    assert (drop.skus, drop.state, drop.origin) == ((HOT,), OPEN, AUTO)
    assert (drop.rate_per_s, drop.rate_source) == (25.0, SETTING)
    assert (drop.pass_ttl_s, drop.pow_bits, drop.address_limit) == (600.0, 16, 8)
    ((who, action, target, params),) = shop.audit.entries
    assert (who, action, target) == ("system:auto", "drop.create", drop.drop_id)
    assert params["sku"] == HOT and params["adds_per_s"] == 120.0
    # Every replica's gate now asks for a pass on that SKU.
    for r in shop.replicas:
        await r.gate.fresh()
        assert r.gate.skus == {HOT: drop.drop_id}
    # The same replicas a bucket later (a different drop id) still make no second drop.
    await shop.second(400)
    assert len(shop.drops.drops) == 1 and len(shop.audit.entries) == 1


async def test_replicas_deciding_in_different_buckets_still_open_one_drop_per_sku() -> None:
    shop = Shop()
    a, b = shop.replicas
    now = shop.clock.now()
    # Both decided before either's drop was visible; their clocks put them in two buckets,
    # so two drop ids: the SKU's uniqueness among live drops lets one through.
    await a.auto._open(HOT, 120.0, 7, now)
    await b.auto._open(HOT, 120.0, 8, now)
    assert len(shop.drops.drops) == 1 and len(shop.audit.entries) == 1


async def test_redis_away_keeps_the_counts_for_the_next_flush_and_changes_nothing() -> None:
    shop = Shop(replicas=1)
    (r,) = shop.replicas
    shop.demand.down = True
    r.adds(HOT, 1200)
    shop.clock.advance(CFG.bucket_s)
    assert await r.auto.run_once() is None
    assert r.gate.demand == {HOT: 1200} and shop.drops.drops == {}  # given back
    shop.demand.down = False
    shop.clock.advance(CFG.bucket_s)
    decision = await r.auto.run_once()
    assert decision is not None and decision.opens == ((HOT, 120.0),)
    assert len(shop.drops.drops) == 1


async def test_postgresql_away_or_the_audit_away_is_survived() -> None:
    shop = Shop(replicas=1)

    async def down() -> dict[str, str]:
        raise OSError("connection refused")

    live = shop.drops.live_skus
    shop.drops.live_skus = down  # type: ignore[method-assign]
    await shop.second(1200)
    await shop.second(1200)
    assert shop.drops.drops == {}  # not evaluated: nothing done blind
    shop.drops.live_skus = live  # type: ignore[method-assign]
    shop.audit.down = True
    await shop.second(1200)
    assert len(shop.drops.drops) == 1  # the drop stands; the audit failure is logged
    assert shop.audit.entries == []


async def test_an_automatic_drop_closes_after_calm_without_stranding_admitted_fans() -> None:
    shop = Shop(replicas=1)
    (r,) = shop.replicas
    r.auto.metrics = metrics = MemoryMetrics()
    await shop.second(600)
    await shop.second(600)
    (drop,) = shop.drops.drops.values()
    assert metrics.count(WR_AUTO, action="opened") == 1
    # A fan admitted to it holds a pass (one unit of headroom); another waits.
    await shop.queue.file(drop.drop_id, "fan1", 1)
    await shop.queue.file(drop.drop_id, "fan2", 2)
    await admit(shop, drop.drop_id, available=1)
    assert shop.queue.admissions == ["fan1"]
    for _ in range(14):  # 70 s of calm: past the hold-down, but fan2 still waits
        await shop.second(10)
    assert shop.drops.drops[drop.drop_id].state == OPEN
    await admit(shop, drop.drop_id, available=10)
    assert shop.queue.admissions == ["fan1", "fan2"]
    await shop.second(10)
    assert shop.drops.drops[drop.drop_id].state == CLOSED
    assert shop.audit.entries[-1][:3] == ("system:auto", "drop.close", drop.drop_id)
    assert metrics.count(WR_AUTO, action="closed") == 1
    # Closed: the SKU needs no pass any more, so an admitted fan without one still buys.
    r.gate._next = 0.0
    assert await r.gate.require(HOT, None, "fan1") is None


async def admit(shop: Shop, drop_id: str, available: int) -> None:
    for _ in range(2):  # the first advance starts the credit, the second spends it
        await shop.queue.advance(drop_id, "x", shop.clock.now(), admit=True, rate_per_s=100.0,
                                 available=available, pass_ttl_s=600.0)  # fmt: skip
        shop.clock.advance(0.1)


async def test_tick_starts_one_evaluation_per_bucket_in_the_background() -> None:
    shop = Shop(replicas=1)
    (r,) = shop.replicas
    r.auto.tick()
    assert r.auto._task is None  # not a bucket yet
    shop.clock.advance(CFG.bucket_s)
    r.adds(HOT, 3)
    r.auto.tick()
    task = r.auto._task
    assert task is not None
    r.auto.tick()  # running, or not due: the same task
    assert r.auto._task is task
    await task
    assert shop.demand.buckets == {int(shop.clock.now() // CFG.bucket_s) - 1: {HOT: 3}}


async def test_the_gate_counts_each_add_and_flushes_through_its_refresh_hook() -> None:
    shop = Shop(replicas=1)
    (r,) = shop.replicas
    r.gate.on_refresh = r.auto.tick
    shop.clock.advance(CFG.bucket_s)
    assert r.gate.needs(HOT)  # the map is due: the request refreshes it
    await r.gate.require(HOT, None, "fan")
    assert r.auto._task is not None
    await r.auto._task
    assert r.gate.demand == {} and sum(shop.demand.buckets[200_000].values()) == 1


# -- rates from the capacity profile -----------------------------------------------------------


def write_profile(tmp_path: Path, text: str | None = None) -> str:
    path = tmp_path / "profile.json"
    path.write_text(profile().to_json() if text is None else text)
    return str(path)


def test_auto_rates_come_from_the_profile_with_their_provenance(tmp_path: Path) -> None:
    rate = RateSource(write_profile(tmp_path), 0.7).resolve("auto")
    # The profile's hot shard reached 1,000 reserves/s: 700 at 70%, 2 shard calls per fan.
    assert rate.per_s == admission_fans_per_s(profile(), 0.7) == 350.0
    assert rate.source.startswith("auto: profile profile.json measured ")
    assert "1,000 reserves/s x 70% / 2 shard calls per fan" in rate.source
    assert RateSource().resolve(12.5).source == "operator"


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (None, NO_PROFILE),
        ("", "cannot read profile nowhere.json"),
        ("{not json", "the profile is not JSON"),
        (json.dumps({"schema": "something else"}), "not a matchday capacity profile"),
        (json.dumps({**json.loads(profile().to_json()), "hot_shard": {}}), "malformed"),
    ],
)
def test_auto_without_a_readable_profile_is_refused_as_bad_input(
    tmp_path: Path, text: str | None, why: str
) -> None:
    if text is None:
        path = ""
    elif text == "":
        path = str(tmp_path / "nowhere.json")
    else:
        path = write_profile(tmp_path, text)
    with pytest.raises(InvalidInput) as refused:
        RateSource(path, 0.7).resolve("auto")
    assert refused.value.field == "rate_per_s" and why in refused.value.reason
    assert refused.value.http_status == 422


async def test_drops_created_or_reset_with_rate_auto_keep_where_it_came_from(
    tmp_path: Path,
) -> None:
    drops = FakeDrops()
    admin = DropAdmin(drops, FakeQueue(), FakeStock(), ManualClock(),
                      RateSource(write_profile(tmp_path), 0.5))  # fmt: skip
    spec = DropIn.model_validate({"name": "Final", "skus": [HOT], "rate_per_s": "auto"})
    drop = await admin.create(spec, "rid-1")
    assert drop.rate_per_s == 250.0 and drop.rate_source.startswith("auto: profile")
    drop = await admin.set_rate(drop.drop_id, 7.0)
    assert (drop.rate_per_s, drop.rate_source) == (7.0, "operator")
    drop = await admin.set_rate(
        drop.drop_id, RateIn.model_validate({"rate_per_s": "auto"}).rate_per_s
    )
    assert drop.to_dict(0.0)["rate_source"].startswith("auto: profile")
    # Without a profile, refused before anything is written.
    bare = DropAdmin(drops, FakeQueue(), FakeStock(), ManualClock())
    with pytest.raises(InvalidInput):
        await bare.create(spec, "rid-2")
    with pytest.raises(InvalidInput):
        await bare.set_rate(drop.drop_id, "auto")
    assert len(drops.drops) == 1 and drops.drops[drop.drop_id].rate_source != "operator"


def test_a_rate_is_auto_or_a_number_in_bounds() -> None:
    for bad in ("fast", 0.0, 1e6, True):
        with pytest.raises(ValueError):
            RateIn.model_validate({"rate_per_s": bad})
    assert RateIn.model_validate({"rate_per_s": 3}).rate_per_s == 3


def test_the_plan_report_states_the_same_admission_rate() -> None:
    # 10,000 buyers each adding the hot SKU every 4 s: 2,500 adds/s, past the shard.
    d = demand(steady_mix((BUYER, 1)), 10_000, {}, state=IN_STOCK)
    p = make_plan(profile(), d, Options(node=Node(4, 8), utilisation=0.5))
    text = markdown(p, profile(), "kickoff")
    fans = admission_fans_per_s(profile(), p.options.utilisation)
    assert fans == 250.0
    assert "no more than 500 adds/s each" in text
    assert f"{fans:,.1f} fans/s at {SHARD_CALLS_PER_FAN:g} shard calls per fan" in text


async def test_an_automatic_drop_takes_the_profile_rate_or_the_setting_when_refused(
    tmp_path: Path,
) -> None:
    cfg = AutoConfig(rates=RateSource(write_profile(tmp_path), 0.7), rate_per_s=9.0)
    assert cfg.rate().per_s == 350.0
    broken = AutoConfig(rates=RateSource(write_profile(tmp_path, "{"), 0.7), rate_per_s=9.0)
    assert (broken.rate().per_s, broken.rate().source) == (9.0, SETTING)


async def test_the_gate_counts_nothing_unless_automatic_drops_are_on() -> None:
    clock = ManualClock()
    drops = FakeDrops()
    gate = PassGate(drops.live_skus, Tokens(SECRET), clock, monotonic=clock.now)
    gate.needs(HOT)
    assert gate.demand is None and gate.take_demand() == {}
    gate.count_demand()
    gate.needs(HOT)
    gate.needs(HOT)
    assert gate.take_demand() == {HOT: 2} and gate.demand == {}


def test_counts_kept_over_failed_flushes_stay_bounded_to_the_busiest_skus() -> None:
    clock = ManualClock()
    gate = PassGate(FakeDrops().live_skus, Tokens(SECRET), clock, monotonic=clock.now)
    gate.count_demand()
    gate.give_back({f"GHOST-{i:05d}": 1 for i in range(KEEP_SKUS + 500)})
    gate.give_back({HOT: 5000})
    assert gate.demand is not None and len(gate.demand) == KEEP_SKUS
    assert gate.demand[HOT] == 5000
