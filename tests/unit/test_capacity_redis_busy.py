"""Redis measured busy (profile version 4): what a command costs Redis at the plan's rate, and
when its saturation is still only a bound. Planted busy sections; no Redis needed.

The hand profile (``capacity_cases``) measures Redis at 20/s a class: browse, product and
session 2, 2 and 3 commands on 50 us, poll_vote 4 on 100 us, availability none on 50 us. Pooled
over its phases that is 20 x 300 us over 20 x 11 commands: 300/11 = 27.27 us a command, at
up to 80 commands/s (poll_vote's).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from matchday.capacity import classes as k
from matchday.capacity.demand import IN_STOCK, demand
from matchday.capacity.plan import make_plan
from matchday.capacity.plan_model import Node, Options, Plan
from matchday.capacity.profile import (
    REDIS_BUSY_SINCE,
    VERSION,
    Profile,
    ProfileError,
    parse_profile,
)
from matchday.capacity.redis_busy import cost_factor, curve, light_point
from matchday.capacity.report import markdown
from tests.unit.capacity_cases import BROWSER, BUYER, mixed_profile, profile_data, steady_mix

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "docs" / "capacity-runs"
RUN_1049 = RUNS / "2026-12-03-1049-validation" / "profile.json"
# 10:49's profile with the busy-Redis driver's figures of this machine planted in (not a
# measure run: docs/capacity.md, 2026-12-03).
PLANTED = RUNS / "2026-12-03-busy-redis-planted" / "profile.json"
C_LIGHT = 300 / 11


def level(clients: int, cmds_per_s: float, us: float) -> dict[str, Any]:
    seconds = 3.0
    return {
        "clients": clients,
        "seconds": seconds,
        "requests": round(cmds_per_s * seconds / 6),
        "commands": cmds_per_s * seconds,
        "cmds_per_s": cmds_per_s,
        "cores": cmds_per_s * us / 1e6,
        "cpu_us_per_cmd": us,
        "exec_us_per_cmd": 2.0,
    }


def busy(*levels: dict[str, Any]) -> dict[str, Any]:
    return {"idle_cores": 0.002, "mix": {"evalsha": 0.5, "get": 0.5}, "levels": list(levels)}


# Half the light cost at 800 commands/s (ten times poll_vote's 80), half again at 8,000.
HALVING = busy(level(1, 800.0, C_LIGHT / 2), level(64, 8000.0, C_LIGHT / 4))


def busy_profile(section: dict[str, Any] = HALVING) -> Profile:
    return parse_profile(json.dumps(profile_data(redis_busy=section)))


def hand_plan(p: Profile, users: int = 10_000) -> Plan:
    d = demand(steady_mix((BROWSER, 3), (BUYER, 1)), users, {}, state=IN_STOCK)
    return make_plan(p, d, Options(node=Node(4, 8), utilisation=0.5))


def redis_limit(plan: Plan) -> Any:
    (x,) = [x for x in plan.limits if x.name == "redis (one core)"]
    return x


# -- the profile -------------------------------------------------------------------------------


def test_a_profile_with_a_busy_redis_phase_round_trips() -> None:
    p = busy_profile()
    assert p.version == VERSION >= REDIS_BUSY_SINCE
    assert p.redis_busy is not None and len(p.redis_busy.levels) == 2
    assert p.redis_busy.busiest.clients == 64
    assert p.redis_busy.ceiling_cmds_per_s == pytest.approx(4e6 / C_LIGHT)
    assert parse_profile(p.to_json()) == p


def test_a_profile_without_it_loads_as_before() -> None:
    assert parse_profile(json.dumps(profile_data())).redis_busy is None
    recorded = parse_profile(RUN_1049.read_text())  # version 3, 2026-12-03
    assert recorded.version == 3 and recorded.redis_busy is None


def test_an_older_profile_claiming_a_busy_phase_is_refused() -> None:
    data = profile_data(version=REDIS_BUSY_SINCE - 1, redis_busy=HALVING)
    with pytest.raises(ProfileError, match="busy-Redis phase, which version 4 added"):
        parse_profile(json.dumps(data))


def test_a_busy_phase_without_levels_is_malformed() -> None:
    with pytest.raises(ProfileError, match=r"redis_busy\.levels"):
        parse_profile(json.dumps(profile_data(redis_busy=busy())))


# -- the cost per command ----------------------------------------------------------------------


def test_the_light_point_pools_every_phase() -> None:
    rate, us = light_point(busy_profile())
    assert rate == pytest.approx(80.0) and us == pytest.approx(C_LIGHT)


def test_the_cost_follows_the_power_law_through_the_busy_levels_then_holds() -> None:
    p = busy_profile()
    assert cost_factor(p, 50.0) == 1.0  # below the light phases' own rate
    assert cost_factor(p, 80.0) == 1.0
    assert cost_factor(p, 800.0) == pytest.approx(0.5)
    # Half-way (geometrically) between 800 and 8,000: 0.5 x 10^(-0.5 x log10 2) = 0.5 / sqrt 2.
    assert cost_factor(p, math.sqrt(800 * 8000)) == pytest.approx(0.5 / math.sqrt(2))
    assert cost_factor(p, 8000.0) == pytest.approx(0.25)
    assert cost_factor(p, 1e6) == pytest.approx(0.25)  # held past the busiest level
    # Without a busy phase, the light cost everywhere.
    assert cost_factor(Profile.model_validate(profile_data()), 1e6) == 1.0


def test_the_cost_never_falls_faster_than_one_over_the_rate() -> None:
    # A busy level a hundred times cheaper at ten times the rate would mean Redis used less
    # CPU for more commands: the curve falls as 1/rate there (flat cores) instead.
    p = busy_profile(busy(level(1, 800.0, C_LIGHT / 100)))
    assert curve(p)[-1] == pytest.approx((800.0, C_LIGHT / 10))
    assert cost_factor(p, 800.0) == pytest.approx(0.1)
    commands = [100.0, 200.0, 400.0, 800.0, 1600.0]
    cores = [x * C_LIGHT * cost_factor(p, x) for x in commands]
    assert cores == sorted(cores)


def test_levels_at_or_below_the_light_rate_are_left_out() -> None:
    p = busy_profile(busy(level(1, 60.0, 5.0), level(8, 800.0, C_LIGHT / 2)))
    assert [r for r, _ in curve(p)] == [80.0, 800.0]


# -- the plan ----------------------------------------------------------------------------------


def test_measured_busy_redis_takes_its_cost_from_there_and_is_an_estimate() -> None:
    # Without it: 9,375 commands/s on 0.21875 core, marked as a bound
    # (test_capacity_redis). With it, past the busiest level: a quarter of that.
    light = hand_plan(Profile.model_validate(profile_data()))
    plan = hand_plan(busy_profile())
    assert plan.stores.redis_cmds_per_s == pytest.approx(9375.0)
    assert plan.stores.redis_factor == pytest.approx(0.25)
    assert plan.cores[k.REDIS] == pytest.approx(light.cores[k.REDIS] / 4)
    assert plan.cores[k.REDIS] == pytest.approx(0.21875 / 4)
    redis = redis_limit(plan)
    assert not redis.lower_bound and redis.headroom == pytest.approx(4 / 0.21875)
    report = markdown(plan, busy_profile(), "steady")
    assert "its cost per command from the busy-Redis phase (x0.25" in report
    assert "where it saturates is an estimate." in report
    assert f"| {redis.saturates_at_users:,.0f} |" in report
    assert "| redis |" not in report  # no two-rate factors for it: the busy phase's instead


def test_past_the_busy_ceiling_redis_is_a_bound_again() -> None:
    # One core at the busiest level's 6.8 us serves 146,667 commands/s; 200,000 users ask
    # 187,500.
    p = busy_profile()
    plan = hand_plan(p, 200_000)
    assert plan.stores.redis_cmds_per_s == pytest.approx(187_500.0)
    assert plan.stores.redis_cmds_per_s > p.redis_busy.ceiling_cmds_per_s  # type: ignore[union-attr]
    redis = redis_limit(plan)
    assert redis.lower_bound
    report = markdown(plan, p, "steady")
    assert "since the plan asks more than that ceiling" in report
    assert f"| at least {redis.saturates_at_users:,.0f} |" in report


def test_the_busy_phase_decides_redis_over_the_mixed_phase() -> None:
    # The hand mix's phase saw no Redis CPU; with a busy phase Redis is the classes' cost
    # times the busy factor, as without a mix.
    data = json.loads(mixed_profile().to_json())
    data["classes"][k.BROWSE]["cpu_us"]["redis"] = 50.0
    data["mixes"]["test"]["cost"]["cpu_us"]["redis"] = 500.0
    with_busy = Profile.model_validate({**data, "redis_busy": HALVING})
    without = Profile.model_validate(data)
    d = demand(steady_mix((BROWSER, 3), (BUYER, 1)), 10_000, {}, state=IN_STOCK)
    opts = Options(node=Node(4, 8), utilisation=0.5)
    mixed = make_plan(without, d, opts)
    assert mixed.mixed is not None
    busy_plan = make_plan(with_busy, d, opts)
    classes_only = make_plan(without, d, Options(node=Node(4, 8), utilisation=0.5, mixed=False))
    assert busy_plan.cores[k.REDIS] == pytest.approx(
        classes_only.cores[k.REDIS] * busy_plan.stores.redis_factor
    )
    assert busy_plan.cores[k.REDIS] != pytest.approx(mixed.cores[k.REDIS])


def test_twice_the_users_never_need_less_of_redis() -> None:
    p = busy_profile(busy(level(1, 300.0, 20.0), level(8, 900.0, 2.0), level(64, 5000.0, 3.0)))
    cores = [hand_plan(p, users).cores[k.REDIS] for users in (100, 200, 400, 800, 1600, 3200)]
    assert cores == sorted(cores)


def test_the_recorded_kickoff_plan_with_the_planted_busy_figures_estimates_redis() -> None:
    from loadtests.mixes import load_mix

    p = parse_profile(PLANTED.read_text())
    assert p.redis_busy is not None and p.classes == parse_profile(RUN_1049.read_text()).classes
    d = demand(load_mix("kickoff"), 1000, {c: x.latency.mean_ms for c, x in p.classes.items()})
    plan = make_plan(p, d, Options(node=Node(8, 16)))
    # 17,484 commands/s: 1.00 core at the light cost (a bound), ~0.27 from the busy phase.
    assert plan.stores.redis_cmds_per_s == pytest.approx(17_484, abs=1)
    assert plan.stores.redis_cores == pytest.approx(0.27, abs=0.01)
    assert not redis_limit(plan).lower_bound
    assert plan.first.name == "postgres primary (CPU)" and not plan.first.lower_bound
