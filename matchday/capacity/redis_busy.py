"""Redis's cost per command at the rate a plan asks of it, from the busy-Redis phase.

The class phases measure Redis at a few hundred commands/s, one command per wakeup of its
event loop: 28-190 us of its CPU per command (docs/capacity.md, 2026-12-03). Busy, one
wakeup serves many clients, and ``measure``'s busy-Redis phase (``Profile.redis_busy``)
reads what a command then costs at a few concurrency levels. As ``plan.batch_factor`` does
for the shards, the plan scales the classes' light cost of the Redis role by

    factor(R) = c(R) / c_light

where R is the commands/s the plan sends Redis, c_light the light phases' cost per command
pooled over every phase (Redis CPU over commands, at the most commands/s any of them sent,
r_light), and c(R) the power law through (r_light, c_light) and each busy level above
r_light, segment by segment:

- R at or below r_light: 1 (the light phases measured that rate themselves).
- Past the busiest level: its cost held. Redis may well get cheaper still, so a saturation
  point found there leans low; past the busy phase's ceiling (one core at that cost) the
  plan marks it as a bound, as it does for every Redis without a busy phase.
- No segment falls faster than 1/rate (Redis does not use less CPU for more commands), so
  a plan for more users never needs less of Redis.

The factor replaces the two-rate scaling for Redis (both measured at 20-50 requests/s, the
same wakeup-per-command regime) and the mixed phase's Redis cost: applying both would count
the shared wakeups twice.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

from matchday.capacity import classes as k
from matchday.capacity.profile import ClassCost, Profile, RatePoint

# The steepest the cost per command may fall with the rate: as 1/rate (flat cores).
STEEPEST = -1.0


def _phases(profile: Profile) -> list[ClassCost | RatePoint]:
    out: list[ClassCost | RatePoint] = []
    for cost in [*profile.classes.values(), *(m.cost for m in profile.mixes.values())]:
        out.append(cost)
        if cost.high is not None:
            out.append(cost.high)
    return out


def fastest_phase(profile: Profile) -> float:
    """The most commands/s any phase of ``profile`` sent Redis (classes and mixes, both
    rates)."""
    return max((x.redis_cmds * x.rate_per_s for x in _phases(profile)), default=0.0)


def light_point(profile: Profile) -> tuple[float, float]:
    """(``fastest_phase``, Redis CPU us per command pooled over every phase); (0, 0) when
    no phase charged Redis any CPU."""
    phases = _phases(profile)
    cmds = sum(x.redis_cmds * x.rate_per_s for x in phases)
    us = sum(x.cpu_us.get(k.REDIS, 0.0) * x.rate_per_s for x in phases)
    return (fastest_phase(profile), us / cmds) if cmds > 0 and us > 0 else (0.0, 0.0)


def curve(profile: Profile) -> list[tuple[float, float]]:
    """(commands/s, us per command) from the light point through the busy levels above its
    rate, each segment no steeper than 1/rate; empty without a busy phase or a light cost."""
    busy = profile.redis_busy
    r0, c0 = light_point(profile)
    if busy is None or c0 <= 0:
        return []
    out = [(r0, c0)]
    for level in sorted(busy.levels, key=lambda x: x.cmds_per_s):
        r_prev, c_prev = out[-1]
        r = level.cmds_per_s
        if r <= r_prev:
            continue
        b = max(STEEPEST, math.log(level.cpu_us_per_cmd / c_prev) / math.log(r / r_prev))
        out.append((r, c_prev * (r / r_prev) ** b))
    return out


def cost_factor(profile: Profile, cmds_per_s: float) -> float:
    """What the light cost of Redis per command is scaled by at ``cmds_per_s``; 1.0 without
    a busy phase or at most the light rate."""
    points = curve(profile)
    if len(points) < 2 or cmds_per_s <= points[0][0]:
        return 1.0
    c0 = points[0][1]
    for (r_a, c_a), (r_b, c_b) in itertools.pairwise(points):
        if cmds_per_s <= r_b:
            b = math.log(c_b / c_a) / math.log(r_b / r_a)
            return float(c_a * (cmds_per_s / r_a) ** b / c0)
    return points[-1][1] / c0


def commands_per_s(profile: Profile, rates: Mapping[str, float]) -> float:
    """Redis commands/s the classes' ``rates`` send (the light phases' counts)."""
    return sum(r * profile.classes[c].redis_cmds for c, r in rates.items())
