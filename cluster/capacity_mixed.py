"""``measure``'s mixed phase: each scenario's own request mix, measured together.

The class phases measure one class at a time; a scenario runs its classes together (one
replica's event loop, one PostgreSQL, one Redis). For each scenario of ``--mixes`` this runs
the scenario's mix (``matchday.capacity.journeys``: the planner's demand model, at
``--mix-think`` with the drop ``--mix-stock``, from the latencies the class phases measured)
at ``--rate`` requests/s in all for ``--phase-s``, and again at the second rate (capped by
the mix's light cost, as a class's is) for as long, with more journeys, with the meter read
around each phase as for the classes. Each journey is one persona iteration for a fan of
its own (session, cart, adds, view, checkout in order), started so that their requests come
at the phase's rate. The profile keeps each scenario's cost per request of the mix
(``Profile.mixes``); a mix the stack answered badly is left out with a warning (the plan
then sums the classes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Sequence
from typing import Any

from cluster.capacity_probe import EXPECTED, MAX_IN_FLIGHT, Fan, Outcome, Probe, timed
from cluster.capacity_run import MIX_THINK, Run, healthy, metered, say
from cluster.capacity_run import Mixes as Mixes  # a Run carries it; importable here too
from matchday.capacity.costs import HIGH_LOAD, class_cost, high_rate, rate_point
from matchday.capacity.demand import IN_STOCK, SOLD_OUT
from matchday.capacity.journeys import Journey, counted, journeys, shares_of
from matchday.capacity.profile import ClassCost, MixedCost, PlanInputError

MIXES = ("steady", "flash_sale")  # validate's scenarios


def mixes_of(args: argparse.Namespace) -> Mixes:
    """--mixes, --mix-think and --mix-stock, checked (unknown scenarios are refused)."""
    from loadtests.mixes import scenario_path

    for name in args.mixes:
        scenario_path(name)
    if args.mix_think < 0:
        raise PlanInputError("--mix-think cannot be negative")
    return Mixes(tuple(args.mixes), args.mix_think, args.mix_stock)


def add_mixes(parser: Any) -> None:
    """``measure``'s options for the mixed phase (``validate`` measures its scenarios')."""
    parser.add_argument(
        "--mixes",
        nargs="*",
        default=list(MIXES),
        metavar="SCENARIO",
        help="scenarios whose own mix is measured together, at --rate and the"
        " second rate (default steady flash_sale; none: no mixed phase)",
    )
    parser.add_argument(
        "--mix-think",
        type=float,
        default=MIX_THINK,
        help="the mixes' think scale, as the plan's --think-scale (0.1)",
    )
    parser.add_argument("--mix-stock", choices=[IN_STOCK, SOLD_OUT], default=SOLD_OUT,
                        help="the mixes' drop in stock or sold out (sold_out)")  # fmt: skip


async def run_journeys(probe: Probe, trips: Sequence[Journey], rate: float) -> Outcome:
    """``trips`` started evenly so that their requests come at ``rate`` a second on average
    (at most MAX_IN_FLIGHT journeys at once); a journey's requests one after the other, for
    a fan of its own. ``i`` counts each class's requests (a checkout in ten is declined)."""
    out, gate = Outcome(), asyncio.Semaphore(MAX_IN_FLIGHT)
    every = sum(len(t) for t in trips) / len(trips) / rate
    seen: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    start = loop.time()

    async def one(trip: Journey) -> None:
        fan = Fan("", "")
        try:
            for cls in trip:
                i = seen[cls] = seen.get(cls, -1) + 1
                await timed(probe.for_fan(cls, fan), i, EXPECTED[cls], out)
        finally:
            gate.release()

    tasks = []
    for n, trip in enumerate(trips):
        delay = start + n * every - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await gate.acquire()
        tasks.append(asyncio.create_task(one(trip)))
    await asyncio.gather(*tasks)
    return out


async def mixed_phase(
    run: Run, probe: Probe, tag: str, trips: Sequence[Journey], rate: float
) -> ClassCost | None:
    """One metered run of ``trips`` at ``rate``: the cost per request of the mix, or None
    when the stack did not answer it well."""
    assert run.idle is not None
    count = sum(len(t) for t in trips)
    say(f"{tag}: {count} requests in {len(trips)} journeys at {rate:.4g}/s ...")
    out, w, took = await metered(run, tag, lambda: run_journeys(probe, trips, rate))
    if not healthy(out, count):
        say(f"{tag}: not kept: answers {out.statuses} (the plan sums the classes instead)")
        return None
    cost = class_cost(w, run.idle, ok=out.ok, errors=out.errors, rate_per_s=count / took,
                      latencies_ms=out.latencies_ms, among=tuple(counted(trips)))  # fmt: skip
    say(f"      {out.ok} ok, {out.errors} errors at {count / took:.1f}/s;"
        f" {cost.shop_cpu_us():,.0f} us of the shop's CPU a request")  # fmt: skip
    return cost


async def measure_mix(run: Run, probe: Probe, scenario: str, tag: str) -> MixedCost | None:
    """``scenario``'s mix at the light rate, then at the second one if the machine takes it."""
    from loadtests.mixes import load_mix

    assert run.idle is not None and run.mixes is not None
    think, stock = run.mixes.think, run.mixes.stock
    latency = {c: cost.latency.mean_ms for c, cost in run.costs.items()}
    mix = load_mix(scenario)
    trips = journeys(mix, latency, think, stock, round(run.rate * run.phase_s))
    shares = shares_of(counted(trips))
    say(f"{tag}: think x{think:g}, drop {stock.replace('_', ' ')}: "
        + ", ".join(f"{c} {s:.0%}" for c, s in shares.items()))  # fmt: skip
    light = await mixed_phase(run, probe, tag, trips, run.rate)
    if light is None:
        return None
    cores = os.cpu_count() or 1
    rate = high_rate(light, run.rate_high, cores, run.idle) if run.rate_high > 0 else None
    if rate is None and run.rate_high > 0:
        say(f"{tag}: one rate only: a rate worth measuring would take over {HIGH_LOAD:.0%} of"
            f" {cores} cores")  # fmt: skip
    if rate is not None:
        more = journeys(mix, latency, think, stock, max(1, round(rate * run.phase_s)))
        high = await mixed_phase(run, probe, f"{tag} high", more, rate)
        if high is not None:
            light = light.model_copy(update={"high": rate_point(high)})
    kept = SOLD_OUT if stock == SOLD_OUT else IN_STOCK
    return MixedCost(think=think, stock=kept, shares=shares, cost=light)


async def measure_mixes(run: Run, probe: Probe) -> None:
    """Every scenario of ``run.mixes``, into ``run.mixed``."""
    names = run.mixes.scenarios if run.mixes is not None else ()
    for i, scenario in enumerate(names, start=1):
        found = await measure_mix(run, probe, scenario, f"[mix {i}/{len(names)}] {scenario}")
        if found is not None:
            run.mixed[scenario] = found
