"""``matchday capacity measure``: what one request of each class costs the running stack.

    matchday capacity measure                        # the local stack (`matchday run`)
    matchday capacity measure --rate 40 --phase-s 10 --out profile.json
    matchday capacity measure --rate 20 --rate-high 50     # the second rate (0: none)
    matchday capacity measure --mixes steady --mix-think 1   # the mixed phase (--mixes: none)

Run it on the machine that runs the stack: CPU is read per process (``matchday.ops.
cpu_roles``), so the stack's processes must be local; PostgreSQL and Redis may be elsewhere
(their transactions, WAL and commands are read over their own protocols; their CPU only
when local). First an idle window (no traffic) gives each process's burn; then each class
runs for ``--phase-s`` at ``--rate`` requests/s, and its cost is what it used beyond idle per
answered request. Then each class again at ``--rate-high`` (2.5x ``--rate`` by default): the
same number of requests, sooner, for a second point of its cost per request at a higher
rate (``ClassCost.high``; the plan scales every role's cost by the two, ADR 0023). A class
whose light cost says the higher rate would take more than ``HIGH_LOAD`` of the machine
gets a lower one, or none (a checkout that overloads 2 cores at 40/s; it still runs,
unmetered at the light rate, so the order status after it has orders); one the stack
answers badly at the higher rate keeps one rate, and so do the classes that need what it
makes; so does one that did not reach ``MIN_SPREAD`` x its light rate (a stall on a busy
machine gives no second point, though its fans are ready for the next class). Then each
scenario of ``--mixes`` (steady and flash_sale) runs its own request mix together, at
``--rate`` and the second rate (``cluster/capacity_mixed.py``): the plan of that scenario
takes each role's cost per request from it (``Profile.mixes``, ADR 0023). Last,
many callers reserve one hot SKU through Ray for the ceiling of one shard.
Start the stack with a high rate limit (all requests come from one address):
MATCHDAY_RATE_LIMIT_PER_S=100000 MATCHDAY_RATE_LIMIT_BURST=100000. The profile (JSON) goes
to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.capacity_meter import (
    Meter,
    Target,
    machine,
    processes,
    server_pids,
    software,
    titled,
)
from cluster.capacity_probe import (
    EXPECTED,
    MAX_IN_FLIGHT,
    NEEDS,
    Fixture,
    Outcome,
    Probe,
    at_fixed_rate,
    create_fixture,
    hide_fixture,
    one_at_a_time,
)
from matchday.capacity import classes as k
from matchday.capacity.costs import HIGH_LOAD, Window, class_cost, high_rate, idle_of, rate_point
from matchday.capacity.profile import (
    SCHEMA,
    VERSION,
    ClassCost,
    Contention,
    HotShard,
    Idle,
    MixedCost,
    PlanInputError,
    Profile,
    RatePoint,
)
from matchday.capacity.scaling import MIN_SPREAD
from matchday.settings import Settings

if TYPE_CHECKING:
    from cluster.capacity_mixed import Mixes

# After a phase: the outbox relay, the vote drain (0.25 s linger, ADR 0013) and expiring
# work finish inside the window.
TAIL_S = 1.5
IDLE_PARTS = 5  # the idle window's parts, for the datastores' median rates
MAX_ERROR_SHARE = 0.05  # more than this and the stack is not healthy at this rate
HOT_TTL_S = 30.0  # the hot phase's holds expire by themselves after the measurement
WARM_UP = 20  # requests per catalogue class before anything is timed (caches, connections)
# Before each phase, this many requests one at a time: the latency a fan sees from a stack
# that is not queueing (what the plan's loops use), whatever the phase's rate does to it.
LATENCY_PROBES = 10
QUEUEING = 0.8  # a phase that kept under this share of its rate was queueing
HIGH_MULTIPLE = 2.5  # --rate-high's default, x --rate
# Classes whose requests each need a fan the session phase made.
FAN_CLASSES = tuple(c for c in k.CLASSES if c not in (k.BROWSE, k.PRODUCT, k.AVAILABILITY,
                                                      k.SESSION))  # fmt: skip


class MeasureError(RuntimeError):
    """The stack could not be measured as asked (exit 1)."""


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def resolve_target(args: argparse.Namespace, settings: Settings) -> Target:
    from cluster.cli_common import resolve
    from loadtests.config import LoadConfig, check_target
    from matchday.ops.stack_state import load_state

    state = load_state(settings) or {}
    settings = resolve(settings)
    host = args.host or f"http://{settings.http_host}:{settings.http_port}"
    why = check_target(host, LoadConfig.from_env())
    if why:
        raise PlanInputError(why)
    stack = args.stack_pid or state.get("pid")
    if not stack:
        raise PlanInputError(
            "no stack process to measure: run this beside `matchday run`, or pass --stack-pid"
        )
    roots: dict[str, int | None] = {"auto": int(stack), **server_pids(settings)}
    for name, pid in roots.items():
        if pid is None and name != "auto":
            say(f"warning: {name} is not on this machine: its CPU is not in the profile")
    labels = {os.getpid(): k.LOAD_GENERATOR}
    labels.update({pid: k.PAYMENTS_WORKER_ROLE for pid in titled(int(stack), "ray::Payments")})
    return Target(settings, host, roots, labels)


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


async def measure_class(run: Run, probe: Probe, cls: str, index: int) -> ClassCost:
    assert run.idle is not None
    count = round(run.rate * run.phase_s)
    if cls in FAN_CLASSES:
        # One request per fan the session phase made (the first ones are the probes').
        count = min(count, len(probe.fans) - LATENCY_PROBES)
    say(f"[{index}/{len(k.CLASSES)}] {cls}: {count} requests at {run.rate:g}/s ...")
    alone = await one_at_a_time(probe.call(cls), LATENCY_PROBES, EXPECTED[cls])
    out, w, took = await run_phase(run, probe, cls, count, run.rate, LATENCY_PROBES)
    if not healthy(out, count):
        raise MeasureError(f"{cls}: answers {out.statuses}, expected {sorted(EXPECTED[cls])};"
                           " is the stack healthy? try a lower --rate")  # fmt: skip
    cost = class_cost(w, run.idle, ok=out.ok, errors=out.errors, rate_per_s=count / took,
                      latencies_ms=alone.latencies_ms or out.latencies_ms, cls=cls)  # fmt: skip
    if count / took < QUEUEING * run.rate:
        say(
            f"      warning: {cls} kept {count / took:.1f} of {run.rate:g} requests/s: the stack"
            " was queueing (its cost holds; measure again with a lower --rate to be sure)"
        )
    say(f"      {out.ok} ok, {out.errors} errors, p50 alone {cost.latency.p50_ms:.1f} ms;"
        f" {cost.shop_cpu_us():,.0f} us of CPU a request, {cost.pg_write_xacts:.2f}"
        f" PostgreSQL commits, {cost.redis_cmds:.1f} Redis commands")  # fmt: skip
    return cost


def high_count(run: Run, probe: Probe, cls: str) -> int:
    """The light phase's number of requests (sooner), one per fan of ``probe`` at most."""
    count = round(run.rate * run.phase_s)
    return min(count, len(probe.fans)) if cls in FAN_CLASSES else count


async def measure_class_high(
    run: Run, probe: Probe, cls: str, tag: str, light: ClassCost, rate: float
) -> tuple[bool, RatePoint | None]:
    """The class again at ``rate``, on ``probe``'s own fans: whether the stack answered it
    well (its fans then have what the next classes need), and the second point, None when
    it did not or when the rate reached is too close to the light phase's to be a second
    point (a stall on a busy machine: the class keeps one rate, factor 1). A read that
    stalls runs once more: it changes nothing, and a stall seldom lasts two phases."""
    assert run.idle is not None
    count = high_count(run, probe, cls)
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


async def prepare(run: Run, probe: Probe, cls: str, tag: str) -> bool:
    """A class too dear for a second rate, run unmetered at the light rate (which the stack
    took), so that the classes after it have carts, items and orders to work on."""
    count = high_count(run, probe, cls)
    say(f"{tag}: {count} requests at {run.rate:g}/s, not measured: the next classes' fans")
    out = await at_fixed_rate(probe.call(cls), count, run.rate, EXPECTED[cls])
    return healthy(out, count)


async def measure_high(run: Run, probe: Probe) -> None:
    """Every class at the second rate, in the same order, with fans of its own."""
    assert run.idle is not None
    ready: set[str] = set()  # classes whose requests the fans have had
    cores = os.cpu_count() or 1
    for i, cls in enumerate(k.CLASSES, start=1):
        tag, need, light = f"[{i}/{len(k.CLASSES)} high] {cls}", NEEDS.get(cls), run.costs[cls]
        if need is not None and need not in ready:
            say(f"{tag}: one rate only: the fans have no {need} to work on")
            continue
        rate = high_rate(light, run.rate_high, cores, run.idle)
        if rate is None:
            say(f"{tag}: one rate only: at its light cost ({sum(light.cpu_us.values()):,.0f} us"
                f" a request) a rate worth measuring would take over {HIGH_LOAD:.0%} of"
                f" {cores} cores")  # fmt: skip
            if cls in NEEDS.values() and await prepare(run, probe, cls, tag):
                ready.add(cls)
            continue
        answered, point = await measure_class_high(run, probe, cls, tag, light, rate)
        if point is not None:
            run.costs[cls] = light.model_copy(update={"high": point})
        if answered:
            ready.add(cls)


async def catalogue_slugs(probe: Probe) -> tuple[str, ...]:
    status, data = await probe.send("GET", "/api/catalog/products", params={"limit": 100})
    if status != 200:
        raise MeasureError(f"the catalogue answered {status} at {probe.base}: is the stack up?")
    return tuple(p["slug"] for p in data.get("items", []))


async def measure_http(run: Run, fixture: Fixture) -> None:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        probe = Probe(http, run.target.host, fixture)
        probe.fx = Fixture(**{**fixture.__dict__, "slugs": await catalogue_slugs(probe)})
        for cls in (k.BROWSE, k.PRODUCT, k.AVAILABILITY):  # warm caches and connections
            await asyncio.gather(*(probe.call(cls)(i) for i in range(WARM_UP)))
        # Longer than a phase: every phase's cost is net of this window's rates.
        await measure_idle(run, max(2 * run.phase_s, 5.0))
        for i, cls in enumerate(k.CLASSES, start=1):
            run.costs[cls] = await measure_class(run, probe, cls, i)
        if run.rate_high > 0:
            await measure_high(run, Probe(http, run.target.host, probe.fx))
        if run.mixes is not None and run.mixes.scenarios:
            from cluster.capacity_mixed import measure_mixes

            await measure_mixes(run, Probe(http, run.target.host, probe.fx))


def measure_hot_shard(run: Run, fixture: Fixture, callers: int) -> HotShard:
    """Many callers reserving one SKU through Ray: the ceiling of the shard that owns it."""
    from cluster.cli_common import with_ray

    assert run.idle is not None
    say(f"[hot] {callers} callers reserve {fixture.hot} through Ray for {run.phase_s:g} s ...")

    async def work(ctx: Any) -> tuple[int, Window]:
        client, _ = ctx
        tag = fixture.run.lower()
        await client.reserve(f"cap-{tag}-warm", fixture.hot, 1, f"cap-{tag}", f"cap-{tag}",
                             HOT_TTL_S)  # fmt: skip
        done = [0]
        deadline = time.monotonic() + run.phase_s

        async def caller(c: int) -> None:
            n = 0
            while time.monotonic() < deadline:
                n += 1
                await client.reserve(f"cap-{tag}-{c}-{n}", fixture.hot, 1, f"cap-{tag}-{c}",
                                     f"cap-{tag}-{c}", HOT_TTL_S)  # fmt: skip
                done[0] += 1

        before = run.meter.read()
        await asyncio.gather(*(caller(c) for c in range(callers)))
        await asyncio.sleep(run.tail_s)
        return done[0], run.meter.window(before, run.meter.read())

    reserves, w = with_ray(run.target.settings, work)
    if reserves == 0:
        raise MeasureError("the hot shard phase reserved nothing")
    cost = class_cost(w, run.idle, ok=reserves, errors=0, rate_per_s=reserves / run.phase_s,
                      latencies_ms=[])  # fmt: skip
    shard_us = cost.cpu_us.get(k.SHARDS, 0.0)
    if shard_us <= 0:
        raise MeasureError("the shards' CPU did not move in the hot phase: are they local?")
    hot = HotShard(callers=callers, reserves=reserves, seconds=run.phase_s,
                   reserves_per_s=reserves / run.phase_s, shard_cpu_us=shard_us,
                   pg_write_xacts=cost.pg_write_xacts, pg_wal_bytes=cost.pg_wal_bytes,
                   cpu_us=cost.cpu_us)  # fmt: skip
    say(
        f"      {hot.reserves_per_s:,.0f} reserves/s, {shard_us:.1f} us of shard CPU each"
        f" (its core alone would allow {hot.cpu_ceiling_per_s:,.0f}/s)"
    )
    return hot


def measure(
    target: Target, phase_s: float, rate: float, callers: int, tail_s: float = TAIL_S,
    rate_high: float = 0.0, mixes: Mixes | None = None,
) -> Profile:  # fmt: skip
    meter = Meter(target)
    run = Run(target, meter, phase_s, rate, tail_s, rate_high=rate_high, mixes=mixes)
    again = f", again at up to {rate_high:g}/s (as many requests, sooner)" if rate_high else ""
    mixed = f", the mixes of {', '.join(mixes.scenarios)}" if mixes and mixes.scenarios else ""
    say(f"measuring {target.host}: {len(k.CLASSES)} classes x {phase_s:g} s at {rate:g}/s"
        f"{again}{mixed}, then the hot shard")  # fmt: skip
    fixture = asyncio.run(create_fixture(target.settings))
    try:
        asyncio.run(measure_http(run, fixture))
        hot = measure_hot_shard(run, fixture, callers)
    finally:
        asyncio.run(hide_fixture(target.settings, fixture))
        meter.close()
    assert run.idle is not None
    return Profile(
        schema=SCHEMA, version=VERSION,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        target=target.host, phase_s=phase_s, machine=machine(),
        software=software(target.settings), idle=run.idle,
        contention=Contention(foreign_cores=round(sum(run.foreign) / len(run.foreign), 3),
                              steal_cores=round(sum(run.steal) / len(run.steal), 3)),
        classes=run.costs, hot_shard=hot, processes=processes(run.last), mixes=run.mixed,
    )  # fmt: skip


def second_rate(args: argparse.Namespace) -> float:
    """--rate-high, or its default; refuses one that is not above --rate (0 turns it off)."""
    high = HIGH_MULTIPLE * args.rate if args.rate_high is None else args.rate_high
    if high != 0 and high <= args.rate:
        raise PlanInputError("--rate-high must be above --rate (or 0: no second rate)")
    return float(high)


def cmd_measure(args: argparse.Namespace, settings: Settings) -> int:
    if args.rate <= 0 or args.phase_s <= 0 or args.callers < 1:
        say("matchday capacity measure: --rate, --phase-s and --callers must be positive")
        return 2
    from cluster.capacity_mixed import mixes_of

    try:
        rate_high = second_rate(args)
        mixes = mixes_of(args)
        target = resolve_target(args, settings)
    except (PlanInputError, SystemExit) as exc:
        say(f"matchday capacity measure: {exc}")
        return 2
    try:
        profile = measure(target, args.phase_s, args.rate, args.callers, args.tail_s, rate_high,
                          mixes)  # fmt: skip
    except MeasureError as exc:
        say(f"matchday capacity measure: {exc}")
        return 1
    text = profile.to_json()
    if args.out:
        args.out.write_text(text)
        say(f"profile: {args.out}")
    sys.stdout.write(text)
    return 0


def add_rate_high(parser: Any) -> None:
    parser.add_argument("--rate-high", type=float, default=None,
                        help="the second rate of each class, capped per class by its light"
                             " cost (default 2.5 x --rate; 0: none)")  # fmt: skip


def register(action: Any) -> None:
    m = action.add_parser("measure", help="what each request class costs the running stack")
    m.add_argument("--host", help="the shop's base URL (default: this stack's HTTP address)")
    m.add_argument("--phase-s", type=float, default=8.0, help="seconds per class (8)")
    # 40/s x 8 s = 320 requests a class: a 10 ms clock tick is ~30 us of a request.
    m.add_argument("--rate", type=float, default=40.0, help="requests/s in each phase (40)")
    add_rate_high(m)
    from cluster.capacity_mixed import add_mixes

    add_mixes(m)
    m.add_argument("--callers", type=int, default=256,
                   help="concurrent reserves in the hot-shard phase (256)")  # fmt: skip
    m.add_argument(
        "--tail-s",
        type=float,
        default=TAIL_S,
        help="seconds after each phase for its late work, inside its window (1.5)",
    )
    m.add_argument("--stack-pid", type=int, help="the stack's root process (default: stack.json)")
    m.add_argument("--out", type=Path, help="also write the profile to this file")
    m.set_defaults(fn=cmd_measure)
