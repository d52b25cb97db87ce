"""``measure``'s second rate: each class again, faster, for a second point of its cost.

After the class phases, each class runs again at ``--rate-high`` (2.5x ``--rate`` by
default) for as long as the first, with more requests, for a second point of its cost per
request at a higher rate (``ClassCost.high``; the plan scales every role's cost by the two,
ADR 0023). An equal window weighs a periodic burst of a process (a metrics export) the same
at both rates; the same requests sooner had put it on fewer requests at the higher one. A
class whose light cost says the higher rate would take more than ``HIGH_LOAD`` of the machine
gets a lower one, or none (a checkout that overloads 2 cores at 40/s; it still runs,
unmetered at the light rate, so the order status after it has orders); one the stack
answers badly at the higher rate keeps one rate, and so do the classes that need what it
makes; so does one that did not reach ``MIN_SPREAD`` x its light rate (a stall on a busy
machine gives no second point, though its fans are ready for the next class).
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from cluster.capacity_probe import EXPECTED, NEEDS, Probe, at_fixed_rate
from cluster.capacity_run import FAN_CLASSES, QUEUEING, Run, healthy, run_phase, say
from matchday.capacity import classes as k
from matchday.capacity.costs import HIGH_LOAD, class_cost, high_rate, rate_point
from matchday.capacity.profile import ClassCost, PlanInputError, RatePoint
from matchday.capacity.scaling import MIN_SPREAD

HIGH_MULTIPLE = 2.5  # --rate-high's default, x --rate


def high_count(run: Run, probe: Probe, cls: str, rate: float, made: dict[str, int]) -> int:
    """The requests of a phase as long as the light one at ``rate``. A fan's class sends
    one per fan that has what it needs: each class's phase reaches fans 0 to n - 1, and
    ``made`` says each one's n (their rates, so their counts, differ by class)."""
    count = max(1, round(rate * run.phase_s))
    if cls not in FAN_CLASSES:
        return count
    need = NEEDS.get(cls)
    return min(count, len(probe.fans), made.get(need, count) if need else count)


async def measure_class_high(
    run: Run, probe: Probe, cls: str, tag: str, light: ClassCost, rate: float, count: int
) -> tuple[bool, RatePoint | None]:
    """The class again at ``rate``, on ``probe``'s own fans: whether the stack answered it
    well (its fans then have what the next classes need), and the second point, None when
    it did not or when the rate reached is too close to the light phase's to be a second
    point (a stall on a busy machine: the class keeps one rate, factor 1). A read that
    stalls runs once more: it changes nothing, and a stall seldom lasts two phases."""
    assert run.idle is not None
    tries = 1 if cls in FAN_CLASSES else 2  # a fan's request is one per fan, so once
    for left in range(tries - 1, -1, -1):
        say(f"{tag}: {count} requests at {rate:.3g}/s ...")
        out, w, took = await run_phase(run, probe, cls, count, rate, 0)
        if not healthy(out, count):
            say(f"{tag}: one rate only: answers {out.statuses} at {rate:.3g}/s, expected"
                f" {sorted(EXPECTED[cls])} (none for the classes its fans prepare)")  # fmt: skip
            return False, None
        if count / took >= MIN_SPREAD * light.rate_per_s:
            break
        short = (f"it reached {count / took:.1f}/s, under {MIN_SPREAD:g}x the light phase's"
                 f" {light.rate_per_s:.1f}/s (the machine was busy)")  # fmt: skip
        say(f"{tag}: {short}; once more" if left else f"{tag}: one rate only: {short}")
        if not left:
            return True, None
    cost = class_cost(w, run.idle, ok=out.ok, errors=out.errors, rate_per_s=count / took,
                      latencies_ms=out.latencies_ms, cls=cls)  # fmt: skip
    if count / took < QUEUEING * rate:
        say(f"      warning: {cls} kept {count / took:.1f} of {rate:.3g} requests/s: the stack"
            " was queueing (the cost holds, at the rate reached)")  # fmt: skip
    was = light.shop_cpu_us()
    ratio = f" (x{cost.shop_cpu_us() / was:.2f} the light rate's)" if was > 0 else ""
    say(f"      {out.ok} ok, {out.errors} errors at {count / took:.1f}/s;"
        f" {cost.shop_cpu_us():,.0f} us of CPU a request{ratio}")  # fmt: skip
    return True, rate_point(cost)


async def prepare(run: Run, probe: Probe, cls: str, tag: str, count: int) -> bool:
    """A class too dear for a second rate, run unmetered at the light rate (which the stack
    took), so that the classes after it have carts, items and orders to work on."""
    say(f"{tag}: {count} requests at {run.rate:g}/s, not measured: the next classes' fans")
    out = await at_fixed_rate(probe.call(cls), count, run.rate, EXPECTED[cls])
    return healthy(out, count)


async def measure_high(run: Run, probe: Probe) -> None:
    """Every class at the second rate, in the same order, with fans of its own."""
    assert run.idle is not None
    made: dict[str, int] = {}  # class -> the fans (0 to n - 1) that have had its request
    cores = os.cpu_count() or 1
    for i, cls in enumerate(k.CLASSES, start=1):
        tag, need, light = f"[{i}/{len(k.CLASSES)} high] {cls}", NEEDS.get(cls), run.costs[cls]
        if need is not None and need not in made:
            say(f"{tag}: one rate only: the fans have no {need} to work on")
            continue
        rate = high_rate(light, run.rate_high, cores, run.idle)
        if rate is None:
            say(f"{tag}: one rate only: at its light cost ({sum(light.cpu_us.values()):,.0f} us"
                f" a request) a rate worth measuring would take over {HIGH_LOAD:.0%} of"
                f" {cores} cores")  # fmt: skip
            count = high_count(run, probe, cls, run.rate, made)
            if cls in NEEDS.values() and await prepare(run, probe, cls, tag, count):
                made[cls] = count
            continue
        count = high_count(run, probe, cls, rate, made)
        answered, point = await measure_class_high(run, probe, cls, tag, light, rate, count)
        if point is not None:
            run.costs[cls] = light.model_copy(update={"high": point})
        if answered:
            made[cls] = count


def second_rate(args: argparse.Namespace) -> float:
    """--rate-high, or its default; refuses one that is not above --rate (0 turns it off)."""
    high = HIGH_MULTIPLE * args.rate if args.rate_high is None else args.rate_high
    if high != 0 and high <= args.rate:
        raise PlanInputError("--rate-high must be above --rate (or 0: no second rate)")
    return float(high)


def add_rate_high(parser: Any) -> None:
    parser.add_argument("--rate-high", type=float, default=None,
                        help="the second rate of each class, capped per class by its light"
                             " cost (default 2.5 x --rate; 0: none)")  # fmt: skip
