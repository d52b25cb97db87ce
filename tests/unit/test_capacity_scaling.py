"""Each class's cost at the rate its processes take, from its two measured rates (ADR 0023).

Expected numbers are worked out beside each assertion from ``capacity_cases``' round costs.
"""

from __future__ import annotations

import json
import math

import pytest

from matchday.capacity import classes as k
from matchday.capacity.plan import at_saturation, make_plan
from matchday.capacity.plan_model import Node, Options
from matchday.capacity.profile import ClassCost, ProfileError, parse_profile
from matchday.capacity.report import markdown
from matchday.capacity.scaling import (
    class_factor,
    exponent,
    held,
    rate_factors,
    role_rates,
    two_rate_classes,
)
from tests.unit.capacity_cases import profile, profile_data, two_rate_profile, with_high
from tests.unit.test_capacity_model import hand_demand

OPTS = Options(Node(4, 8), 0.5)


def test_the_exponent_is_the_power_law_through_both_points() -> None:
    # 20/s -> 50/s, 500 -> 320 us: 0.64 = 2.5^b.
    assert exponent(20, 500, 50, 320) == pytest.approx(math.log(0.64) / math.log(2.5))
    assert exponent(20, 100, 50, 150) == pytest.approx(math.log(1.5) / math.log(2.5))  # > 0
    assert exponent(20, 100, 50, 100) == 0
    # Falling faster than 1/rate would mean less CPU for more work: held at -1.
    assert exponent(20, 500, 50, 100) == -1


@pytest.mark.parametrize(
    ("points", "why"),
    [((20, 0, 50, 100), "no light cost"), ((20, 100, 50, 0), "no high cost"),
     ((20, 100, 24, 90), "rates 1.2x apart: noise"), ((20, 100, 10, 90), "high below low")],
)  # fmt: skip
def test_points_without_a_trend_give_none(points: tuple[float, ...], why: str) -> None:
    assert exponent(*points) is None, why


def test_the_factor_is_held_at_both_measured_rates() -> None:
    b = math.log(0.64) / math.log(2.5)
    assert held(20, 50, b, 5) == 1.0  # below the light rate: the light cost
    assert held(20, 50, b, 20) == 1.0
    # Half-way in log terms (sqrt(20 x 50)): sqrt(0.64).
    assert held(20, 50, b, math.sqrt(20 * 50)) == pytest.approx(0.8)
    assert held(20, 50, b, 50) == pytest.approx(0.64)
    assert held(20, 50, b, 5000) == pytest.approx(0.64)  # not extrapolated
    # A cost that rose with the rate holds at its high ratio too.
    up = math.log(1.5) / math.log(2.5)
    assert held(20, 50, up, 1000) == pytest.approx(1.5)


def test_a_class_factor_uses_its_own_two_points_per_role() -> None:
    add = two_rate_profile().classes[k.ADD]
    assert class_factor(add, "replica:shop", 50) == pytest.approx(0.64)
    assert class_factor(add, "haproxy", 50) == pytest.approx(1.5)
    assert class_factor(add, "postgres", 50) == 1.0  # 300 us at both rates
    # The catalog's x0.2 at 2.5x the rate is steeper than 1/rate: 1/2.5 at most.
    browse = two_rate_profile().classes[k.BROWSE]
    assert class_factor(browse, "replica:catalog", 50) == pytest.approx(0.4)
    # A role the high phase saw under a clock tick, or a class without a high point: 1.
    data = profile_data()
    with_high(data, k.ADD, 50.0, {"haproxy": 150.0})
    only = ClassCost.model_validate(data["classes"][k.ADD])
    assert class_factor(only, "replica:shop", 50) == 1.0
    assert class_factor(profile().classes[k.ADD], "haproxy", 50) == 1.0


def test_a_role_takes_every_class_that_reaches_it_together() -> None:
    rates = hand_demand().at_peak()  # browse 3,750/s; session, add, checkout 625/s
    seen = role_rates(two_rate_profile(), rates)
    assert seen["haproxy"] == pytest.approx(5625)
    assert seen["replica:shop"] == pytest.approx(1250)  # sessions and adds
    assert seen["replica:catalog"] == pytest.approx(3750)


def test_a_plan_scales_every_role_but_the_batching_ones_by_its_two_rates() -> None:
    p = make_plan(two_rate_profile(), hand_demand(), OPTS)
    base = make_plan(profile(), hand_demand(), OPTS)
    # Each role takes well past 50/s: every factor holds at the high point.
    # catalog 3,750 x 400 us x 0.4 = 0.6 core (1.5 at the light cost).
    assert p.cores["replica:catalog"] == pytest.approx(0.6)
    # shop 625 x (300 + 500) us x 0.64 = 0.32 core (0.5).
    assert p.cores["replica:shop"] == pytest.approx(0.32)
    # The ingress, dearer at the higher rate: 5,625 x 100 us x 1.5.
    assert p.cores[k.INGRESS] == pytest.approx(0.84375)
    # Unchanged: orders and PostgreSQL cost the same at both rates; the shards and the
    # publisher keep their batching (none in this profile's hot phase).
    for comp in ("replica:orders", k.POSTGRES, k.SHARDS, k.PUBLISHER):
        assert p.cores[comp] == pytest.approx(base.cores[comp]), comp
    factors = rate_factors(two_rate_profile(), hand_demand().at_peak())
    assert k.SHARDS not in factors and "ray:publisher" not in factors
    assert set(factors["replica:shop"]) == {k.SESSION, k.ADD}


def test_a_version_1_profile_loads_and_plans_exactly_as_before() -> None:
    old = parse_profile(json.dumps(profile_data(version=1)))
    assert two_rate_classes(old) == ()
    assert rate_factors(old, hand_demand().at_peak()) == {}
    p, q = make_plan(old, hand_demand(), OPTS), make_plan(profile(), hand_demand(), OPTS)
    assert p.cores == q.cores and p.nodes == q.nodes and p.limits == q.limits
    assert p.cores["replica:shop"] == pytest.approx(0.5)  # 625 x 800 us, as by hand


def test_a_negative_cost_at_the_high_rate_is_refused_by_name() -> None:
    data = profile_data()
    with_high(data, k.ADD, 50.0, {"haproxy": -1.0})
    with pytest.raises(ProfileError, match=r"classes\.add_to_cart\.high\.cpu_us"):
        parse_profile(json.dumps(data))


def test_the_report_says_which_roles_and_classes_got_a_rate_dependent_cost() -> None:
    prof = two_rate_profile()
    text = markdown(make_plan(prof, hand_demand(), OPTS), prof, "test")
    assert "measured at two rates: 11 of 11 classes" in text
    assert "| replica:shop | 1,250 | add_to_cart x0.64, session x0.64 |" in text
    assert "| haproxy | 5,625 |" in text and "browse x1.5" in text
    old = profile()
    text = markdown(make_plan(old, hand_demand(), OPTS), old, "test")
    assert "one rate per class" in text


def test_the_saturation_plan_converges_with_costs_that_move_with_the_load() -> None:
    # One node: the plan is re-made at its saturation load, where the factors are taken.
    opts = Options(Node(4, 8), 0.5, fixed_nodes=1)
    at = at_saturation(two_rate_profile(), hand_demand(), opts)
    assert at.first.headroom == pytest.approx(1.0, abs=0.01)
