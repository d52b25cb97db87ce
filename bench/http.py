"""HTTP benchmark: add-to-cart on one hot SKU, matchday on Ray Serve against a row lock.

Usage::

    python -m bench.http                        # both ingresses + baseline, c=16 and 64, ~5 min
    python -m bench.http --quick                # short phases (the smoke test's call)
    python -m bench.http --concurrency 16 64 256 --seconds 20 --json /tmp/http.json

Options:

``--seconds S``        measured seconds per phase (default 10; 2 with --quick)
``--warmup W``         unmeasured seconds before each (default 3; 1 with --quick)
``--concurrency C ..`` client connections, one phase each (default 16 64)
``--ingress M ..``     matchday ingress modes to measure (default haproxy python)
``--no-baseline``      skip the FastAPI + uvicorn + row-lock baseline
``--json PATH``        where to write every figure (default bench/results/http-<time>.json)

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
those (ms), errors (non-201 answers and client exceptions, warm-up included), cores used per
role during the window (``client``, ``haproxy``, ``proxy``, ``shop replica``, ``shards``,
``postgres``, ``redis``, ``ray``, ``baseline``, ``other`` = foreign load), and the ratio
matchday/baseline per concurrency. ``durability``: after each matchday phase PostgreSQL's
``reserved`` counter of that phase's SKU must equal the number of 201 answers (warm-up
included); for the baseline, the units taken from its row. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.baseline_app import TABLE, create_table_sql
from bench.http_stack import ROOT, Baseline, Stack, cores_used, cpu_sample, postmaster_pid
from matchday.embedded import remove_tree, start_servers
from matchday.settings import Settings
from matchday.storage.db import make_pool, migrate

HOT_STOCK = 1_000_000  # the catalogue's maximum; a phase takes ~100k at most: never sold out
RESULTS = ROOT / "bench" / "results"


async def create_hot_skus(settings: Settings, skus: list[str]) -> None:
    """One product per SKU in the catalogue (the cart checks prices) with HOT_STOCK units."""
    from matchday.catalog.models import CategoryIn, ProductIn, VariantIn
    from matchday.inventory.routing import Router
    from matchday.web.context import ShopContext

    ctx = await ShopContext.open(settings)
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
    base: str, sku: str, c: int, args: argparse.Namespace, roots: dict[str, Any]
) -> dict[str, Any]:
    """One phase: the client process; CPU sampled at its window's start and end."""
    cmd = [
        sys.executable, "-m", "bench.http_client", "--base", base, "--sku", sku,
        "--concurrency", str(c), "--warmup", str(args.warmup), "--seconds", str(args.seconds),
    ] + (["--baseline"] if "baseline" in roots else [])  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)  # noqa: S603
    roots = {**roots, "client": proc.pid}
    before = after = None
    result: dict[str, Any] = {}
    assert proc.stdout is not None
    for line in proc.stdout:
        message = json.loads(line)
        if message.get("event") == "window_start":
            before = cpu_sample(roots)
        elif message.get("event") == "window_end":
            after = cpu_sample(roots)
        else:
            result = message
    if proc.wait() != 0 or not result:
        raise RuntimeError(f"the client failed against {base} (exit {proc.returncode})")
    if before and after:
        result["cores"] = cores_used(before, after)
    return result


def measure_stack(
    ingress: str, urls: tuple[str, str], skus: dict[int, str], args: argparse.Namespace,
    work: Path, roots: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    figures: dict[str, Any] = {}
    started = time.monotonic()
    with Stack(ingress, *urls, work) as stack:
        print(f"  {ingress} stack up after {time.monotonic() - started:.0f} s", flush=True)
        for c, sku in skus.items():
            phase = run_client(stack.base, sku, c, args, {**roots, "stack": stack.pid()})
            row = asyncio.run(sql(urls[0], "SELECT reserved FROM inventory WHERE sku = %s", sku))
            reserved = int(row[0][0]) if row else -1
            phase["durability"] = {
                "acked": phase["ok_total"],
                "reserved_in_postgres": reserved,
                "ok": reserved == phase["ok_total"],
            }
            figures[str(c)] = phase
            print("  " + line_of(f"matchday/{ingress}", phase), flush=True)
    return figures


def measure_baseline(
    database_url: str, args: argparse.Namespace, work: Path, roots: dict[str, Any]
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with Baseline(database_url, work) as app:
        for c in args.concurrency:
            sku = f"BASE-{c}-{uuid.uuid4().hex[:8]}"
            asyncio.run(sql(database_url, f"INSERT INTO {TABLE} VALUES (%s, %s)", sku, HOT_STOCK))
            phase = run_client(app.base, sku, c, args, {**roots, "baseline": app.pid()})
            left = asyncio.run(sql(database_url, f"SELECT qty FROM {TABLE} WHERE sku = %s", sku))
            taken = HOT_STOCK - int(left[0][0])
            phase["durability"] = {
                "acked": phase["ok_total"],
                "taken_in_postgres": taken,
                "ok": taken == phase["ok_total"],
            }
            figures[str(c)] = phase
            print("  " + line_of("baseline", phase), flush=True)
    return figures


def line_of(name: str, p: dict[str, Any]) -> str:
    cores = ", ".join(f"{k} {v}" for k, v in p.get("cores", {}).items())
    return (
        f"{name:<17} c={p['concurrency']:<4} {p['requests_per_s']:>8,.0f} req/s  "
        f"p50 {p['p50_ms']:>6.1f}  p99 {p['p99_ms']:>6.1f} ms  errors {p['errors_total']}"
        f"  durable {'ok' if p['durability']['ok'] else 'NO'}  [cores: {cores}]"
    )


def report(figures: dict[str, Any]) -> list[str]:
    lines = ["", "| concurrency | system | req/s | p50 ms | p99 ms | errors | vs baseline |"]
    lines.append("| --- | --- | --- | --- | --- | --- | --- |")
    base = figures.get("baseline", {})
    for c in figures["settings"]["concurrency"]:
        b = base.get(str(c))
        for name, per_c in figures["systems"].items():
            p = per_c[str(c)]
            ratio = f"{p['requests_per_s'] / b['requests_per_s']:.2f}x" if b else "-"
            p99 = " (lower p99)" if b and p["p99_ms"] < b["p99_ms"] else ""
            lines.append(
                f"| {c} | matchday/{name} | {p['requests_per_s']:,.0f} | {p['p50_ms']:.1f} | "
                f"{p['p99_ms']:.1f} | {p['errors_total']} | {ratio}{p99} |"
            )
        if b:
            lines.append(
                f"| {c} | baseline | {b['requests_per_s']:,.0f} | {b['p50_ms']:.1f} | "
                f"{b['p99_ms']:.1f} | {b['errors_total']} | 1.00x |"
            )
    return lines


def checks_ok(figures: dict[str, Any]) -> bool:
    phases = [p for per_c in figures["systems"].values() for p in per_c.values()]
    phases += list(figures.get("baseline", {}).values())
    return bool(phases) and all(p["durability"]["ok"] for p in phases)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--ingress", nargs="+", default=["haproxy", "python"],
                        choices=["haproxy", "python"])  # fmt: skip
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    work = Path(tempfile.mkdtemp(prefix="matchday-bench-http-"))
    out = args.json or RESULTS / f"http-{time.strftime('%Y%m%d-%H%M%S')}.json"
    figures: dict[str, Any] = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "systems": {},
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    db_url, redis_url, servers = start_servers("", "", work / "servers")
    try:
        migrate(db_url)
        settings = Settings(
            database_url=db_url,
            redis_url=redis_url,
            data_dir=work,
            secret_key=secrets.token_hex(24),
        )
        roots = {"postgres": postmaster_pid(work / "servers" / "postgres" / "pgdata")}
        roots["redis"] = next((s.proc.pid for s in servers if hasattr(s, "proc")), None)
        skus = {m: {c: hot_sku(m, c) for c in args.concurrency} for m in args.ingress}
        asyncio.run(create_hot_skus(settings, [s for per in skus.values() for s in per.values()]))
        asyncio.run(sql(db_url, create_table_sql()))
        print(f"add-to-cart over HTTP, {args.seconds:g} s per phase after {args.warmup:g} s")
        for ingress in args.ingress:
            figures["systems"][ingress] = measure_stack(
                ingress, (db_url, redis_url), skus[ingress], args, work, roots
            )
        if not args.no_baseline:
            figures["baseline"] = measure_baseline(db_url, args, work, roots)
    finally:
        for server in reversed(servers):
            server.stop()
        remove_tree(work)
    table = report(figures)
    print("\n".join(table))
    figures["ok"] = checks_ok(figures)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(f"\ndurability {'ok' if figures['ok'] else 'FAILED'}; figures in {out}")
    return 0 if figures["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
