"""What every phase of ``matchday capacity measure`` shares: one run and its metered phases.

A run (``Run``) holds the measurement's settings, its meter and what it found so far. Its
idle window (no traffic) gives each process's burn; every phase after it is metered the same
way (the meter read around the work and a tail for the work it leaves behind), and its cost
is what it used beyond idle per answered request. The phases themselves are the class phases
(``cluster/capacity_measure.py``), the second rate (``cluster/capacity_high.py``), the mixed
phase (``cluster/capacity_mixed.py``) and the hot shard (``cluster/capacity_hot.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from cluster.capacity_meter import Meter, Target
from cluster.capacity_probe import EXPECTED, Outcome, Probe, at_fixed_rate
from matchday.capacity import classes as k
from matchday.capacity.costs import Window, idle_of
from matchday.capacity.demand import SOLD_OUT
from matchday.capacity.profile import ClassCost, Idle, MixedCost

# After a phase: the outbox relay, the vote drain (0.25 s linger, ADR 0013) and expiring
# work finish inside the window.
TAIL_S = 1.5
IDLE_PARTS = 5  # the idle window's parts, for the datastores' median rates
MAX_ERROR_SHARE = 0.05  # more than this and the stack is not healthy at this rate
# Before each phase, this many requests one at a time: the latency a fan sees from a stack
# that is not queueing (what the plan's loops use), whatever the phase's rate does to it.
LATENCY_PROBES = 10
QUEUEING = 0.8  # a phase that kept under this share of its rate was queueing
# Classes whose requests each need a fan the session phase made.
FAN_CLASSES = tuple(c for c in k.CLASSES if c not in (k.BROWSE, k.PRODUCT, k.AVAILABILITY,
                                                      k.SESSION))  # fmt: skip
MIX_THINK = 0.1  # the think scale validate's steps (and their prediction) run at


class MeasureError(RuntimeError):
    """The stack could not be measured as asked (exit 1)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# Here rather than in capacity_mixed, beside the Run that carries it: so that the mixed phase
# can build on this module without this module needing it back.
@dataclass(frozen=True)
class Mixes:
    """The mixed phase's scenarios, think scale and stock state (none: no mixed phase)."""

    scenarios: tuple[str, ...] = ()
    think: float = MIX_THINK
    stock: str = SOLD_OUT


@dataclass
class Run:
    """One measurement: its settings, the meter, and what it found so far."""

    target: Target
    meter: Meter
    phase_s: float
    rate: float
    tail_s: float = TAIL_S
    rate_high: float = 0.0  # the second rate asked for each class; 0: none
    mixes: Mixes | None = None  # the scenarios whose own mix is measured together
    idle: Idle | None = None
    costs: dict[str, ClassCost] = field(default_factory=dict)
    mixed: dict[str, MixedCost] = field(default_factory=dict)
    foreign: list[float] = field(default_factory=list)
    steal: list[float] = field(default_factory=list)
    last: Any = None  # the last CPU sample, for the process table


async def measure_idle(run: Run, seconds: float) -> Idle:
    readings = [run.meter.read()]
    for _ in range(IDLE_PARTS):
        await asyncio.sleep(seconds / IDLE_PARTS)
        readings.append(run.meter.read())
    run.idle = idle_of(*(run.meter.window(a, b) for a, b in itertools.pairwise(readings)))
    busy = sum(run.idle.cores.values())
    say(f"[idle] {seconds:.0f} s with no traffic: the stack burns {busy:.2f} cores")
    return run.idle


async def metered(
    run: Run, label: str, work: Callable[[], Awaitable[Outcome]]
) -> tuple[Outcome, Window, float]:
    """One metered phase running ``work``: (what was answered, the window around it and its
    tail, seconds the work took)."""
    before = run.meter.read()
    started = time.monotonic()
    out = await work()
    took = time.monotonic() - started
    await asyncio.sleep(run.tail_s)
    after = run.meter.read()
    run.last = after.cpu
    if "429" in out.statuses:
        raise MeasureError(
            f"{label}: the shop rate-limited the probe (429): start the stack with"
            " MATCHDAY_RATE_LIMIT_PER_S=100000 MATCHDAY_RATE_LIMIT_BURST=100000"
        )
    w = run.meter.window(before, after)
    run.foreign.append(w.foreign_cores)
    run.steal.append(w.steal_cores)
    return out, w, took


async def run_phase(
    run: Run, probe: Probe, cls: str, count: int, rate: float, first: int
) -> tuple[Outcome, Window, float]:
    """One metered phase of ``cls`` at ``rate``."""
    return await metered(
        run, cls, lambda: at_fixed_rate(probe.call(cls), count, rate, EXPECTED[cls], first)
    )


def healthy(out: Outcome, count: int) -> bool:
    return out.ok > 0 and out.errors <= MAX_ERROR_SHARE * count
