"""A role's cost per request from the scenario's own mix, measured together (ADR 0023).

The class phases measure each class alone; a scenario runs them together, in one replica's
event loop, one PostgreSQL, one Redis, on cores Locust shares. ``measure``'s mixed phase
runs the scenario's mix itself at two total rates (``Profile.mixes``). For a scenario that
has one, the plan takes each role's cost per request of the mix from it, instead of summing
the classes' costs:

    cores(role) = R x c_mix(role) x (R / r_low)^b x correction(role)

where R is the plan's requests/s (all classes), c_mix the mixed phase's cost per request at
its light rate r_low, and the power law through its two rates is ``scaling.class_factor``'s
(held between the two measured rates, b no steeper than -1). ``correction`` accounts for a
plan whose mix differs from the measured one (another think scale or stock state, ``--add``):
the ratio of the class costs weighted by the plan's shares to the same weighted by the
measured shares, 1 when the mixes are the same.

Left to the classes: the shards and the publisher (their cost follows the calls one process
takes, which the ring and the pins decide, ``plan.batch_factor``); a role the mixed phase did
not see above a clock tick; a role the plan's mix reaches through classes the measured mix
did not have.
"""

from __future__ import annotations

from collections.abc import Mapping

from matchday.capacity.classes import component
from matchday.capacity.journeys import shares_of
from matchday.capacity.profile import MixedCost, Profile
from matchday.capacity.scaling import BATCHING_ROLES, class_factor


def weighted_us(profile: Profile, shares: Mapping[str, float], role: str) -> float:
    """The classes' light cost of ``role`` per request of a mix of ``shares``."""
    return sum(s * profile.classes[c].cpu_us.get(role, 0.0) for c, s in shares.items())


def correction(
    profile: Profile, mixed: MixedCost, shares: Mapping[str, float], role: str
) -> float | None:
    """How much dearer ``role`` is per request of the plan's mix (``shares``) than of the
    measured one, by the classes' costs; None when the classes cannot tell (the measured
    mix's classes never reach the role, the plan's do)."""
    measured = weighted_us(profile, mixed.shares, role)
    planned = weighted_us(profile, shares, role)
    if measured > 0:
        return planned / measured
    return 1.0 if planned <= 0 else None


def mixed_roles(profile: Profile, mixed: MixedCost, rates: Mapping[str, float]) -> dict[str, float]:
    """Role -> cores at ``rates`` (requests/s per class) for the roles the mix decides."""
    total = sum(rates.values())
    if total <= 0:
        return {}
    shares = shares_of(rates)
    out: dict[str, float] = {}
    for role, us in mixed.cost.cpu_us.items():
        if role in BATCHING_ROLES or component(role) is None:
            continue
        f = correction(profile, mixed, shares, role)
        if f is not None:
            out[role] = total * us * class_factor(mixed.cost, role, total) * f / 1e6
    return out


def report_lines(
    mixed: MixedCost | None,
    with_mix: Mapping[str, float],
    classes_only: Mapping[str, float],
    requests_per_s: float,
) -> list[str]:
    """The plan's section on the mixed phase: cores per component at the peak, from the mix
    and from the classes alone."""
    if mixed is None:
        return [
            "No mixed phase of this scenario in the profile: every role's cost is the sum of"
            " its classes' costs, measured one class at a time."
        ]
    c = mixed.cost
    high = f" and {c.high.rate_per_s:,.1f}/s" if c.high is not None else " (one rate)"
    out = [
        f"The scenario's own mix was measured together (think x{mixed.think:g}, drop"
        f" {mixed.stock.replace('_', ' ')}) at {c.rate_per_s:,.1f}{high} requests/s:"
        f" {c.shop_cpu_us():,.0f} us of the shop's CPU per request at the light rate. Every"
        f" role but the shards and the publisher takes its cost from it at"
        f" {requests_per_s:,.0f} requests/s (ADR 0023).",
        "",
        "| component | cores, from the mix | cores, from the classes alone | x |",
        "| --- | --- | --- | --- |",
    ]
    for comp in sorted(set(with_mix) | set(classes_only)):
        a, b = with_mix.get(comp, 0.0), classes_only.get(comp, 0.0)
        ratio = f"{a / b:.2f}" if b > 0 else "-"
        out.append(f"| {comp} | {a:.3f} | {b:.3f} | {ratio} |")
    return out


def component_of_roles(cores: Mapping[str, float]) -> dict[str, float]:
    """Role -> cores, summed per component (roles of no component left out)."""
    out: dict[str, float] = {}
    for role, v in cores.items():
        comp = component(role)
        if comp is not None:
            out[comp] = out.get(comp, 0.0) + v
    return out
