"""A scenario's own request mix, as ``measure``'s mixed phase sends it (ADR 0023).

The mix is the planner's demand model, not a second reading of the locustfiles: each
persona loops at ``demand.persona_iterations`` (its weight's share x 1 / (think + its
requests' latency)), and one iteration makes its persona's average requests per class
(``loadtests/mixes.py``). So the shares of the mixed phase's requests are the shares of
``demand.per_user_rates`` for the same latencies, think scale and stock state, and the plan
of that scenario asks for what was measured.

The phase sends iterations ("journeys") rather than loose requests, because a fan's requests
depend on each other: a cart needs the session, an add the cart, a checkout the add. A
journey's requests run in ``CLASSES`` order (which is that order). Fractional counts (a
buyer's second add three times in ten) are realised by one number per journey, u, spread
evenly over [0, 1) (the golden-ratio sequence): class c gets floor(n_c) requests, plus one
when u < frac(n_c). One u for all of a journey's classes keeps them consistent: a checkout
made 2 times in 10 happens only in journeys that also made the add made 2.6 times in 10.
Personas take turns by their iteration shares (smooth weighted round robin). Everything is
deterministic: the same mix gives the same journeys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from matchday.capacity.classes import CLASSES
from matchday.capacity.demand import (
    IN_STOCK,
    SOLD_OUT,
    Mix,
    per_user_rates,
    persona_iterations,
)
from matchday.capacity.profile import PlanInputError

# The golden ratio's fractional part: u_j = frac(j x GOLDEN) covers [0, 1) evenly.
GOLDEN = (math.sqrt(5) - 1) / 2
Journey = tuple[str, ...]


def _check_state(state: str) -> None:
    if state not in (IN_STOCK, SOLD_OUT):
        raise PlanInputError(
            f"a mixed phase runs the drop {IN_STOCK} or {SOLD_OUT}, not {state!r}:"
            " one iteration is one or the other"
        )


def mix_shares(
    mix: Mix, latency_ms: Mapping[str, float], think: float, state: str
) -> dict[str, float]:
    """Each class's share of the scenario's requests (summing to 1), as the demand model
    has it; classes the mix never asks for are left out."""
    _check_state(state)
    rates, _, _ = per_user_rates(mix, latency_ms, think, state)
    total = sum(rates.values())
    if total <= 0:
        raise PlanInputError(f"scenario {mix.name!r} makes no requests")
    return {c: r / total for c, r in rates.items() if r > 0}


def shares_of(rates: Mapping[str, float]) -> dict[str, float]:
    """Requests/s (or counts) per class -> each class's share of them (empty if none)."""
    total = sum(rates.values())
    return {c: r / total for c, r in rates.items() if r > 0} if total > 0 else {}


def realise(counts: Mapping[str, float], u: float) -> Journey:
    """One iteration of average ``counts`` per class, for this journey's ``u`` in [0, 1)."""
    out: list[str] = []
    for c in CLASSES:
        n = counts.get(c, 0.0)
        whole = math.floor(n)
        out += [c] * (whole + (1 if u < n - whole else 0))
    return tuple(out)


def journeys(
    mix: Mix, latency_ms: Mapping[str, float], think: float, state: str, requests: int
) -> list[Journey]:
    """Iterations of the scenario's personas, in turn by their iteration shares, until they
    make at least ``requests`` requests (an iteration that realises none is left out)."""
    _check_state(state)
    if requests < 1:
        raise PlanInputError("a mixed phase sends at least one request")
    rates = persona_iterations(mix, latency_ms, think, state)
    total = sum(rates.values())
    share = {p: r / total for p, r in rates.items() if r > 0}
    credit = dict.fromkeys(share, 0.0)
    done = dict.fromkeys(share, 0)
    out: list[Journey] = []
    sent = 0
    while sent < requests:
        for p in share:
            credit[p] += share[p]
        name = max(share, key=lambda p: credit[p])  # ties: the first in the mix's order
        credit[name] -= 1.0
        persona = mix.personas[name]
        counts = persona.sold_out if state == SOLD_OUT else persona.in_stock
        done[name] += 1
        journey = realise(counts, (done[name] * GOLDEN) % 1.0)
        if journey:
            out.append(journey)
            sent += len(journey)
    return out


def counted(trips: Sequence[Journey]) -> dict[str, int]:
    """Requests per class in ``trips``, in ``CLASSES`` order."""
    out = dict.fromkeys(CLASSES, 0)
    for journey in trips:
        for c in journey:
            out[c] += 1
    return {c: n for c, n in out.items() if n > 0}
