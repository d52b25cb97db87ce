"""A request's cost at the load its processes take, from each class's two measured rates.

``measure`` runs every class twice (ADR 0023): at ``--rate`` (the cost ``ClassCost.cpu_us``
keeps) and again at ``--rate-high`` (``ClassCost.high``). Per process role the two costs
make a power law, c(x) = c_low x (x / r_low)^b, through (r_low, c_low) and (r_high, c_high),
and the plan scales the light cost by c(x) / c_low, where x is the rate the role's processes
take at the plan's load: every class that reaches the role together (a shop replica sees
sessions, carts and adds at once; its event loop and Serve's hand-off do not care which).
The measured stack's processes split x as they split a phase's rate, so the per-process
rates' ratio is the rates' ratio and x is a total requests/s.

- Below r_low the factor is 1 (the light cost), as ``batch_factor`` does.
- Past r_high it holds at the high point: nothing was measured there, and a cost that rose
  with the rate (contention on the measuring machine) would compound without bound if the
  law were extrapolated.
- A higher cost at the higher rate is taken as real (factors above 1): over-predicted
  throughput is what contention the light phase cannot see looks like.
- b is never steeper than -1: a process does not use less CPU for more work, so the cost per
  request falls at most as 1/rate (and a plan for more users never needs fewer cores).
  Between the points the factor therefore never falls below the high point's ratio.
- Two rates closer than ``MIN_SPREAD`` apart, or a role one of them did not see above one
  clock tick, give no trend: factor 1.

The shards and the event publisher keep ``plan.batch_factor`` instead: its two points (the
add phase and the hot-shard phase, 40 to ~1,400 calls/s) span far more than these two, and
its rate is the engine calls one shard takes, which the ring and pins decide. Applying both
would count their group commit twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from matchday.capacity import classes as k
from matchday.capacity.profile import ClassCost, Profile

# Two rates closer than this ratio differ by the measurement's noise, not by a trend.
MIN_SPREAD = 1.25
# The steepest the cost per request may fall with the rate: as 1/rate (flat cores).
STEEPEST = -1.0
# Roles sized by ``plan.batch_factor`` (group commit), not by the two rates.
BATCHING_ROLES = (k.SHARDS, "ray:publisher")


def exponent(r_low: float, c_low: float, r_high: float, c_high: float) -> float | None:
    """b of the power law through both points, no steeper than ``STEEPEST``; None when the
    points give no trend (a cost missing, or rates too close)."""
    if c_low <= 0 or c_high <= 0 or r_low <= 0 or r_high < r_low * MIN_SPREAD:
        return None
    return max(STEEPEST, math.log(c_high / c_low) / math.log(r_high / r_low))


def held(r_low: float, r_high: float, b: float, rate: float) -> float:
    """(rate / r_low)^b, the rate held between the two measured ones."""
    x = min(max(rate, r_low), r_high)
    return float((x / r_low) ** b)


def class_factor(cost: ClassCost, role: str, rate: float) -> float:
    """What ``role``'s light cost for one request of the class is scaled by, when the role's
    processes take ``rate`` requests/s (1.0 without a second measured rate)."""
    if cost.high is None:
        return 1.0
    r_low, r_high = cost.rate_per_s, cost.high.rate_per_s
    b = exponent(r_low, cost.cpu_us.get(role, 0.0), r_high, cost.high.cpu_us.get(role, 0.0))
    return 1.0 if b is None else held(r_low, r_high, b, rate)


def role_rates(profile: Profile, rates: Mapping[str, float]) -> dict[str, float]:
    """Requests/s each role takes: every class whose light cost reaches it, together."""
    out: dict[str, float] = {}
    for cls, rate in rates.items():
        for role in profile.classes[cls].cpu_us:
            out[role] = out.get(role, 0.0) + rate
    return out


def rate_factors(profile: Profile, rates: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """role -> class -> factor, for every role but the batching ones and every class asked
    for, where it is not 1."""
    seen = role_rates(profile, rates)
    out: dict[str, dict[str, float]] = {}
    for cls, rate in rates.items():
        if rate <= 0:  # a class nobody asks for costs nothing at any factor
            continue
        cost = profile.classes[cls]
        for role in cost.cpu_us:
            if role in BATCHING_ROLES:
                continue
            f = class_factor(cost, role, seen[role])
            if f != 1.0:
                out.setdefault(role, {})[cls] = f
    return out


def two_rate_classes(profile: Profile) -> tuple[str, ...]:
    """The classes measured at a second rate (none in a version 1 profile)."""
    return tuple(c for c, cost in profile.classes.items() if cost.high is not None)
