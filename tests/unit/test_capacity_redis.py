"""Redis's cost: its CPU above idle per command, and where a plan's Redis is only a bound.

The profiles of 2026-12-03 measured Redis at 20-50 requests/s (up to ~970 commands/s), about
one command per wakeup of its event loop; a plan extrapolates that cost to tens of thousands
of commands/s, where a busy Redis serves many clients per wakeup. Its saturation point is
then the least it takes (docs/capacity.md, 2026-12-03).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from matchday.capacity import classes as k
from matchday.capacity.costs import Window, class_cost, idle_of
from matchday.capacity.demand import IN_STOCK, demand
from matchday.capacity.plan import make_plan, redis_measured_cmds_per_s
from matchday.capacity.plan_model import Node, Options, Plan
from matchday.capacity.profile import Profile, parse_profile
from matchday.capacity.report import markdown
from tests.unit.capacity_cases import BROWSER, BUYER, profile, profile_data, steady_mix

ROOT = Path(__file__).resolve().parents[2]
RUN_1049 = ROOT / "docs" / "capacity-runs" / "2026-12-03-1049-validation" / "profile.json"


def test_redis_costs_its_cpu_above_its_idle_rate_over_its_commands() -> None:
    # Idle, 10 s: Redis burns 0.002 core (serverCron, the AOF) at 5 commands/s (+ our INFO).
    idle = idle_of(Window(10.0, {"redis": 0.02}, redis_cmds=51))
    # A 4 s phase of 200 requests: 0.048 s of Redis CPU, 0.008 of it idle burn; 221
    # commands, 20 of them idle and 1 our INFO: 200 us and 1 command a request.
    phase = Window(4.0, {"redis": 0.048}, redis_cmds=221)
    cost = class_cost(phase, idle, ok=200, errors=0, rate_per_s=50.0, latencies_ms=[1.0],
                      cls=k.POLL_VOTE)  # fmt: skip
    assert cost.cpu_us["redis"] / cost.redis_cmds == pytest.approx(200.0)
    # A phase that sends Redis nothing finds it at its idle burn: no fixed cost is left over
    # to charge to the commands of the phases that do (what the recorded runs show).
    quiet = class_cost(Window(4.0, {"redis": 0.008}, redis_cmds=21), idle, ok=200, errors=0,
                       rate_per_s=50.0, latencies_ms=[1.0], cls=k.POLL_VOTE)  # fmt: skip
    assert "redis" not in quiet.cpu_us and quiet.redis_cmds == 0


def hand_plan(p: Profile) -> Plan:
    d = demand(steady_mix((BROWSER, 3), (BUYER, 1)), 10_000, {}, state=IN_STOCK)
    return make_plan(p, d, Options(node=Node(4, 8), utilisation=0.5))


def test_past_the_command_rate_it_was_measured_at_redis_saturates_at_least_there() -> None:
    # The hand profile's phases run at 20/s: poll_vote's 4 commands are the most, 80/s.
    p = profile()
    assert redis_measured_cmds_per_s(p) == pytest.approx(80.0)
    # Redis takes 9,375 commands/s on 0.21875 core: it saturates at 42,857/s, far past 80.
    plan = hand_plan(p)
    (redis,) = [x for x in plan.limits if x.name == "redis (one core)"]
    assert redis.lower_bound and redis.headroom == pytest.approx(1 / 0.21875)
    assert not any(x.lower_bound for x in plan.limits if x is not redis)
    report = markdown(plan, p, "steady")
    assert f"| at least {redis.saturates_at_users:,.0f} |" in report
    assert "The profile has no busy-Redis phase; it measured Redis at up to 80 commands/s" in report


def test_a_profile_that_measured_redis_as_busy_as_its_saturation_gives_an_estimate() -> None:
    # poll_vote measured again at 11,000/s: 44,000 commands/s, past the 42,857 Redis
    # saturates at, so the cost there was measured, not extrapolated.
    data = profile_data()
    data["classes"][k.POLL_VOTE]["high"] = {
        "requests": 100, "errors": 0, "rate_per_s": 11_000.0, "cpu_us": {"redis": 100.0},
        "pg_write_xacts": 0.0, "pg_wal_bytes": 0.0, "redis_cmds": 4.0,
    }  # fmt: skip
    p = Profile.model_validate(data)
    assert redis_measured_cmds_per_s(p) == pytest.approx(44_000.0)
    plan = hand_plan(p)
    assert not any(x.lower_bound for x in plan.limits)
    assert "an upper bound" not in markdown(plan, p, "steady")


def test_the_recorded_kickoff_plan_bounds_redis_and_names_the_next_limit() -> None:
    from loadtests.mixes import load_mix

    p = parse_profile(RUN_1049.read_text())
    # poll_vote at 50/s, 19.4 commands each: the most Redis was measured at.
    assert redis_measured_cmds_per_s(p) == pytest.approx(972, abs=1)
    d = demand(load_mix("kickoff"), 1000, {c: x.latency.mean_ms for c, x in p.classes.items()})
    plan = make_plan(p, d, Options(node=Node(8, 16)))
    assert plan.first.name == "redis (one core)" and plan.first.lower_bound
    report = markdown(plan, p, "kickoff")
    assert "The first whose saturation is estimated, not bounded: **postgres primary" in report
