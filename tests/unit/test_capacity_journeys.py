"""The mixed phase's request mix is the planner's demand model, sent as coherent journeys."""

from __future__ import annotations

import pytest

from loadtests import mixes
from matchday.capacity import classes as k
from matchday.capacity.demand import (
    IN_STOCK,
    SOLD_OUT,
    WORST,
    per_user_rates,
    persona_iterations,
)
from matchday.capacity.journeys import counted, journeys, mix_shares, realise, shares_of
from matchday.capacity.profile import PlanInputError
from tests.unit.capacity_cases import BROWSER, BUYER, steady_mix

# Latencies like a 2-core stack's: a checkout is slow, so it weighs in a loop at think x0.1.
LATENCY = {c: 20.0 for c in k.CLASSES} | {k.CHECKOUT: 100.0}
CASES = [(name, state, think) for name in mixes.SCENARIOS for state in (IN_STOCK, SOLD_OUT)
         for think in (0.1, 1.0)]  # fmt: skip


def test_persona_iterations_are_each_personas_weight_share_of_its_loop_rate() -> None:
    # A browser loops every 2 s, a buyer every 4 s (no latency); weights 3:1.
    mix = steady_mix((BROWSER, 3), (BUYER, 1))
    got = persona_iterations(mix, {}, 1.0, IN_STOCK)
    assert got == {"Browser": pytest.approx(0.75 / 2), "Buyer": pytest.approx(0.25 / 4)}
    # The demand model's requests are those iterations' requests.
    rates, _, _ = per_user_rates(mix, {}, 1.0, IN_STOCK)
    assert rates[k.BROWSE] == pytest.approx(0.375) and rates[k.CHECKOUT] == pytest.approx(0.0625)
    assert mix_shares(mix, {}, 1.0, IN_STOCK) == {
        k.BROWSE: pytest.approx(0.375 / 0.5625),
        k.SESSION: pytest.approx(0.0625 / 0.5625),
        k.ADD: pytest.approx(0.0625 / 0.5625),
        k.CHECKOUT: pytest.approx(0.0625 / 0.5625),
    }


def test_a_journey_realises_fractional_counts_with_one_number_for_all_its_classes() -> None:
    counts = {k.SESSION: 1.0, k.CART: 1.0, k.ADD: 1.3, k.CHECKOUT: 0.2}
    assert realise(counts, 0.1) == (k.SESSION, k.CART, k.ADD, k.ADD, k.CHECKOUT)
    assert realise(counts, 0.25) == (k.SESSION, k.CART, k.ADD, k.ADD)
    assert realise(counts, 0.9) == (k.SESSION, k.CART, k.ADD)
    assert realise({k.BROWSE: 0.5}, 0.7) == ()


@pytest.mark.parametrize(("scenario", "state", "think"), CASES)
def test_the_journeys_send_the_demand_models_shares(
    scenario: str, state: str, think: float
) -> None:
    mix = mixes.load_mix(scenario)
    want = mix_shares(mix, LATENCY, think, state)
    assert sum(want.values()) == pytest.approx(1.0)
    rates, _, _ = per_user_rates(mix, LATENCY, think, state)
    assert want == {c: pytest.approx(r / sum(rates.values())) for c, r in rates.items() if r > 0}
    trips = journeys(mix, LATENCY, think, state, 3000)
    sent = counted(trips)
    assert 3000 <= sum(sent.values()) < 3000 + 10  # stops after the journey that gets there
    got = shares_of(sent)
    assert set(got) <= set(want)
    for c, share in want.items():
        assert got.get(c, 0.0) == pytest.approx(share, abs=0.01), c
    assert journeys(mix, LATENCY, think, state, 3000) == trips  # deterministic


@pytest.mark.parametrize(("scenario", "state", "think"), CASES)
def test_every_journey_has_what_its_requests_need_before_them(
    scenario: str, state: str, think: float
) -> None:
    needs = {k.CART: k.SESSION, k.ADD: k.CART, k.ADD_SOLD_OUT: k.CART, k.CART_VIEW: k.ADD,
             k.CHECKOUT: k.ADD}  # fmt: skip
    for trip in journeys(mixes.load_mix(scenario), LATENCY, think, state, 2000):
        assert trip, "an empty journey is left out"
        for i, c in enumerate(trip):
            if c in needs:
                assert needs[c] in trip[:i], trip
        assert trip.count(k.SESSION) <= 1 and trip.count(k.CHECKOUT) <= 1, trip


def test_a_mix_is_in_stock_or_sold_out_and_sends_something() -> None:
    mix = mixes.load_mix("steady")
    with pytest.raises(PlanInputError, match="in_stock or sold_out"):
        journeys(mix, LATENCY, 0.1, WORST, 100)
    with pytest.raises(PlanInputError, match="in_stock or sold_out"):
        mix_shares(mix, LATENCY, 0.1, WORST)
    with pytest.raises(PlanInputError, match="at least one request"):
        journeys(mix, LATENCY, 0.1, SOLD_OUT, 0)
