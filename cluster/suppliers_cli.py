"""``matchday suppliers``: supplier connectors for operators. PostgreSQL only, no Ray.

    matchday suppliers create ID --name N [--feed-url U --format csv --pull-every S --max-units N]
    matchday suppliers list | show ID
    matchday suppliers update ID [--name N] [--feed-url U|--no-feed] [--pull-every S|--no-pull]
                                 [--format F] [--max-units N] [--active|--inactive]
    matchday suppliers rotate-secret ID           a new secret; the old one works for a day
    matchday suppliers map ID FILE                CSV supplier_sku,sku (all or none)
    matchday suppliers mappings ID | unmap ID SUPPLIER_SKU
    matchday suppliers sync ID FILE [--format csv|json]   queue a bulk sync (100k lines: fine)
    matchday suppliers syncs [ID] | sync-show SYNC_ID | force SYNC_ID | cancel SYNC_ID
    matchday suppliers reseal --old-key-file F    after rotating MATCHDAY_SECRET_KEY

A signing secret is printed by ``create`` and ``rotate-secret`` only, once; it is stored
sealed and is in no audit entry. Every change is audited with the operator's login as the
client, like ``matchday admin``. Queueing a sync needs no Ray: the supplier worker of the
running stack applies it through the engine when the shop is quiet (ADR 0025).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from cluster.cli_common import cli_operator, validated_model
from matchday.settings import Settings

T = TypeVar("T")


def register(subparsers: Any) -> None:
    """Add ``suppliers`` and its subcommands to ``matchday``'s parser."""
    top = subparsers.add_parser("suppliers", help="supplier feeds, secrets, mappings, syncs")
    sub = top.add_subparsers(dest="suppliers_cmd", required=True)

    def cmd(name: str, fn: Callable[..., int], help: str, *ids: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help)
        for arg in ids:
            p.add_argument(arg)
        p.set_defaults(fn=fn)
        return p

    create = cmd("create", cmd_create, "a new supplier and its signing secret", "supplier_id")
    create.add_argument("--name", required=True)
    _feed_options(create)
    cmd("list", cmd_list, "every supplier (never a secret)")
    cmd("show", cmd_show, "one supplier", "supplier_id")
    update = cmd("update", cmd_update, "change a supplier", "supplier_id")
    update.add_argument("--name")
    _feed_options(update)
    update.add_argument("--no-feed", action="store_true", help="remove the feed URL")
    update.add_argument("--no-pull", action="store_true", help="stop scheduled pulls")
    update.add_argument("--active", dest="active", action="store_true", default=None)
    update.add_argument("--inactive", dest="active", action="store_false")
    cmd("rotate-secret", cmd_rotate, "a new signing secret", "supplier_id")
    cmd("map", cmd_map, "map supplier SKUs from a CSV supplier_sku,sku", "supplier_id", "file")
    cmd("mappings", cmd_mappings, "a supplier's mappings", "supplier_id")
    cmd("unmap", cmd_unmap, "remove a mapping", "supplier_id", "supplier_sku")
    sync = cmd("sync", cmd_sync, "queue a feed file as a bulk sync", "supplier_id", "file")
    sync.add_argument("--format", choices=("csv", "json"), help="default: from the file name")
    syncs = cmd("syncs", cmd_syncs, "the newest bulk syncs")
    syncs.add_argument("supplier_id", nargs="?")
    syncs.add_argument("--limit", type=int, default=20)
    cmd("sync-show", cmd_sync_show, "a sync's progress and report", "sync_id")
    cmd("force", cmd_force, "run a sync now, whatever the load", "sync_id")
    cmd("cancel", cmd_cancel, "stop a sync after its chunk in flight", "sync_id")
    reseal = cmd("reseal", cmd_reseal, "after rotating MATCHDAY_SECRET_KEY: re-seal secrets")
    reseal.add_argument(
        "--old-key-file",
        help="a file holding the previous secret key (or MATCHDAY_OLD_SECRET_KEY), never on"
        " the command line",
    )


def _feed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--feed-url", help="the feed matchday pulls (http or https)")
    p.add_argument("--format", dest="feed_format", choices=("json", "csv"))
    p.add_argument("--pull-every", dest="pull_every_s", type=int, help="seconds, at least 60")
    p.add_argument("--max-units", type=int, help="a larger count is refused as a lie")


def _with_suppliers(
    settings: Settings, action: str | None, target: str, work: Callable[[Any], Awaitable[T]]
) -> T:
    """Run ``work(tools)`` against the stack's database; audit it when ``action`` is given
    (its outcome, a refusal's code included). ``tools`` has ``admin`` and ``bulk``."""
    from cluster.cli_common import resolve
    from cluster.local import secret_key
    from matchday import bootstrap
    from matchday.domain.errors import MatchdayError

    settings = resolve(settings)

    async def run() -> T:
        async with bootstrap.operator_pool(settings, "matchday-suppliers-cli") as pool:
            made = bootstrap.supplier_tools(pool, secret_key(settings))
            tools = argparse.Namespace(
                admin=made.admin,
                bulk=made.bulk,
                audit={},  # what the audit entry records besides the target
            )
            audit = bootstrap.audit_log(pool)
            try:
                result = await work(tools)
            except MatchdayError as exc:
                if action:
                    await audit.record(cli_operator(), action, target, tools.audit, exc.code)
                raise
            if action:
                await audit.record(cli_operator(), action, target, tools.audit)
            return result

    return asyncio.run(run())


def _show(obj: Any) -> int:
    from cluster.cli_common import print_json

    print_json(obj)
    return 0


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    names = ("name", "feed_url", "feed_format", "pull_every_s", "max_units")
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


def _issued(issued: Any) -> int:
    out = issued.public()
    print(f"supplier:       {out['supplier_id']}")
    print(f"signing secret: {out['secret']}")
    if out["previous_valid_until"]:
        print(f"previous secret valid until {out['previous_valid_until']:.0f} (epoch seconds)")
    print(
        "\nGive the secret to the supplier over a safe channel now: it is shown this once"
        "\n(matchday keeps it sealed). They sign each push with it (ADR 0025)."
    )
    return 0


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.suppliers.admin import SupplierIn

    spec = validated_model(SupplierIn, supplier_id=args.supplier_id, **_spec(args))

    async def work(t: Any) -> Any:
        t.audit = spec.model_dump()
        return await t.admin.create(spec)

    return _issued(_with_suppliers(settings, "supplier.create", args.supplier_id, work))


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return await t.admin.rotate(args.supplier_id)

    return _issued(_with_suppliers(settings, "supplier.rotate", args.supplier_id, work))


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return [s.public() for s in await t.admin.list()]

    return _show(_with_suppliers(settings, None, "", work))


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return (await t.admin.get(args.supplier_id)).public()

    return _show(_with_suppliers(settings, None, "", work))


def cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.suppliers.admin import SupplierPatch

    changes: dict[str, Any] = _spec(args)
    if args.no_feed:
        changes["feed_url"] = None
    if args.no_pull:
        changes["pull_every_s"] = None
    if args.active is not None:
        changes["active"] = args.active
    patch = validated_model(SupplierPatch, **changes)

    async def work(t: Any) -> Any:
        t.audit = patch.model_dump(exclude_unset=True)
        return (await t.admin.update(args.supplier_id, patch)).public()

    return _show(_with_suppliers(settings, "supplier.update", args.supplier_id, work))


def cmd_map(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.suppliers.admin import MappingsIn

    rows = list(csv.reader(io.StringIO(Path(args.file).read_text(encoding="utf-8-sig"))))
    if rows and [c.strip().lower() for c in rows[0]] == ["supplier_sku", "sku"]:
        rows = rows[1:]
    pairs = [{"supplier_sku": r[0], "sku": r[1] if len(r) > 1 else ""} for r in rows if r]
    body = validated_model(MappingsIn, mappings=pairs)

    async def work(t: Any) -> Any:
        t.audit = {"mappings": len(body.mappings)}
        found = await t.admin.map(args.supplier_id, body)
        return {k: v.sku for k, v in found.items()}

    return _show(_with_suppliers(settings, "supplier.map", args.supplier_id, work))


def cmd_mappings(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return {k: v.sku for k, v in (await t.admin.mappings(args.supplier_id)).items()}

    return _show(_with_suppliers(settings, None, "", work))


def cmd_unmap(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        t.audit = {"supplier_sku": args.supplier_sku}
        await t.admin.unmap(args.supplier_id, args.supplier_sku)
        return {"deleted": args.supplier_sku}

    return _show(_with_suppliers(settings, "supplier.unmap", args.supplier_id, work))


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    from matchday.suppliers.model import FeedRejected

    path = Path(args.file)
    fmt = args.format or ("json" if path.suffix.lower() == ".json" else "csv")
    data = path.read_bytes()

    async def work(t: Any) -> Any:
        t.audit = {"format": fmt, "bytes": len(data), "file": path.name}
        sync, created = await t.bulk.queue(args.supplier_id, data, fmt, queued_by="cli")
        t.audit["sync_id"], t.audit["new"] = sync.sync_id, created
        return sync.public()

    try:
        return _show(_with_suppliers(settings, "supplier.sync", args.supplier_id, work))
    except FeedRejected as exc:
        import sys

        print(exc.message, file=sys.stderr)
        return 1


def cmd_syncs(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return [s.public() for s in await t.bulk.syncs.recent(args.supplier_id, args.limit)]

    return _show(_with_suppliers(settings, None, "", work))


def cmd_sync_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return (await t.bulk.get(args.sync_id)).public()

    return _show(_with_suppliers(settings, None, "", work))


def cmd_force(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return (await t.bulk.force(args.sync_id)).public()

    return _show(_with_suppliers(settings, "supplier.sync.force", args.sync_id, work))


def cmd_cancel(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return (await t.bulk.cancel(args.sync_id)).public()

    return _show(_with_suppliers(settings, "supplier.sync.cancel", args.sync_id, work))


def cmd_reseal(args: argparse.Namespace, settings: Settings) -> int:
    """Like ``matchday admin reseal``: every supplier's secret opened with the old key and
    sealed with the new one; the supplier keeps signing with the same secret."""
    import os
    import sys

    from matchday.admin.rotation import reseal_all
    from matchday.suppliers.admin import SecretRows
    from matchday.suppliers.signing import SecretSeal

    old_key = (
        Path(args.old_key_file).read_text().strip()
        if args.old_key_file
        else os.environ.get("MATCHDAY_OLD_SECRET_KEY", "").strip()
    )
    if len(old_key) < 32:
        print("give the previous secret key (32+ characters) in --old-key-file", file=sys.stderr)
        return 2

    async def work(t: Any) -> Any:
        new = t.admin.seal.sealer
        report = await reseal_all(SecretRows(t.admin.repo), SecretSeal(old_key).sealer, new)
        t.audit = {name: len(getattr(report, name)) for name in vars(report)}
        return report

    report = _with_suppliers(settings, "supplier.reseal", "*", work)
    print(", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in vars(report).items()))
    if report.unreadable:
        print("neither key opens: " + ", ".join(report.unreadable), file=sys.stderr)
    return 0 if report.ok else 1
