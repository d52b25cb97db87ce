"""The inventory benchmark's entry point: ``parse_args`` (the flags documented in the
package docstring), ``main`` (start PostgreSQL, Redis and a private Ray, run ``Bench``, stop
everything, write the JSON and print the report) and ``run_until_done`` (Ctrl-C and SIGTERM
cancel the run cleanly)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import tempfile
import traceback
import uuid
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from actors.ray_env import keep_ray_on_loopback
from bench.inventory.config import RESULTS_DIR, Config
from bench.inventory.environment import _postmaster_pid
from bench.inventory.report import Progress, finish, report
from bench.inventory.runner import Bench
from bench.watch import Stalled
from matchday.embedded import remove_tree, start_servers
from matchday.settings import Settings
from matchday.storage.db import migrate

# -- entry point ---------------------------------------------------------------------------


def run_until_done(main: Coroutine[Any, Any, None], say: Progress) -> None:
    """``asyncio.run``, except that Ctrl-C or SIGTERM cancels ``main`` (whose ``finally``
    blocks stop what it started) and leftover tasks get 10 s, not forever, to wind down."""
    loop = asyncio.new_event_loop()
    task = loop.create_task(main)
    interrupts = 0

    def interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts > 1:
            raise KeyboardInterrupt
        say("interrupted: stopping ...")
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupt)
    try:
        loop.run_until_complete(task)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        left = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in left:
            t.cancel()
        if left:
            _, stuck = loop.run_until_complete(asyncio.wait(left, timeout=10))
            for t in stuck:
                say(f"abandoned a task that ignored cancellation: {t.get_coro()!r}")
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.inventory",
        description="Benchmark the inventory engine against a PostgreSQL row lock and Redis Lua.",
    )
    p.add_argument("--seconds", type=float, default=None, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per phase")
    p.add_argument("--concurrency", type=int, nargs="+", default=[64, 256], metavar="C")
    p.add_argument("--clients", type=int, default=1, help="InventoryClients for the engine")
    p.add_argument("--quick", action="store_true", help="about a minute: the smoke test")
    p.add_argument("--runs", type=int, default=None, help="hot-SKU rounds (3; 1 with --quick)")
    p.add_argument("--idle-seconds", type=float, default=None, help="idle window per round")
    p.add_argument(
        "--no-analyze",
        dest="analyze",
        action="store_false",
        help="do not refresh PostgreSQL planner statistics before engine phases",
    )
    p.add_argument("--json", type=Path, default=None, metavar="PATH")
    args = p.parse_args(argv)
    if any(c < 1 for c in args.concurrency) or args.clients < 1 or (args.runs or 1) < 1:
        p.error("--concurrency, --clients and --runs must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quick = args.quick
    cfg = Config(
        seconds=args.seconds if args.seconds is not None else (2.0 if quick else 10.0),
        warmup=args.warmup if args.warmup is not None else (0.5 if quick else 2.0),
        concurrency=args.concurrency,
        clients=args.clients,
        quick=quick,
        memory_skus=20_000 if quick else 100_000,
        held_reservations=2_000 if quick else 10_000,
        recovery_attempts=1 if quick else 3,
        analyze=args.analyze,
        runs=args.runs or (1 if quick else 3),
        idle_seconds=args.idle_seconds or (2.0 if quick else 5.0),
    )
    say = Progress()
    # A private, loopback-only cluster: both must be set before ray is imported.
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    keep_ray_on_loopback()
    import ray

    db_env = os.environ.get("MATCHDAY_DATABASE_URL", "")
    redis_env = os.environ.get("MATCHDAY_REDIS_URL", "")
    tmp = Path(tempfile.mkdtemp(prefix="matchday-bench-"))
    started: list[Any] = []
    bench: Bench | None = None
    bench_failure = ""
    status = 1
    try:
        say(f"starting PostgreSQL and Redis in {tmp} ...")
        db_url, redis_url, started = start_servers(db_env, redis_env, tmp)
        migrate(db_url)
        run_id = uuid.uuid4().hex[:8]
        base = Settings(
            database_url=db_url,
            redis_url=redis_url,
            data_dir=tmp,
            namespace=f"matchday-bench-{run_id}",
            stream_name=f"bench:{run_id}:stream",
            availability_key=f"bench:{run_id}:availability",
        )
        say("starting Ray ...")
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            namespace=base.namespace,
            logging_level=logging.WARNING,
        )
        bench = Bench(cfg, ray, base, {"postgres": bool(db_env), "redis": bool(redis_env)}, say)
        bench.run_id = run_id
        bench.meter.postmaster = _postmaster_pid(started)
        bench.prefix = f"B{run_id}"
        run_until_done(bench.run(), say)
        status = 0
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted")
        status = 130
    except Stalled as exc:
        say(f"STALLED: {exc}")
        say("stopping everything; exit status 1")
        bench_failure = f"STALLED: {exc}"
        status = 1
    except Exception:
        traceback.print_exc()
        say("FAILED: stopping everything")
        status = 1
    finally:
        with contextlib.suppress(Exception):
            if ray.is_initialized():
                ray.shutdown()
        for server in reversed(started):
            try:
                server.stop()
            except Exception as exc:
                say(f"could not stop {type(server).__name__}: {exc!r}")
        remove_tree(tmp)
        if bench is not None and bench.results:
            path = args.json or RESULTS_DIR / f"inventory-{datetime.now():%Y%m%d-%H%M%S}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            bench.results["status"] = "complete" if status == 0 else "incomplete"
            bench.results["failure"] = bench_failure
            finish(bench.results)
            path.write_text(json.dumps(bench.results, indent=2, default=str) + "\n")
            print(f"\n{report(bench.results)}", flush=True)
            print(f"figures written to {path}", flush=True)
            if bench_failure:
                print(bench_failure, flush=True)
    return status
