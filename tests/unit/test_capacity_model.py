"""The planner's arithmetic against sums done by hand (ADR 0023).

Every expected number below is worked out in the comment beside it from the round costs of
``capacity_cases.COSTS``; none is read back from the code under test.
"""

from __future__ import annotations

import math

import pytest

from loadtests.stages import Stage
from matchday.capacity import classes as k
from matchday.capacity.demand import (
    IN_STOCK,
    SOLD_OUT,
    WORST,
    Demand,
    Mix,
    demand,
    iteration_rate,
    per_user_rates,
    sell_out_s,
    users_curve,
)
from matchday.capacity.plan import at_saturation, batch_factor, make_plan
from matchday.capacity.plan_model import Node, Options, Stores
from matchday.capacity.profile import PlanInputError, Profile
from tests.unit.capacity_cases import BROWSER, BUYER, profile, profile_data, steady_mix

TABLE = (Stage(10, 0.1, 5), Stage(20, 1.0, 2), Stage(30, 0.5, 10))


def test_a_stage_table_ramps_users_as_locust_spawns_them() -> None:
    # Peak 100: stage 1 aims at 10 users at 10/5 = 2 a second; stage 2 at 100, 90 in 2 s
    # (45 a second); stage 3 down to 50 at 50/10 = 5 a second.
    times, users = users_curve(TABLE, 100)
    at = dict(zip(times, users, strict=True))
    assert len(times) == 30 and times[-1] == 30
    assert (at[1], at[3], at[5], at[10]) == (2, 6, 10, 10)
    assert (at[11], at[12], at[20]) == (55, 100, 100)
    assert (at[21], at[25], at[30]) == (95, 75, 50)


def test_a_stage_never_has_fewer_than_one_user() -> None:
    _, users = users_curve((Stage(5, 0.001, 1),), 10)
    assert users[-1] == 1


def test_a_loop_lasts_its_mean_think_time_plus_its_requests_latency() -> None:
    # Buyer: think 2-6 s (mean 4) + session 0.5 s + add 0.5 s + checkout 1 s = 6 s a loop.
    latency = {k.SESSION: 500.0, k.ADD: 500.0, k.CHECKOUT: 1000.0}
    assert iteration_rate(BUYER, latency, 1.0, IN_STOCK) == pytest.approx(1 / 6)
    # Think x0.5: 2 s of thought + 2 s of requests.
    assert iteration_rate(BUYER, latency, 0.5, IN_STOCK) == pytest.approx(1 / 4)
    # Sold out: session 0.5 s, the refused add has no latency here: 4.5 s.
    assert iteration_rate(BUYER, latency, 1.0, SOLD_OUT) == pytest.approx(1 / 4.5)


def test_a_mix_gives_requests_per_user_by_persona_weight() -> None:
    mix = steady_mix((BROWSER, 3), (BUYER, 1))
    # 3/4 of users browse once per 2 s: 0.375 browse/s a user. 1/4 buy once per 4 s:
    # 0.0625 session, add and checkout a second, each add on the drop.
    rates, hot_adds, hot_units = per_user_rates(mix, {}, 1.0, IN_STOCK)
    assert rates[k.BROWSE] == pytest.approx(0.375)
    assert rates[k.SESSION] == rates[k.ADD] == rates[k.CHECKOUT] == pytest.approx(0.0625)
    assert rates[k.ADD_SOLD_OUT] == 0 and hot_adds == hot_units == pytest.approx(0.0625)
    sold, _, sold_units = per_user_rates(mix, {}, 1.0, SOLD_OUT)
    assert sold[k.ADD_SOLD_OUT] == pytest.approx(0.0625) and sold[k.CHECKOUT] == 0
    assert sold_units == 0
    worst, _, _ = per_user_rates(mix, {}, 1.0, WORST)
    assert worst[k.CHECKOUT] == worst[k.ADD_SOLD_OUT] == pytest.approx(0.0625)


def test_demand_follows_the_users_and_adds_extra_classes_at_the_peak() -> None:
    mix = Mix("t", {"Browser": 1}, {"Browser": BROWSER}, TABLE, fixed_users=0)
    d = demand(mix, 100, {}, extra_at_peak={k.POLL_VOTE: 30.0})
    # 0.5 browse/s a user: 50/s at the 100-user peak, 25/s at t=25 (75 users: 37.5).
    assert d.at_peak()[k.BROWSE] == pytest.approx(50)
    series = d.series()
    assert series[k.BROWSE][24] == pytest.approx(37.5)
    # Votes scale with the users too: 30/s at the peak, 15 at 50 users.
    assert d.at_peak()[k.POLL_VOTE] == pytest.approx(30)
    assert series[k.POLL_VOTE][-1] == pytest.approx(15)


def test_fixed_count_users_carry_no_weighted_load() -> None:
    mix = Mix("t", {"Browser": 1}, {"Browser": BROWSER}, (), fixed_users=1)
    assert demand(mix, 11, {}).at_peak()[k.BROWSE] == pytest.approx(5.0)  # 10 browsers


def test_the_drop_sells_out_when_its_units_are_taken() -> None:
    mix = steady_mix((BUYER, 1))
    d = demand(mix, 100, {}, state=IN_STOCK)
    # 100 buyers, one unit each per 4-second loop: 25 units a second, 100 gone at t=4.
    assert sell_out_s(d, 100) == 4
    assert sell_out_s(d, 10**9) is None


def hand_demand() -> Demand:
    """10,000 users, 3 browsers to 1 buyer, in stock, no latency (see the module's sums)."""
    return demand(steady_mix((BROWSER, 3), (BUYER, 1)), 10_000, {}, state=IN_STOCK)


def test_a_plan_sizes_replicas_shards_nodes_and_stores_as_worked_by_hand() -> None:
    # Rates: browse 3,750/s, session = add = checkout = 625/s.
    opts = Options(node=Node(cores=4, memory_gib=8), utilisation=0.5)
    p = make_plan(profile(), hand_demand(), opts)
    assert p.rates_at_peak[k.BROWSE] == pytest.approx(3750)
    # catalog 3,750 x 400 us = 1.5 cores: 3 replicas at 50%, autoscaling up to 5 (x1.5).
    # shop 625 x (300 + 500) us = 0.5 core: 1; orders 625 x 1,000 us = 0.625: 2.
    got = {d.role: (d.replicas_at_peak, d.min_replicas, d.max_replicas) for d in p.deployments}
    assert got == {
        "replica:catalog": (3, 3, 5),
        "replica:shop": (1, 1, 2),
        "replica:orders": (2, 2, 3),
        "replica:orders/Payments": (1, 1, 2),
    }
    assert p.cores[k.INGRESS] == pytest.approx(0.5625)  # 5,625 requests/s x 100 us
    # The drop takes 625 adds/s, over 20% of the shard's 1,000/s ceiling: pinned, and its
    # 625 x 100 us leave the ring's 0.3125 core: 0.25 core, one ring shard; 1 + 1 spare.
    assert p.shards.pins == (("JERSEY-FINAL-LTD-M", pytest.approx(625)),)
    assert (p.shards.ring, p.shards.dedicated) == (1, 2)
    assert p.shards.ring_cores == pytest.approx(0.25)
    # Nodes: 3.78125 cores of work; a 4-core node at 50% minus Ray's idle 0.2 holds 1.8: 3.
    assert p.nodes.cores_needed == pytest.approx(3.78125)
    assert (p.nodes.at_peak, p.nodes.min, p.nodes.max) == (3, 3, 5)
    # PostgreSQL: 625 x 0.5 + 625 x 2 = 1,562.5 commits/s; 625 x (2 + 10) kB = 7.5 MB/s.
    assert p.stores.pg_write_xacts_per_s == pytest.approx(1562.5)
    assert p.stores.pg_wal_mb_s == pytest.approx(7.5)
    assert p.stores.primaries_needed == 1
    # Redis: 3,750 x 2 + 625 x 3 commands.
    assert p.stores.redis_cmds_per_s == pytest.approx(9375)


def test_the_first_component_to_saturate_is_the_one_with_least_headroom() -> None:
    p = make_plan(profile(), hand_demand(), Options(node=Node(4, 8), utilisation=0.5))
    # The drop's shard: 1,000 / 625 = 1.6x; then the catalog replicas at their maximum:
    # 5 cores / 1.5 = 3.33x; redis 1 / 0.21875 = 4.57x comes after the shop's 4x.
    assert p.first.name == "hot SKU JERSEY-FINAL-LTD-M (one shard)"
    assert p.first.headroom == pytest.approx(1.6)
    assert p.first.saturates_at_users == pytest.approx(16_000)
    order = [x.name for x in p.limits]
    assert order.index("replica:catalog replicas") == 1
    assert order.index("replica:shop replicas") < order.index("redis (one core)")
    assert p.saturation_requests_per_s == pytest.approx(5625 * 1.6)


def test_a_fixed_cluster_saturates_where_its_cores_run_out() -> None:
    # One 4-core node: 4 - 0.2 idle = 3.8 cores for 3.78125 of work: 1.005x.
    opts = Options(node=Node(4, 8), utilisation=0.5, fixed_nodes=1)
    p = make_plan(profile(), hand_demand(), opts)
    assert p.first.name == "nodes (CPU)"
    assert p.first.headroom == pytest.approx(3.8 / 3.78125)


def test_colocated_stores_count_on_the_nodes_and_need_no_primary_limit() -> None:
    opts = Options(node=Node(4, 8), utilisation=0.5, stores=Stores(colocated=True))
    p = make_plan(profile(), hand_demand(), opts)
    # + PostgreSQL 0.8125 + Redis 0.21875 cores, and PostgreSQL's 0.05 core idle.
    assert p.nodes.cores_needed == pytest.approx(3.78125 + 0.8125 + 0.21875 + 0.05)
    assert not any(x.name.startswith("postgres") for x in p.limits)


def test_past_one_primary_the_plan_counts_the_shard_groups() -> None:
    # A 1-core primary at 50%: 0.8125 core of PostgreSQL work needs two.
    opts = Options(node=Node(4, 8), utilisation=0.5, stores=Stores(pg_cores=1.0))
    p = make_plan(profile(), hand_demand(), opts)
    assert p.stores.primaries_needed == 2 and p.beyond_one_primary


def test_a_cold_sku_stays_on_the_ring() -> None:
    d = demand(steady_mix((BROWSER, 3), (BUYER, 1)), 1_000, {}, state=IN_STOCK)
    p = make_plan(profile(), d, Options(node=Node(4, 8)))
    # 62.5 adds/s is under 20% of the 1,000/s ceiling: no pin, one spare dedicated shard.
    assert p.shards.pins == () and p.shards.dedicated == 1


@pytest.mark.parametrize(
    ("node", "complaint"),
    [
        (Node(0.5, 8), "cannot host one replica"),  # 0.25 core at 50%, minus Ray's 0.2
        (Node(4, 0.5), "cannot host one replica"),  # 0.4 GiB, minus Ray's 0.5
    ],
)
def test_a_node_too_small_for_one_replica_is_refused(node: Node, complaint: str) -> None:
    with pytest.raises(PlanInputError, match=complaint):
        make_plan(profile(), hand_demand(), Options(node=node, utilisation=0.5))


@pytest.mark.parametrize("users", [0, -5])
def test_zero_or_negative_users_are_refused(users: int) -> None:
    with pytest.raises(PlanInputError, match="positive"):
        demand(steady_mix((BROWSER, 1)), users, {})


def test_a_target_utilisation_outside_zero_to_one_is_refused() -> None:
    for u in (0.0, 1.5):
        with pytest.raises(PlanInputError, match="utilisation"):
            make_plan(profile(), hand_demand(), Options(node=Node(4, 8), utilisation=u))


def test_autoscaling_targets_follow_little_law() -> None:
    data_latency = profile().model_dump(by_alias=True)
    data_latency["classes"][k.BROWSE]["latency"]["mean_ms"] = 20.0
    from matchday.capacity.profile import Profile

    p = make_plan(Profile.model_validate(data_latency), hand_demand(), Options(Node(4, 8), 0.5))
    (catalog,) = [d for d in p.deployments if d.role == "replica:catalog"]
    # One replica at 50% takes 3,750 x 0.5 / 1.5 = 1,250 req/s; x 20 ms = 25 in flight.
    assert (catalog.target_ongoing, catalog.max_ongoing) == (25, 100)
    assert math.isclose(catalog.latency_ms, 20.0)


def batching_profile() -> Profile:
    data = profile_data()
    # The hot phase: 1,000 reserves/s at 50 us of shard and 25 us of publisher CPU each; the
    # add phase (20 adds/s) paid 200 and 100: at the hot rate both cost a quarter.
    data["hot_shard"]["cpu_us"] = {"shards": 50.0, "ray:publisher": 25.0}
    return Profile.model_validate(data)


def test_a_batch_factor_runs_from_the_add_phase_to_the_hot_phase_by_the_rate() -> None:
    prof = batching_profile()
    # At or below the add phase's 20/s nothing is shared; at or past 1,000/s, a quarter.
    assert batch_factor(prof, "shards", 5.0) == 1.0
    assert batch_factor(prof, "shards", 20.0) == 1.0
    assert batch_factor(prof, "shards", 1000.0) == pytest.approx(0.25)
    assert batch_factor(prof, "shards", 5000.0) == pytest.approx(0.25)
    # Between, the power law through both points: sqrt(20 x 1,000) is half-way in log
    # terms, so the factor is sqrt(0.25) = 0.5 (cores 141 x 200 us x 0.5 = 14 ms/s).
    assert batch_factor(prof, "shards", math.sqrt(20 * 1000)) == pytest.approx(0.5)
    # A role the hot phase did not see, or one that costs more there, is not scaled.
    assert batch_factor(prof, "replica:shop", 1000.0) == 1.0
    assert batch_factor(profile(), "shards", 1000.0) == 1.0


def test_group_committing_roles_are_sized_for_the_rate_each_process_sees() -> None:
    prof = batching_profile()
    # 625 adds/s, all on the drop's one SKU: its shard runs at 625/s; 625 checkouts/s
    # spread over the ring's shards.
    p = make_plan(prof, hand_demand(), Options(Node(4, 8), 0.5))
    hot = batch_factor(prof, "shards", 625.0)
    ring = batch_factor(prof, "shards", 625.0 / p.engine.ring)
    events = batch_factor(prof, "ray:publisher", 1250.0)  # adds + checkouts, one process
    assert events == pytest.approx(0.25)
    assert p.cores[k.SHARDS] == pytest.approx(625 * (200 * hot + 300 * ring) / 1e6)
    assert p.cores[k.PUBLISHER] == pytest.approx(625 * (100 + 100) * events / 1e6)
    # Few users: 6.25 adds/s and checkouts/s, under the add phase's rate: the light cost.
    few = demand(steady_mix((BROWSER, 3), (BUYER, 1)), 100, {}, state=IN_STOCK)
    q = make_plan(prof, few, Options(Node(4, 8), 0.5))
    assert q.cores[k.SHARDS] == pytest.approx(6.25 * (200 + 300) / 1e6)
    # Other roles keep their light-load cost.
    assert p.cores["replica:shop"] == pytest.approx(0.5)


def test_a_deployed_configs_replica_maxima_bound_a_fixed_cluster() -> None:
    # One payments replica, as the laptop's serve_config.yaml runs the test gateway: its
    # 0.125 core of load has 8x headroom against 1 core, not 16x against the plan's 2.
    opts = Options(Node(4, 8), 0.5, replica_caps={"replica:orders/Payments": 1})
    p = make_plan(profile(), hand_demand(), opts)
    (payments,) = [x for x in p.limits if x.name == "replica:orders/Payments replicas"]
    assert payments.capacity == 1 and payments.headroom == pytest.approx(8)


def test_every_process_adds_its_idle_cpu_to_the_nodes_including_apps_no_class_reaches() -> None:
    data = profile_data()
    # Each replica burns 0.01 core idle; the admin app (no class reaches it) runs one too.
    idle = {"replica:catalog": 0.01, "replica:shop": 0.01, "replica:admin": 0.01, "shards": 0.03}
    data["idle"]["cores"].update(idle)
    data["processes"]["count"]["replica:admin"] = 1
    data["processes"]["rss_mb"]["replica:admin"] = 256.0
    p = make_plan(Profile.model_validate(data), hand_demand(), Options(Node(4, 8), 0.5))
    # On top of 3.78125: catalog 3 x 0.01 + shop 1 x 0.01 + admin 0.01, and the shards'
    # 0.01 each (0.03 over 3 measured) x (1 ring + 2 dedicated).
    assert p.nodes.cores_needed == pytest.approx(3.78125 + 0.05 + 0.03)
    # The admin replica's memory counts too: 256 MiB beside the others.
    base = make_plan(profile(), hand_demand(), Options(Node(4, 8), 0.5))
    assert p.nodes.memory_gib_needed == pytest.approx(base.nodes.memory_gib_needed + 0.25)


def test_at_saturation_the_plan_is_remade_where_its_first_component_saturates() -> None:
    prof = batching_profile()
    opts = Options(Node(4, 8), 0.5, fixed_nodes=1)
    first = make_plan(prof, hand_demand(), opts)
    at = at_saturation(prof, hand_demand(), opts)
    # The estimate from the peak is refined until the first headroom is 1 (within 1%) ...
    assert at.first.headroom == pytest.approx(1.0, abs=0.01)
    # ... at a load the peak's plan would not have predicted exactly: the shards' cost per
    # call moved with the load, but only a little (the other roles are linear).
    assert at.requests_per_s == pytest.approx(first.saturation_requests_per_s, rel=0.1)
    # Without batching (no hot-phase costs) the model is linear: one round lands on it.
    linear = at_saturation(profile(), hand_demand(), opts)
    plain = make_plan(profile(), hand_demand(), opts)
    assert linear.requests_per_s == pytest.approx(plain.saturation_requests_per_s, rel=0.01)
