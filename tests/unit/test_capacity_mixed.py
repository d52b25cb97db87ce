"""The plan takes a role's cost from the scenario's mix measured together (profile version 3).

Expected numbers are worked out beside each assertion from ``capacity_cases``' round costs
and its hand mix (browse 3,750/s; session, add and checkout 625/s each: 5,625/s).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from matchday.capacity import classes as k
from matchday.capacity.mixed import correction, mixed_roles
from matchday.capacity.plan import at_saturation, make_plan
from matchday.capacity.plan_model import Node, Options
from matchday.capacity.profile import ProfileError, parse_profile
from matchday.capacity.report import markdown
from tests.unit.capacity_cases import (
    HAND_SHARES,
    MIX_LOW,
    mixed_profile,
    profile,
    profile_data,
    with_mix,
)
from tests.unit.test_capacity_model import hand_demand

OPTS = Options(Node(4, 8), 0.5)


def test_the_mix_decides_every_role_it_saw_but_the_batching_ones() -> None:
    p = make_plan(mixed_profile(), hand_demand(), OPTS)
    base = make_plan(profile(), hand_demand(), OPTS)
    # 5,625/s is past the mix's 50/s: each role held at its high point; the plan's mix is
    # the measured one, so no correction.
    assert p.cores[k.INGRESS] == pytest.approx(5625 * 150e-6)  # 0.84 (classes: 0.56)
    assert p.cores["replica:shop"] == pytest.approx(5625 * 200e-6 * 0.8)  # 0.9 (0.5)
    assert p.cores["replica:catalog"] == pytest.approx(5625 * 400e-6)  # 2.25 (1.5)
    assert p.cores[k.POSTGRES] == pytest.approx(5625 * 300e-6 * 1.5)  # 2.53 (0.9)
    # Ray: the GCS as the mix saw it, the raylet (which the mix did not see) from its class.
    assert p.cores[k.RAY] == pytest.approx(5625 * 30e-6 + 625 * 50e-6)
    # The shards and the publisher follow their batching, as without the mix; so do the
    # roles the mix did not see (orders, the payments deployment).
    for comp in (k.SHARDS, k.PUBLISHER, "replica:orders", "replica:orders/Payments"):
        assert p.cores[comp] == pytest.approx(base.cores[comp]), comp
    assert p.mixed is not None and p.classes_only == base.cores
    # Replicas are sized from the mix's cores: catalog 2.25 at 50% -> 5.
    catalog = next(d for d in p.deployments if d.role == "replica:catalog")
    assert catalog.replicas_at_peak == 5


def test_between_its_two_rates_the_mix_follows_the_power_law_and_below_them_its_light_cost(
) -> None:  # fmt: skip
    prof = mixed_profile()
    mixed = prof.mixes["test"]
    rates = {c: 20.0 * s for c, s in HAND_SHARES.items()}  # the light rate: as measured
    got = mixed_roles(prof, mixed, rates)
    assert got["replica:shop"] == pytest.approx(20 * 200e-6)
    assert got["postgres"] == pytest.approx(20 * 300e-6)
    assert "shards" not in got and "ray:publisher" not in got
    mid = (20 * 50) ** 0.5  # half-way in log terms: sqrt(0.8), sqrt(1.5)
    got = mixed_roles(prof, mixed, {c: mid * s for c, s in HAND_SHARES.items()})
    assert got["replica:shop"] == pytest.approx(mid * 200e-6 * 0.8**0.5)
    assert got["postgres"] == pytest.approx(mid * 300e-6 * 1.5**0.5)
    low = mixed_roles(prof, mixed, {c: 2.0 * s for c, s in HAND_SHARES.items()})
    assert low["haproxy"] == pytest.approx(2 * 150e-6)


def test_a_plan_of_another_mix_corrects_by_the_classes_costs() -> None:
    prof = mixed_profile()
    mixed = prof.mixes["test"]
    # 625 votes/s more than the mix measured: 6,250/s. The shop's replica takes sessions and
    # adds: (300 + 500) x 625 per 6,250 = 80 us a request against 88.9 measured: x0.9.
    plan_shares = {**{c: s * 5625 / 6250 for c, s in HAND_SHARES.items()}, k.POLL_VOTE: 0.1}
    assert correction(prof, mixed, plan_shares, "replica:shop") == pytest.approx(0.9)
    assert correction(prof, mixed, plan_shares, "haproxy") == pytest.approx(1.0)  # all 100 us
    # A role no class reaches is the mix's own; one only the plan's classes reach, the classes'.
    assert correction(prof, mixed, plan_shares, "ray:gcs") == 1.0
    assert correction(prof, mixed, plan_shares, "replica:polls") is None
    d = replace(hand_demand(), extra_at_peak={k.POLL_VOTE: 625.0})
    p, base = make_plan(prof, d, OPTS), make_plan(profile(), d, OPTS)
    assert p.cores["replica:shop"] == pytest.approx(6250 * 160e-6 * 0.9)
    assert p.cores["replica:polls"] == pytest.approx(base.cores["replica:polls"])


def test_without_a_mix_of_the_scenario_or_when_told_the_plan_sums_the_classes() -> None:
    base = make_plan(profile(), hand_demand(), OPTS)
    alone = make_plan(mixed_profile(), hand_demand(), replace(OPTS, mixed=False))
    assert alone.cores == base.cores and alone.limits == base.limits and alone.mixed is None
    other = make_plan(mixed_profile(), replace(hand_demand(), mix="steady"), OPTS)
    assert other.cores == base.cores and other.mixed is None


def test_older_profiles_load_without_mixes_and_plan_exactly_as_before() -> None:
    for version in (1, 2):
        old = parse_profile(json.dumps(profile_data(version=version)))
        assert old.mixes == {}
        p, q = make_plan(old, hand_demand(), OPTS), make_plan(profile(), hand_demand(), OPTS)
        assert p.cores == q.cores and p.nodes == q.nodes and p.limits == q.limits


def test_a_mixed_phase_in_an_older_version_or_with_bad_shares_is_refused() -> None:
    data = profile_data(version=2)
    with_mix(data, "steady", HAND_SHARES)
    with pytest.raises(ProfileError, match="version 2 but has mixed phases"):
        parse_profile(json.dumps(data))
    for shares, complaint in (({k.BROWSE: 0.5}, "sum to 1"), ({"teleport": 1.0}, "teleport")):
        data = profile_data()
        with_mix(data, "steady", shares)
        with pytest.raises(ProfileError, match=complaint):
            parse_profile(json.dumps(data))
    data = profile_data()
    with_mix(data, "steady", HAND_SHARES, low={**MIX_LOW, "haproxy": -1.0})
    with pytest.raises(ProfileError, match=r"mixes\.steady\.cost\.cpu_us"):
        parse_profile(json.dumps(data))


def test_a_mixed_profile_round_trips_and_a_one_rate_mix_keeps_its_light_cost() -> None:
    prof = mixed_profile()
    assert parse_profile(prof.to_json()) == prof
    data = profile_data()
    with_mix(data, "test", HAND_SHARES, low=MIX_LOW)  # no second rate
    one = parse_profile(json.dumps(data))
    assert one.mixes["test"].cost.high is None
    p = make_plan(one, hand_demand(), OPTS)
    assert p.cores["replica:shop"] == pytest.approx(5625 * 200e-6)


def test_the_report_sets_the_mix_beside_the_classes() -> None:
    prof = mixed_profile()
    text = markdown(make_plan(prof, hand_demand(), OPTS), prof, "test")
    assert "## Cost from the scenario's mix" in text
    assert "measured together (think x1, drop in stock) at 20.0 and 50.0/s" in text
    assert "| replica:shop | 0.900 | 0.500 | 1.80 |" in text
    text = markdown(make_plan(profile(), hand_demand(), OPTS), profile(), "test")
    assert "No mixed phase of this scenario" in text


def test_the_saturation_plan_converges_with_the_mix() -> None:
    at = at_saturation(mixed_profile(), hand_demand(), Options(Node(4, 8), 0.5, fixed_nodes=1))
    assert at.first.headroom == pytest.approx(1.0, abs=0.01)
