"""From a stage table and a persona mix to requests per second per class over the match.

Locust's model, in arithmetic: a stage table gives the users over time (each stage ramps
from the last stage's count to its own at a fixed spawn rate, as ``loadtests/shapes.py`` tells
Locust); users are split between personas by weight (``fixed_count`` users first); each user
loops "one iteration, then think", so a persona's user makes

    requests of class c per second = count_c / (mean think + sum of its requests' latency)

where ``count_c`` is how many class-c requests one iteration makes on average (from the
persona's code, ``loadtests/mixes.py``) and latency comes from the profile. An iteration
differs while the limited drop is in stock and once it is sold out (a bot that gets nothing
pays for nothing, and comes back sooner); restocks flip it back during a sale, so the plan
sizes each class for the worse of the two (``WORST``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from matchday.capacity.classes import CLASSES
from matchday.capacity.profile import PlanInputError

StockState = Literal["in_stock", "sold_out", "worst"]
IN_STOCK: StockState = "in_stock"
SOLD_OUT: StockState = "sold_out"
WORST: StockState = "worst"
# Charts and the curve use this step; Locust's shape ticks once a second too.
STEP_S = 1.0
# A table-less scenario (steady.py) is held at its users for this long in the charts.
STEADY_S = 60.0


class StageLike(Protocol):
    @property
    def until_s(self) -> float: ...
    @property
    def users(self) -> float: ...  # a fraction of the peak
    @property
    def ramp_s(self) -> float: ...


@dataclass(frozen=True)
class Persona:
    """One Locust persona's loop, on average: what one iteration requests, and its pause."""

    name: str
    wait_s: tuple[float, float]  # Locust ``between(low, high)`` before the think scale
    in_stock: Mapping[str, float]  # class -> requests per iteration
    sold_out: Mapping[str, float]
    hot_adds: tuple[float, float] = (0.0, 0.0)  # add attempts on the drop (in stock, sold out)
    hot_units: float = 0.0  # units of the drop taken per iteration while it lasts


@dataclass(frozen=True)
class Mix:
    """A scenario: persona weights, users that are not weighted, and its stage table."""

    name: str
    weights: Mapping[str, float]
    personas: Mapping[str, Persona]
    stages: tuple[StageLike, ...] = ()
    fixed_users: int = 0  # Locust's fixed_count users (the admin): spawned first, no load here

    def __post_init__(self) -> None:
        unknown = [p for p in self.weights if p not in self.personas]
        if unknown or not self.weights or sum(self.weights.values()) <= 0:
            raise PlanInputError(f"scenario {self.name!r} has no usable persona weights")


@dataclass(frozen=True)
class Demand:
    """Requests per second per class over the match, for a given peak."""

    mix: str
    peak_users: int
    state: str
    times_s: tuple[float, ...]
    users: tuple[float, ...]
    per_user: Mapping[str, float]  # class -> requests/s per weighted user
    hot_adds_per_user: float  # add attempts on the drop, per weighted user per second
    hot_units_per_user: float
    think: float = 1.0
    extra_at_peak: Mapping[str, float] = field(default_factory=dict)  # --add CLASS=RATE

    @property
    def peak(self) -> float:
        return max(self.users) if self.users else 0.0

    @property
    def baseline(self) -> float:
        """The fewest users while the match runs (what autoscaling keeps at least)."""
        return min(self.users) if self.users else 0.0

    def rates(self, users: float) -> dict[str, float]:
        """Requests/s per class with ``users`` weighted users on the site."""
        share = users / self.peak if self.peak else 0.0
        return {
            c: self.per_user.get(c, 0.0) * users + self.extra_at_peak.get(c, 0.0) * share
            for c in CLASSES
        }

    def at_peak(self) -> dict[str, float]:
        return self.rates(self.peak)

    def at_baseline(self) -> dict[str, float]:
        return self.rates(self.baseline)

    def series(self) -> dict[str, list[float]]:
        """Per class, requests/s at each of ``times_s`` (for the demand chart)."""
        per_t = [self.rates(u) for u in self.users]
        return {c: [r[c] for r in per_t] for c in CLASSES}

    def hot_adds_at_peak(self) -> float:
        return self.hot_adds_per_user * self.peak


def stage_targets(stages: Sequence[StageLike], peak: int) -> list[tuple[float, int, float]]:
    """(until_s, users, spawn rate per second) of each stage, as ``shapes.users_at`` tells
    Locust: a stage's users are its fraction of the peak (at least one), reached from the
    previous stage's at ``|difference| / ramp_s`` users per second (at least one)."""
    out, before = [], 0
    for stage in stages:
        users = max(1, round(stage.users * peak))
        rate = max(1.0, abs(users - before) / max(stage.ramp_s, 0.1))
        out.append((float(stage.until_s), users, rate))
        before = users
    return out


def users_curve(
    stages: Sequence[StageLike], peak: int, step_s: float = STEP_S
) -> tuple[list[float], list[float]]:
    """Users on the site at each step: Locust's runner moving toward each stage's target."""
    if not stages:
        steps = round(STEADY_S / step_s)
        return [step_s * (i + 1) for i in range(steps)], [float(peak)] * steps
    targets = stage_targets(stages, peak)
    times, users, now, current = [], [], 0.0, 0.0
    for until, target, rate in targets:
        while now < until:
            step = min(step_s, until - now)
            delta = target - current
            current += math.copysign(min(abs(delta), rate * step), delta)
            now += step
            times.append(now)
            users.append(current)
    return times, users


def iteration_rate(
    persona: Persona, latency_ms: Mapping[str, float], think: float, state: str
) -> float:
    """Iterations per second of one user of ``persona``: 1 / (mean think + requests' latency)."""
    counts = persona.sold_out if state == SOLD_OUT else persona.in_stock
    busy = sum(n * latency_ms.get(c, 0.0) / 1000 for c, n in counts.items())
    wait = think * sum(persona.wait_s) / 2
    seconds = wait + busy
    if seconds <= 0:
        raise PlanInputError(f"persona {persona.name} would loop without pause or latency")
    return 1.0 / seconds


def persona_iterations(
    mix: Mix, latency_ms: Mapping[str, float], think: float, state: str
) -> dict[str, float]:
    """Iterations/s of each persona per weighted user: its weight's share x its loop rate
    (``state`` in stock or sold out). The mix's requests are these iterations' requests."""
    total = sum(mix.weights.values())
    return {
        name: (weight / total) * iteration_rate(mix.personas[name], latency_ms, think, state)
        for name, weight in mix.weights.items()
    }


def per_user_rates(
    mix: Mix, latency_ms: Mapping[str, float], think: float, state: str
) -> tuple[dict[str, float], float, float]:
    """(class -> requests/s, hot add attempts/s, hot units/s) per weighted user."""
    if state == WORST:
        a = per_user_rates(mix, latency_ms, think, IN_STOCK)
        b = per_user_rates(mix, latency_ms, think, SOLD_OUT)
        return {c: max(a[0][c], b[0][c]) for c in CLASSES}, max(a[1], b[1]), a[2]
    rates = dict.fromkeys(CLASSES, 0.0)
    hot_adds = hot_units = 0.0
    for name, per_s in persona_iterations(mix, latency_ms, think, state).items():
        persona = mix.personas[name]
        counts = persona.sold_out if state == SOLD_OUT else persona.in_stock
        for c, n in counts.items():
            rates[c] += per_s * n
        hot_adds += per_s * persona.hot_adds[1 if state == SOLD_OUT else 0]
        hot_units += per_s * (persona.hot_units if state == IN_STOCK else 0.0)
    return rates, hot_adds, hot_units


def demand(
    mix: Mix,
    peak_users: int,
    latency_ms: Mapping[str, float],
    *,
    think: float = 1.0,
    state: StockState = WORST,
    extra_at_peak: Mapping[str, float] | None = None,
) -> Demand:
    """The scenario's demand curve for ``peak_users`` at the top of its stage table."""
    if peak_users <= 0:
        raise PlanInputError(f"peak users must be a positive number, not {peak_users}")
    if peak_users <= mix.fixed_users:
        raise PlanInputError(
            f"{peak_users} peak users leave no shoppers: scenario {mix.name!r} starts"
            f" {mix.fixed_users} fixed users (the admin) first"
        )
    if not (math.isfinite(think) and think >= 0):
        raise PlanInputError(f"the think-time scale must be a finite number from 0, not {think}")
    extra = dict(extra_at_peak or {})
    unknown = [c for c in extra if c not in CLASSES]
    if unknown:
        raise PlanInputError(f"--add needs CLASS=RATE with a class of {', '.join(CLASSES)}")
    for cls, rate in extra.items():
        if not (math.isfinite(rate) and rate >= 0):
            raise PlanInputError(f"--add {cls}={rate}: the rate must be a finite number from 0")
    times, users = users_curve(mix.stages, peak_users)
    weighted = [max(0.0, u - mix.fixed_users) for u in users]
    rates, hot_adds, hot_units = per_user_rates(mix, latency_ms, think, state)
    return Demand(
        mix=mix.name,
        peak_users=peak_users,
        state=state,
        times_s=tuple(times),
        users=tuple(weighted),
        per_user=rates,
        hot_adds_per_user=hot_adds,
        hot_units_per_user=hot_units,
        think=think,
        extra_at_peak=extra,
    )


def sell_out_s(d: Demand, units: int) -> float | None:
    """Seconds into the match at which ``units`` of the drop are gone, if they are."""
    taken = 0.0
    previous = 0.0
    for t, u in zip(d.times_s, d.users, strict=True):
        taken += d.hot_units_per_user * u * (t - previous)
        previous = t
        if taken >= units:
            return t
    return None
