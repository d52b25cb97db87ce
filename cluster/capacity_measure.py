"""``matchday capacity measure``: what one request of each class costs the running stack.

    matchday capacity measure                        # the local stack (`matchday run`)
    matchday capacity measure --rate 40 --phase-s 10 --out profile.json
    matchday capacity measure --rate 20 --rate-high 50     # the second rate (0: none)
    matchday capacity measure --mixes steady --mix-think 1   # the mixed phase (--mixes: none)
    matchday capacity measure --no-redis-busy               # without the busy-Redis phase

Run it on the machine that runs the stack: CPU is read per process (``matchday.ops.
cpu_roles``), so the stack's processes must be local; PostgreSQL and Redis may be elsewhere
(their transactions, WAL and commands are read over their own protocols; their CPU only
when local). First an idle window (no traffic) gives each process's burn; then each class
runs for ``--phase-s`` at ``--rate`` requests/s, and its cost is what it used beyond idle per
answered request (this module; what every phase shares, the run and its metered phase, is
``cluster/capacity_run.py``). Then each class again at ``--rate-high``, for a second point
of its cost per request (``cluster/capacity_high.py``). Then each scenario of ``--mixes``
(steady and flash_sale) runs its own request mix together, at ``--rate`` and the second rate
(``cluster/capacity_mixed.py``): the plan of that scenario takes each role's cost per request
from it (``Profile.mixes``, ADR 0023). Last, many callers reserve one hot SKU through Ray for
the ceiling of one shard (``cluster/capacity_hot.py``). Then, unless ``--no-redis-busy``,
the shop's Redis commands from many concurrent clients against the stack's Redis, for what a
command costs it busy (``cluster/capacity_redis.py``, ``Profile.redis_busy``).
Start the stack with a high rate limit (all requests come from one address):
MATCHDAY_RATE_LIMIT_PER_S=100000 MATCHDAY_RATE_LIMIT_BURST=100000. The profile (JSON) goes
to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

from cluster.capacity_high import add_rate_high, measure_high, second_rate
from cluster.capacity_hot import measure_hot_shard
from cluster.capacity_meter import Meter, Target, machine, processes, software, titled
from cluster.capacity_mixed import add_mixes, measure_mixes, mixes_of
from cluster.capacity_probe import (
    EXPECTED,
    MAX_IN_FLIGHT,
    Fixture,
    Probe,
    create_fixture,
    hide_fixture,
    one_at_a_time,
)
from cluster.capacity_redis import LEVEL_S, BusyRedisError, measure_busy_redis
from cluster.capacity_run import (
    FAN_CLASSES,
    LATENCY_PROBES,
    QUEUEING,
    TAIL_S,
    MeasureError,
    Mixes,
    Run,
    healthy,
    measure_idle,
    run_phase,
    say,
)
from matchday.capacity import classes as k
from matchday.capacity.costs import class_cost
from matchday.capacity.profile import (
    SCHEMA,
    VERSION,
    ClassCost,
    Contention,
    PlanInputError,
    Profile,
)
from matchday.ops.server_pids import server_pids
from matchday.settings import Settings

WARM_UP = 20  # requests per catalogue class before anything is timed (caches, connections)


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
    servers = server_pids(settings.database_url, settings.redis_url)
    roots: dict[str, int | None] = {"auto": int(stack), **servers}
    for name, pid in roots.items():
        if pid is None and name != "auto":
            say(f"warning: {name} is not on this machine: its CPU is not in the profile")
    labels = {os.getpid(): k.LOAD_GENERATOR}
    labels.update({pid: k.PAYMENTS_WORKER_ROLE for pid in titled(int(stack), "ray::Payments")})
    return Target(settings, host, roots, labels)


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
            await measure_mixes(run, Probe(http, run.target.host, probe.fx))


def measure(
    target: Target, phase_s: float, rate: float, callers: int, tail_s: float = TAIL_S,
    rate_high: float = 0.0, mixes: Mixes | None = None, redis_s: float = LEVEL_S,
) -> Profile:  # fmt: skip
    meter = Meter(target)
    run = Run(target, meter, phase_s, rate, tail_s, rate_high=rate_high, mixes=mixes)
    again = f", again at up to {rate_high:g}/s (as long, more requests)" if rate_high else ""
    mixed = f", the mixes of {', '.join(mixes.scenarios)}" if mixes and mixes.scenarios else ""
    busy_redis = ", then Redis busy" if redis_s > 0 else ""
    say(
        f"measuring {target.host}: {len(k.CLASSES)} classes x {phase_s:g} s at {rate:g}/s"
        f"{again}{mixed}, then the hot shard{busy_redis}"
    )
    fixture = asyncio.run(create_fixture(target.settings))
    try:
        asyncio.run(measure_http(run, fixture))
        hot = measure_hot_shard(run, fixture, callers)
        busy = None
        if redis_s > 0:
            try:
                busy = measure_busy_redis(target.settings.redis_url, redis_s, say)
            except BusyRedisError as exc:
                # The plan still has the light phases' cost, marked as a bound.
                say(f"      warning: Redis could not be measured busy ({exc}): no redis_busy")
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
        redis_busy=busy,
    )  # fmt: skip


def cmd_measure(args: argparse.Namespace, settings: Settings) -> int:
    from cluster import capacity_args

    try:
        capacity_args.measure(args)
        rate_high = second_rate(args)
        mixes = mixes_of(args)
        target = resolve_target(args, settings)
    except (PlanInputError, SystemExit) as exc:
        say(f"matchday capacity measure: {exc}")
        return 2
    try:
        redis_s = 0.0 if args.no_redis_busy else args.redis_s
        profile = measure(
            target, args.phase_s, args.rate, args.callers, args.tail_s, rate_high, mixes, redis_s
        )
    except MeasureError as exc:
        say(f"matchday capacity measure: {exc}")
        return 1
    text = profile.to_json()
    if args.out:
        args.out.write_text(text)
        say(f"profile: {args.out}")
    sys.stdout.write(text)
    return 0


def register(action: Any) -> None:
    m = action.add_parser("measure", help="what each request class costs the running stack")
    m.add_argument("--host", help="the shop's base URL (default: this stack's HTTP address)")
    m.add_argument("--phase-s", type=float, default=8.0, help="seconds per class (8)")
    # 40/s x 8 s = 320 requests a class: a 10 ms clock tick is ~30 us of a request.
    m.add_argument("--rate", type=float, default=40.0, help="requests/s in each phase (40)")
    add_rate_high(m)
    add_mixes(m)
    m.add_argument("--callers", type=int, default=256,
                   help="concurrent reserves in the hot-shard phase (256)")  # fmt: skip
    m.add_argument(
        "--tail-s",
        type=float,
        default=TAIL_S,
        help="seconds after each phase for its late work, inside its window (1.5)",
    )
    m.add_argument(
        "--redis-s",
        type=float,
        default=LEVEL_S,
        help=f"seconds per concurrency level of the busy-Redis phase ({LEVEL_S:g})",
    )
    m.add_argument(
        "--no-redis-busy",
        action="store_true",
        help="leave out the busy-Redis phase (the plan then bounds Redis from the light phases)",
    )
    m.add_argument("--stack-pid", type=int, help="the stack's root process (default: stack.json)")
    m.add_argument("--out", type=Path, help="also write the profile to this file")
    m.set_defaults(fn=cmd_measure)
