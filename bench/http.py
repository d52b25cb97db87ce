"""HTTP benchmark: add-to-cart on one hot SKU, matchday on Ray Serve against a row lock.

Usage::

    python -m bench.http                        # both ingresses + baseline, c=16 and 64, 3 runs
    python -m bench.http --quick                # short phases, 1 run (the smoke test's call)
    python -m bench.http --ingress haproxy --concurrency 16 64 --runs 1
    python -m bench.http --ingress haproxy --set MATCHDAY_CLIENT_LINGER_MS=0   # an A/B
    python -m bench.http --quick --attach       # the running stack MATCHDAY_DATA_DIR names

Options:

``--seconds S``        measured seconds per phase (default 10; 2 with --quick)
``--warmup W``         unmeasured seconds before each (default 3; 1 with --quick)
``--concurrency C ..`` client connections, one phase each (default 16 64)
``--ingress M ..``     matchday ingress modes to measure (default haproxy python)
``--no-baseline``      skip the FastAPI + uvicorn + row-lock baseline
``--runs N``           system-vs-baseline pairs, each a fresh stack (default 3; 1 with --quick)
``--idle-seconds S``   idle window before each system's phases (default 5; 2 with --quick)
``--json PATH``        where to write every figure (default bench/results/http-<time>.json)
``--attach``           measure the ``matchday run`` already running (found as ``matchday``
                       commands find it: MATCHDAY_* and ``<data_dir>/stack.json``) instead of
                       starting one per ingress and run; its ingress, its PostgreSQL and Redis.
                       It must serve the shop app with a high rate limit
                       (MATCHDAY_RATE_LIMIT_PER_S=1000000 MATCHDAY_RATE_LIMIT_BURST=1000000)
``--stack-pid PID``    with --attach: its root process (default: its stack.json's ``pid``)

In ONE run, side by side, with the same client (``bench.http_client``: one process, aiohttp
on uvloop, C keep-alive connections, each looping one request at a time) and the same
concurrencies, on one embedded PostgreSQL 16 (fsync and synchronous_commit on) and Redis:

``matchday/<ingress>``  ``matchday run`` started as a newcomer starts it (``bench.http_stack``),
    once per ingress mode (``haproxy``: Ray Serve's HAProxy ingress with
    RAY_SERVE_THROUGHPUT_OPTIMIZED; ``python``: Serve's default Python proxy), one after the
    other. The timed request is ``POST /api/shop/carts/{cart}/items {"sku", "qty": 1}`` with
    a shopper token; each connection opened its session and cart before timing. Each phase
    has its own hot SKU (1 million units, no per-customer limit).
``baseline``  ``bench.baseline_app``: FastAPI + uvicorn (one process) + psycopg pool (20) +
    ``UPDATE ... SET qty = qty - 1 WHERE sku = $1 AND qty >= 1`` on one hot row, one
    transaction per request, same route and body.

Figures: requests/s (201 answers completed in the window / window), p50/p99/max latency of
those (ms), errors (non-201 answers and client exceptions, warm-up included), and the ratio
matchday/baseline per concurrency. CPU (``bench.costs``, roles of ``matchday.ops.cpu_roles``:
load generator, haproxy, one ``replica:<app>`` per deployment, shards, postgres, redis, the
Ray roles, ``baseline app``): cores per role over an idle window before each system's phases,
then per phase the cores used and the CPU microseconds per 201 answer per role, gross and net
of the idle burn, with ``server total`` = every role but the load generator. With ``--runs N``
each run is a pair: every matchday ingress on a fresh stack (stopped before the baseline runs,
so that its idle burn never weighs on the baseline), then the baseline; the summary gives the
median over runs [min-max] of every figure and of each run's ratio, then issue 12's targets as
pass/short lines. ``durability``: after each matchday phase PostgreSQL's ``reserved`` counter
of that phase's SKU must equal the number of 201 answers (warm-up included); for the
baseline, the units taken from its row. Exit status 1 if a check fails or a phase stalls
(every wait is bounded, ``bench.watch``), never because of a figure.

With ``--attach`` every run measures the same running stack (not a fresh one), and the
baseline runs beside it, on its PostgreSQL: the stack's idle burn shows as ``foreign`` load
in the baseline's phases, as any other work on the machine would (the tests share one stack
between this benchmark and ``bench.polls``, ``tests/integration/test_bench_stack_smoke.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from pathlib import Path
from typing import Any

from bench.baseline_app import TABLE, create_table_sql
from bench.costs import cpu_model, idle_window, machine_line, machine_probe, phase_cost
from bench.http_report import checks_ok, finish, fmt_cores, line_of, report, say
from bench.http_stack import ROOT, Attached, AttachError, Baseline, servers
from bench.provenance import git_state
from bench.watch import Stalled, bounded_sync
from cluster.stack_process import Stack
from matchday.embedded import remove_tree
from matchday.ops.cpu_roles import BASELINE, LOAD_GENERATOR, CpuSample, cpu_sample
from matchday.settings import Settings
from matchday.storage.db import make_pool

HOT_STOCK = 1_000_000  # the catalogue's maximum; a phase takes ~100k at most: never sold out
SETUP_LIMIT_S = 120.0  # for C connections to open a session and a cart each (2 requests)
DRAIN_LIMIT_S = 60.0  # for the requests in flight at the window's end (30 s timeout each)
RESULTS = ROOT / "bench" / "results"


async def create_hot_skus(settings: Settings, skus: list[str]) -> None:
    """One product per SKU in the catalogue (the cart checks prices) with HOT_STOCK units."""
    from matchday import bootstrap
    from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
    from matchday.inventory.routing import Router

    ctx = await bootstrap.open_shop(settings)
    try:
        await ctx.catalog.put_category(CategoryIn(slug="bench", name="Bench"))
        for sku in skus:
            slug = sku.lower().removesuffix("-m")
            await ctx.catalog.create_product(
                ProductIn(
                    slug=slug, name=f"Hot {slug}", category="bench", price_cents=9999,
                    image_url=f"/static/img/{slug}.svg", per_customer_limit=None,
                    variants=[VariantIn(sku=sku, size="M", initial_stock=HOT_STOCK)],
                ),
                Router(settings.shards, settings.dedicated_shards),
            )  # fmt: skip
    finally:
        await ctx.close()


def hot_sku(ingress: str, concurrency: int) -> str:
    return f"HOT-{ingress[:2].upper()}{concurrency}-{uuid.uuid4().hex[:8].upper()}-M"


async def sql(database_url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    pool = make_pool(database_url, max_size=1)
    await pool.open()
    try:
        async with pool.connection() as conn:
            cur = await conn.execute(query, params or None)
            return list(await cur.fetchall()) if cur.description else []
    finally:
        await pool.close()


def run_client(
    base: str, sku: str, c: int, args: argparse.Namespace, roots: dict[str, Any],
    idle: dict[str, float], phase: str,
) -> dict[str, Any]:  # fmt: skip
    """One phase: the client process; CPU sampled at its window's start and end."""
    cmd = [
        sys.executable, "-m", "bench.http_client", "--base", base, "--sku", sku,
        "--concurrency", str(c), "--warmup", str(args.warmup), "--seconds", str(args.seconds),
    ] + (["--baseline"] if "baseline app" in roots else [])  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    roots = {**roots, LOAD_GENERATOR: proc.pid}
    samples: list[CpuSample] = []
    result: dict[str, Any] = {}
    seen = ["started"]
    # Opening C sessions and carts, the warm-up and the window, then the requests in flight:
    # past this the client is killed.
    limit_s = SETUP_LIMIT_S + args.warmup + args.seconds + DRAIN_LIMIT_S
    assert proc.stdout is not None
    with bounded_sync(
        say, phase, "the load generator to finish its window", limit_s, proc.kill,
        progress=lambda: f"last event from the client: {seen[-1]}",
    ):  # fmt: skip
        for line in proc.stdout:
            message = json.loads(line)
            event = message.get("event")
            seen.append(str(event or "result"))
            if event == "ready":
                say(f"{phase}: {c} connections ready in {message['setup_s']:.1f} s; measuring")
            elif event in ("window_start", "window_end"):
                samples.append(cpu_sample(roots, {proc.pid: LOAD_GENERATOR}))
            else:
                result = message
    if proc.wait() != 0 or not result or len(samples) != 2:
        raise RuntimeError(f"the client failed against {base} (exit {proc.returncode})")
    result.update(phase_cost(samples[0], samples[1], result["ok_in_window"], idle))
    return result


def idle_of(roots: dict[str, Any], seconds: float, what: str) -> dict[str, Any]:
    say(f"  {what}: idle window of {seconds:g} s (no traffic) ...")
    idle = idle_window(lambda: cpu_sample(roots), seconds)
    say(f"  {what} idle: {fmt_cores(idle['cores'])}")
    return idle


def measure_stack(
    ingress: str, urls: tuple[str, str], skus: dict[int, str], args: argparse.Namespace,
    work: Path, roots: dict[str, Any], attached: Attached | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """(per concurrency: the phase, its durability check), the idle window's figures."""
    figures: dict[str, Any] = {}
    started = time.monotonic()
    name = f"matchday/{ingress}"
    # The shop app alone, as the baseline is one app: the seven others only burned CPU beside
    # it (~0.15 cores idle together, more while Serve's controller probed them).
    stack = attached or Stack(ingress, *urls, work, apps="shop")
    if isinstance(stack, Stack):
        say(f"  starting the {ingress} stack ...")
        stack.env.update(args.setting)  # an A/B of a setting: the same run, another value
    with stack.start(say=say):
        say(f"  {ingress} stack up after {time.monotonic() - started:.0f} s")
        roots = {**roots, "auto": stack.pid()}
        time.sleep(args.settle)  # the apps' first health checks and autoscaler rounds
        idle = idle_of(roots, args.idle_seconds, name)
        for c, sku in skus.items():
            phase = run_client(stack.base, sku, c, args, roots, idle["cores"], f"{name} c={c}")
            row = asyncio.run(sql(urls[0], "SELECT reserved FROM inventory WHERE sku = %s", sku))
            reserved = int(row[0][0]) if row else -1
            phase["durability"] = {
                "acked": phase["ok_total"],
                "reserved_in_postgres": reserved,
                "ok": reserved == phase["ok_total"],
            }
            figures[str(c)] = phase
            say("  " + line_of(name, phase))
    return figures, idle


def measure_baseline(
    database_url: str, args: argparse.Namespace, work: Path, roots: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    figures: dict[str, Any] = {}
    with Baseline(database_url, work) as app:
        roots = {**roots, BASELINE: app.pid()}
        idle = idle_of(roots, args.idle_seconds, "baseline")
        for c in args.concurrency:
            sku = f"BASE-{c}-{uuid.uuid4().hex[:8]}"
            asyncio.run(sql(database_url, f"INSERT INTO {TABLE} VALUES (%s, %s)", sku, HOT_STOCK))
            phase = run_client(app.base, sku, c, args, roots, idle["cores"], f"baseline c={c}")
            left = asyncio.run(sql(database_url, f"SELECT qty FROM {TABLE} WHERE sku = %s", sku))
            taken = HOT_STOCK - int(left[0][0])
            phase["durability"] = {
                "acked": phase["ok_total"],
                "taken_in_postgres": taken,
                "ok": taken == phase["ok_total"],
            }
            figures[str(c)] = phase
            say("  " + line_of("baseline", phase))
    return figures, idle


def one_run(
    r: int, args: argparse.Namespace, urls: tuple[str, str], skus: dict[str, dict[int, str]],
    work: Path, roots: dict[str, Any], figures: dict[str, Any], attached: Attached | None = None,
) -> None:  # fmt: skip
    """Run r: each ingress on a fresh stack (or the attached one), then the baseline; appended
    to figures["runs"] as it goes, so that a run that fails midway keeps what it measured."""
    run: dict[str, Any] = {"phases": {}, "idle": {}}
    figures["runs"].append(run)
    say(f"run {r + 1} of {args.runs}")
    for ingress in args.ingress:
        name = f"matchday/{ingress}"
        phases, run["idle"][name] = measure_stack(
            ingress, urls, skus[ingress], args, work, roots, attached
        )
        for c, phase in phases.items():
            run["phases"].setdefault(c, {})[name] = phase
    if not args.no_baseline:
        # On the same PostgreSQL as matchday, attached or not: the stack's PostgreSQL when
        # attached (its pollers' idle burn is in the baseline's idle window and netted out like
        # every role's), so the ratio compares the two systems on one server.
        phases, run["idle"]["baseline"] = measure_baseline(urls[0], args, work, roots)
        for c, phase in phases.items():
            run["phases"].setdefault(c, {})["baseline"] = phase


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--ingress", nargs="+", choices=["haproxy", "python"])
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--idle-seconds", type=float)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--attach",
        action="store_true",
        help="measure the running stack (MATCHDAY_*, <data_dir>/stack.json)",
    )
    parser.add_argument(
        "--stack-pid",
        type=int,
        help="with --attach: the stack's root process (default: its stack.json)",
    )
    parser.add_argument(
        "--set", dest="setting", action="append", default=[], metavar="MATCHDAY_NAME=VALUE",
        help="a setting for matchday's stack, e.g. MATCHDAY_CLIENT_LINGER_MS=0 (repeatable)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    pairs = [s.partition("=") for s in args.setting]
    if any(not k.startswith("MATCHDAY_") or not sep for k, sep, _ in pairs):
        parser.error("--set takes MATCHDAY_NAME=VALUE")
    args.setting = {k: v for k, _, v in pairs}
    if args.setting and args.attach:
        parser.error("--set needs a stack of the benchmark's own, not --attach")
    if args.stack_pid is not None and not args.attach:
        parser.error("--stack-pid goes with --attach")
    if not args.attach:  # attached: the stack's own ingress (main)
        args.ingress = args.ingress or ["haproxy", "python"]
    if (args.runs is not None and args.runs < 1) or any(c < 1 for c in args.concurrency):
        parser.error("--runs and --concurrency must be positive")
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    args.runs = args.runs or (1 if args.quick else 3)
    args.idle_seconds = args.idle_seconds or (2.0 if args.quick else 5.0)
    args.settle = 1.0 if args.quick else 3.0
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    attached = None
    try:
        if args.attach:
            attached = Attached.find(args.stack_pid, ["shop"], args.ingress or ())
            args.ingress = [attached.ingress]
    except AttachError as exc:
        print(f"bench.http --attach: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="matchday-bench-http-"))
    out = args.json or RESULTS / f"http-{time.strftime('%Y%m%d-%H%M%S')}.json"
    figures: dict[str, Any] = {
        "kind": "http",
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": cpu_model(),
            "python": platform.python_version(),
            "probe_us": machine_probe(),  # what bench.budget scales by
        },
        "git": git_state(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "runs": [],
    }
    m = figures["machine"]
    say(f"machine: {machine_line(m['cpus'], m['cpu_model'], m['probe_us'])}")
    failure = ""
    try:
        with servers(attached, work) as (settings, roots):
            urls = (settings.database_url, settings.redis_url)
            skus = [
                {m: {c: hot_sku(m, c) for c in args.concurrency} for m in args.ingress}
                for _ in range(args.runs)
            ]
            every = [s for run in skus for per in run.values() for s in per.values()]
            asyncio.run(create_hot_skus(settings, every))
            asyncio.run(sql(urls[0], create_table_sql()))
            say(
                f"add-to-cart over HTTP, {args.runs} run(s), {args.seconds:g} s per phase after "
                f"{args.warmup:g} s"
            )
            for r in range(args.runs):
                one_run(r, args, urls, skus[r], work, roots, figures, attached)
    except Stalled as exc:
        failure = f"STALLED: {exc}"
    except Exception:
        traceback.print_exc()
        failure = "FAILED: see the traceback above"
    finally:
        remove_tree(work)
    summary, idle = finish(figures)
    print("\n".join(report(figures, summary, idle)))
    figures["ok"] = checks_ok(figures) and not failure
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"\n{failure or ('durability ok' if figures['ok'] else 'durability FAILED')}; "
          f"figures in {out}")  # fmt: skip
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
