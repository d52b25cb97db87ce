"""The waiting room's admission rate from a cost profile: one formula, used by the plan
report and by drops whose rate is ``auto`` (ADR 0026).

A hot SKU lives on one shard; the profile measured how many reserves/s one shard serving one
hot SKU reached (``hot_shard.reserves_per_s``). The waiting room should feed it no more than
that ceiling x the target utilisation. An admitted fan costs the shard
:data:`SHARD_CALLS_PER_FAN` calls on the drop's SKU: the add (a reserve) and the checkout (the
commit of that reservation). A fan who changes the quantity or adds twice costs more, one who
never checks out less; the pass lifetime spreads those calls, so the estimate holds on
average, and an operator who knows the crowd better sets the rate by hand.
"""

from __future__ import annotations

from matchday.capacity.profile import Profile

SHARD_CALLS_PER_FAN = 2.0


def admission_adds_per_s(ceiling_per_s: float, utilisation: float) -> float:
    """Adds/s one hot SKU's shard should be fed: its measured ceiling at the utilisation."""
    return ceiling_per_s * utilisation


def admission_fans_per_s(
    profile: Profile, utilisation: float, calls_per_fan: float = SHARD_CALLS_PER_FAN
) -> float:
    """Fans/s the waiting room should admit to one hot SKU."""
    return admission_adds_per_s(profile.hot_shard.reserves_per_s, utilisation) / calls_per_fan


def provenance(profile: Profile, utilisation: float, name: str) -> str:
    """How :func:`admission_fans_per_s` got its number, for ``drops show`` and the audit."""
    ceiling = profile.hot_shard.reserves_per_s
    return (
        f"auto: profile {name} measured {profile.measured_at}: hot shard {ceiling:,.0f}"
        f" reserves/s x {utilisation:.0%} / {SHARD_CALLS_PER_FAN:g} shard calls per fan"
    )[:400]
