"""A plan for more fans never needs less of anything (property tests over every scenario)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from loadtests import mixes
from matchday.capacity.demand import SOLD_OUT, WORST, demand
from matchday.capacity.journeys import mix_shares
from matchday.capacity.plan import make_plan
from matchday.capacity.plan_model import Node, Options, Plan
from matchday.capacity.profile import Profile
from tests.unit.capacity_cases import profile, profile_data, two_rate_profile, with_mix

PROFILE = profile()
# Costs that fall, rise and fall too steeply with the rate (profile version 2).
TWO_RATES = two_rate_profile()
LATENCY = {c: cost.latency.mean_ms for c, cost in PROFILE.classes.items()}
MIXES = {name: mixes.load_mix(name) for name in mixes.SCENARIOS}


def _mixed() -> Profile:
    """Every scenario's mix measured together (version 3), as validate's steps run it."""
    data = profile_data()
    for name, mix in MIXES.items():
        with_mix(data, name, mix_shares(mix, LATENCY, 0.1, SOLD_OUT))
    return Profile.model_validate(data)


# Costs from each scenario's own mix, corrected where the plan's mix differs.
MIXED = _mixed()


def counts(p: Plan) -> dict[str, float]:
    """Everything a plan asks for, as numbers that must not shrink with more load."""
    out: dict[str, float] = {
        "ring shards": p.shards.ring,
        "dedicated shards": p.shards.dedicated,
        "pinned SKUs": len(p.shards.pins),
        "nodes at peak": p.nodes.at_peak,
        "nodes min": p.nodes.min,
        "nodes max": p.nodes.max,
        "node cores needed": p.nodes.cores_needed,
        "postgres primaries": p.stores.primaries_needed,
        "postgres commits/s": p.stores.pg_write_xacts_per_s,
        "postgres WAL": p.stores.pg_wal_mb_s,
        "redis commands/s": p.stores.redis_cmds_per_s,
    }
    for d in p.deployments:
        out[f"{d.role} at peak"] = d.replicas_at_peak
        out[f"{d.role} min"] = d.min_replicas
        out[f"{d.role} max"] = d.max_replicas
        out[f"{d.role} max ongoing"] = d.max_ongoing
    return out


@settings(max_examples=300, deadline=None)
@given(
    scenario=st.sampled_from(mixes.SCENARIOS),
    users=st.integers(min_value=1, max_value=2_000_000),
    cores=st.sampled_from([2, 4, 8, 16, 32, 64]),
    memory=st.sampled_from([8, 16, 32, 64, 256]),
    utilisation=st.sampled_from([0.5, 0.7, 0.9, 1.0]),
    think=st.sampled_from([0.1, 1.0, 2.0]),
    state=st.sampled_from([WORST, SOLD_OUT]),
    prof=st.sampled_from([PROFILE, TWO_RATES, MIXED]),
)
def test_a_plan_for_twice_the_users_needs_at_least_as_many_of_everything(
    scenario: str, users: int, cores: int, memory: int, utilisation: float, think: float,
    state: str, prof: Profile,
) -> None:  # fmt: skip
    opts = Options(node=Node(cores, memory), utilisation=utilisation)
    mix = MIXES[scenario]
    assume(users > mix.fixed_users)
    small = make_plan(prof, demand(mix, users, LATENCY, think=think, state=state), opts)  # type: ignore[arg-type]
    big = make_plan(prof, demand(mix, 2 * users, LATENCY, think=think, state=state), opts)  # type: ignore[arg-type]
    before, after = counts(small), counts(big)
    shrunk = {k: (v, after.get(k, 0)) for k, v in before.items() if after.get(k, 0) < v - 1e-9}
    assert not shrunk, shrunk
    assert {s for s, _ in small.shards.pins} <= {s for s, _ in big.shards.pins}
    assert big.first.saturates_at_users >= 0


def test_twice_the_users_is_twice_the_requests() -> None:
    mix = MIXES["kickoff"]
    one = demand(mix, 10_000, LATENCY).at_peak()
    two = demand(mix, 20_000, LATENCY).at_peak()
    # The admin is one fixed user: 9,999 weighted users, then 19,999.
    for c, rate in one.items():
        assert two[c] == pytest.approx(rate * 19_999 / 9_999)
