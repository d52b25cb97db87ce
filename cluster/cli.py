"""``matchday``: run the stack, and operate a running one.

    matchday run                      start everything on embedded defaults, Ctrl-C stops it
    matchday status                   where the running stack is, and each shard's health
    matchday env [--inline-token]     export lines attaching a shell to the stack's Ray
    matchday stock SKU [SKU ...]      durable counters from PostgreSQL
    matchday restock SKU QTY          add received units
    matchday set-stock SKU UNITS      supplier sync: UNITS physically present and unsold
    matchday limits SKU [--per-customer N] [--low-stock N] [--low-stock-cap N]
    matchday reserve SKU QTY [--customer C] [--cart C] [--ttl S]
    matchday release SKU RESERVATION
    matchday pin SKU [--shard N] | unpin SKU | pins
    matchday migrate                  apply SQL migrations to MATCHDAY_DATABASE_URL
    matchday admin create-key --name N | list-keys | revoke KEY_ID | audit [--limit N]
    matchday backup [--out PATH] | restore PATH [--force] | drill   (MATCHDAY_BACKUP_KEY)
    matchday report NAME [--csv PATH] [--png PATH] [--refresh]     merchandisers' reports
    matchday storefront build --out DIR     the storefront's hashed, compressed files (CDN)
    matchday screenshots [--out DIR] [--url URL | --start]       the storefront as PNGs
    matchday capacity measure | plan | validate      what a match day needs (ADR 0023)
    matchday drops create | list | show | open | pause | resume | close | rate   (ADR 0026)

Commands other than ``run`` find the running stack through ``<data_dir>/stack.json``, or
through MATCHDAY_DATABASE_URL / MATCHDAY_RAY_ADDRESS when those are set.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import threading
import uuid
from typing import Any

from cluster import attach
from cluster.admin_cli import register as register_admin
from cluster.backup_cli import register as register_backup
from cluster.capacity_cli import register as register_capacity
from cluster.channels_cli import register as register_channels
from cluster.cli_common import print_json, resolve, with_ray
from cluster.drops_cli import register as register_drops
from cluster.reports_cli import register as register_reports
from cluster.screenshots import register as register_screenshots
from cluster.suppliers_cli import register as register_suppliers
from matchday.domain.cards import pan_fields
from matchday.domain.errors import MatchdayError
from matchday.settings import Settings
from matchday.storefront.cli import register as register_storefront


def _request_id(args: argparse.Namespace) -> str:
    return str(args.request_id or f"cli-{uuid.uuid4().hex}")


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.local import LocalStack, end_leftovers
    from cluster.serving import chosen_apps, ingress_env

    try:
        ingress_env(settings.ingress)  # refuses a malformed MATCHDAY_TRUSTED_PROXIES
        apps = chosen_apps(args.apps)
        # Refuses if this data directory's run is alive; ends what a killed one left behind,
        # before --fresh removes the files that name them (ADR 0020).
        end_leftovers(settings.data_dir)
    except (RuntimeError, ValueError) as exc:
        print(exc)
        return 1
    if not settings.ray_address:  # an attached shell's RAY_ADDRESS names an older stack
        os.environ.pop("RAY_ADDRESS", None)
    if args.fresh:
        import shutil

        shutil.rmtree(settings.data_dir, ignore_errors=True)
    stack = LocalStack.start(
        settings,
        dashboard=not args.no_dashboard,
        seed=not args.no_seed,
        serve=not args.no_http,
        apps=apps,
    )
    print("\nmatchday is running:")
    for line in stack.describe():
        print("  " + line)
    print("\nTry:  matchday stock JERSEY-FINAL-LTD-M    matchday reserve JERSEY-FINAL-LTD-M 1")
    if stack.serving:
        scheme = "https" if stack.settings.tls_certfile else "http"
        base = f"{scheme}://{stack.settings.http_host}:{stack.settings.http_port}"
        print(f"      curl -s {base}/api/catalog/products/jersey-final-ltd")
        print(f"Shop: {base}/   (the storefront; open it in a browser)")
    _print_attach(stack.settings)
    print("Stop: Ctrl-C", flush=True)
    stop, hurry = threading.Event(), threading.Event()

    def on_signal(*_: Any) -> None:
        # A second Ctrl-C (or TERM) cuts the orderly part of the stop short.
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    stop.wait()
    print("stopping ...", flush=True)
    stack.stop(hurry=hurry)
    attach.forget(stack.settings)
    print("stopped", flush=True)
    return 0


def _print_attach(settings: Settings) -> None:
    import ray

    path, found = attach.publish(settings, ray.get_runtime_context().gcs_address)
    print('\nAttach (ray status, ray.init(address="auto")): eval "$(matchday env)", or')
    print(f"      source {path}")
    for name, value in found.env().items():
        print(f"      {name}={value}")


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def cmd_engine(args: argparse.Namespace, settings: Settings) -> int:
    settings = resolve(settings)
    rid = _request_id(args)

    async def work(ctx: Any) -> Any:
        client, _ = ctx
        if args.cmd == "restock":
            return await client.restock(rid, args.sku, args.qty)
        if args.cmd == "set-stock":
            return await client.set_on_hand(rid, args.sku, args.units)
        if args.cmd == "limits":
            return await client.adjust_limits(
                rid, args.sku, args.per_customer, args.low_stock, args.low_stock_cap
            )
        if args.cmd == "reserve":
            return await client.reserve(
                rid,
                args.sku,
                args.qty,
                args.cart,
                args.customer,
                args.ttl or settings.default_ttl_s,
            )
        return await client.release(rid, args.sku, args.reservation)

    print_json(with_ray(settings, work))
    return 0


def cmd_pin(args: argparse.Namespace, settings: Settings) -> int:
    from actors.pinning import pin_sku, unpin_sku
    from matchday import bootstrap
    from matchday.inventory.routing import Router

    settings = resolve(settings)

    async def work(ctx: Any) -> Any:
        _, handles = ctx
        async with bootstrap.operator_pool(settings, "matchday-cli", max_size=4) as pool:
            repo = bootstrap.engine_rows(pool)
            router = Router(settings.shards, settings.dedicated_shards)
            if args.cmd == "pin":
                return {
                    "sku": args.sku,
                    "shard": await pin_sku(repo, router, handles, args.sku, args.shard),
                }
            return {"sku": args.sku, "shard": await unpin_sku(repo, router, handles, args.sku)}

    print_json(with_ray(settings, work))
    return 0


def cmd_read(args: argparse.Namespace, settings: Settings) -> int:
    from matchday import bootstrap

    settings = resolve(settings)

    async def work() -> Any:
        async with bootstrap.operator_pool(settings, "matchday-cli", max_size=4) as pool:
            repo = bootstrap.engine_rows(pool)
            if args.cmd == "pins":
                return await repo.pins()
            rows = await repo.stock_rows(args.skus)
            missing = [s for s in args.skus if s not in rows]
            out = {
                s: {**r._asdict(), "available": r.on_hand - r.reserved - r.sold}
                for s, r in rows.items()
            }
            return {**out, **({"unknown": missing} if missing else {})}

    print_json(asyncio.run(work()))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.ops.stack_state import load_state

    state = load_state(settings)
    if not state or not _alive(state["pid"]):
        print("no running stack (start one with `matchday run`)")
        return 1
    print(json.dumps(state, indent=2))
    settings = resolve(settings)

    async def work(ctx: Any) -> Any:
        _, handles = ctx
        return [await h.stats.remote() for h in handles.values()]

    print_json(with_ray(settings, work))
    return 0


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.storage.db import migrate

    settings = resolve(settings)
    applied = migrate(settings.database_url)
    print("applied: " + (", ".join(applied) if applied else "nothing, schema is current"))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="matchday", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="start the local stack on embedded defaults")
    run.add_argument("--fresh", action="store_true", help="wipe the data directory first")
    run.add_argument("--no-seed", action="store_true", help="do not seed the demo catalogue")
    run.add_argument("--no-dashboard", action="store_true", help="start Ray without its dashboard")
    run.add_argument("--no-http", action="store_true", help="the engine only, no Serve apps")
    run.add_argument(
        "--apps", metavar="A,B", help="only these Serve apps (default: all), e.g. catalog,shop"
    )
    run.set_defaults(fn=cmd_run)
    sub.add_parser("status", help="the running stack and its shards").set_defaults(fn=cmd_status)
    sub.add_parser("migrate", help="apply SQL migrations").set_defaults(fn=cmd_migrate)
    stock = sub.add_parser("stock", help="durable counters of SKUs")
    stock.add_argument("skus", nargs="+")
    stock.set_defaults(fn=cmd_read)
    sub.add_parser("pins", help="pinned SKUs").set_defaults(fn=cmd_read)

    def engine(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help)
        sp.add_argument("sku")
        sp.add_argument("--request-id", help="idempotency key (default: a new one)")
        sp.set_defaults(fn=cmd_engine)
        return sp

    engine("restock", "add received units").add_argument("qty", type=int)
    engine("set-stock", "supplier sync: units present and unsold").add_argument("units", type=int)
    lim = engine("limits", "per-customer limit and low-stock threshold/cap (omit to remove)")
    lim.add_argument("--per-customer", type=int)
    lim.add_argument("--low-stock", type=int)
    lim.add_argument("--low-stock-cap", type=int)
    res = engine("reserve", "hold units for a cart")
    res.add_argument("qty", type=int)
    res.add_argument("--customer", default="cli-customer")
    res.add_argument("--cart", default="cli-cart")
    res.add_argument("--ttl", type=float)
    engine("release", "release a reservation").add_argument("reservation")
    pin = sub.add_parser("pin", help="serve a hot SKU from a dedicated shard")
    pin.add_argument("sku")
    pin.add_argument("--shard", type=int)
    pin.set_defaults(fn=cmd_pin)
    unpin = sub.add_parser("unpin", help="return a SKU to the hash ring")
    unpin.add_argument("sku")
    unpin.set_defaults(fn=cmd_pin)
    register_admin(sub)
    attach.register(sub)
    register_backup(sub)
    register_reports(sub)
    register_storefront(sub)
    register_screenshots(sub)
    register_capacity(sub)
    register_suppliers(sub)
    register_channels(sub)
    register_drops(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # Ids, names and SKUs given here are stored (reservations, journal, audit): never a card
    # number. URLs are not stored and may carry digits (a password).
    carded = pan_fields(vars(args), skip=("database_url", "url"))
    if carded:
        print(f"refused: {', '.join(carded)} looks like a card number; matchday never takes"
              " card data", file=sys.stderr)  # fmt: skip
        return 2
    import os

    if not os.environ.get("MATCHDAY_RAY_ADDRESS"):
        from actors.ray_env import keep_ray_on_loopback

        keep_ray_on_loopback()
    # A second process joining the stack's Ray must present the token `matchday run` made.
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        settings = Settings()
    except Exception as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.fn(args, settings))
    except MatchdayError as exc:
        print(json.dumps(exc.to_dict()), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
