"""``matchday drops``: the waiting room's drops, from a shell that reaches the stack's
PostgreSQL and Redis. No Ray. Every change is audited with the operator's login.

    matchday drops create --name N --sku S [--sku S ...] [--opens-at EPOCH]
                          [--rate R|auto [--profile FILE]] [--pass-ttl S] [--pow-bits B]
                          [--address-limit N] [--request-id ID]
    matchday drops list [--limit N]
    matchday drops show DROP_ID              the drop, its stock and its queue's counters
    matchday drops open|pause|resume|close DROP_ID
    matchday drops rate DROP_ID RATE|auto [--profile FILE]
                                             fans admitted per second from now on

A rate of ``auto`` is derived from a capacity profile (``matchday capacity measure``):
``--profile FILE``, else MATCHDAY_CAPACITY_PROFILE; without a readable one, exit 2.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from matchday.settings import Settings

T = TypeVar("T")
MOVES = ("open", "pause", "resume", "close")


def register(subparsers: Any) -> None:
    """Add ``drops`` and its subcommands to ``matchday``'s parser."""
    drops = subparsers.add_parser("drops", help="the waiting room's drops (ADR 0026)")
    sub = drops.add_subparsers(dest="drops_cmd", required=True)
    create = sub.add_parser("create", help="a drop of these SKUs, scheduled")
    create.add_argument("--name", required=True)
    create.add_argument("--sku", action="append", required=True, dest="skus")
    create.add_argument("--opens-at", type=float, help="epoch seconds (default: open it by hand)")
    create.add_argument("--rate", type=_rate, default=10.0, help="fans/s, or auto")
    create.add_argument("--profile", help="capacity profile JSON for --rate auto")
    create.add_argument("--pass-ttl", type=float, default=600.0)
    create.add_argument("--pow-bits", type=int, default=16)
    create.add_argument("--address-limit", type=int, default=8)
    create.add_argument("--request-id", help="idempotency key (default: a new one)")
    create.set_defaults(fn=cmd_create)
    listing = sub.add_parser("list", help="the newest drops")
    listing.add_argument("--limit", type=int, default=20)
    listing.set_defaults(fn=cmd_list)
    show = sub.add_parser("show", help="a drop with its stock and queue")
    show.add_argument("drop_id")
    show.set_defaults(fn=cmd_show)
    for verb in MOVES:
        move = sub.add_parser(verb, help=f"{verb} a drop")
        move.add_argument("drop_id")
        move.set_defaults(fn=cmd_move, verb=verb)
    rate = sub.add_parser("rate", help="set a drop's admission rate")
    rate.add_argument("drop_id")
    rate.add_argument("rate", type=_rate, help="fans/s, or auto")
    rate.add_argument("--profile", help="capacity profile JSON for auto")
    rate.set_defaults(fn=cmd_rate)


def _rate(text: str) -> float | str:
    return "auto" if text == "auto" else float(text)


def _rates(settings: Settings, profile: str | None) -> Any:
    from matchday.waitingroom.rates import RateSource

    return RateSource(profile or settings.capacity_profile, settings.capacity_utilisation)


def _checked_rate(settings: Settings, args: argparse.Namespace, rate: Any) -> str | None:
    """Why ``rate`` cannot be resolved (``auto`` with no readable profile), before connecting
    to anything; None when it can."""
    from matchday.domain.errors import MatchdayError

    try:
        _rates(settings, args.profile).resolve(rate)
    except MatchdayError as exc:
        return str(exc)
    return None


def _with_drops(
    settings: Settings, work: Callable[[Any, Any], Awaitable[T]], profile: str | None = None
) -> T:
    """Run ``work(drop_admin, audit)`` against the stack's PostgreSQL and Redis."""
    from cluster.cli_common import resolve
    from matchday import bootstrap

    settings = resolve(settings)

    async def run() -> T:
        async with (
            bootstrap.operator_pool(settings, "matchday-drops-cli") as pool,
            bootstrap.operator_redis(settings) as redis,
        ):
            admin = bootstrap.drop_admin(pool, redis, _rates(settings, profile))
            return await work(admin, bootstrap.audit_log(pool))

    return asyncio.run(run())


async def _audited(audit: Any, action: str, target: str, params: dict[str, Any],
                   change: Awaitable[T]) -> T:  # fmt: skip
    from cluster.cli_common import cli_operator
    from matchday.domain.errors import MatchdayError

    try:
        result = await change
    except MatchdayError as exc:
        await audit.record(cli_operator(), action, target, params, outcome=exc.code)
        raise
    await audit.record(cli_operator(), action, target, params)
    return result


def _show(drop: Any) -> dict[str, Any]:
    import time

    return dict(drop.to_dict(time.time()))


def _refused(exc: Exception) -> int:
    import sys

    print(f"refused: {exc}", file=sys.stderr)
    return 2


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from cluster.cli_common import print_json
    from matchday.waitingroom.models import DropIn

    try:
        spec = DropIn(
            name=args.name, skus=args.skus, opens_at=args.opens_at, rate_per_s=args.rate,
            pass_ttl_s=args.pass_ttl, pow_bits=args.pow_bits, address_limit=args.address_limit,
        )  # fmt: skip
    except ValidationError as exc:
        return _refused(exc)
    why = _checked_rate(settings, args, spec.rate_per_s)
    if why is not None:
        return _refused(ValueError(why))
    rid = args.request_id or f"cli-{uuid.uuid4().hex}"

    async def work(admin: Any, audit: Any) -> Any:
        params = spec.model_dump()
        return _show(await _audited(audit, "drop.create", spec.name, params,
                                    admin.create(spec, rid)))  # fmt: skip

    print_json(_with_drops(settings, work, args.profile))
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import print_json

    async def work(admin: Any, audit: Any) -> Any:
        return [_show(d) for d in await admin.drops.recent(args.limit)]

    print_json(_with_drops(settings, work))
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import print_json

    async def work(admin: Any, audit: Any) -> Any:
        return await admin.stats(args.drop_id)

    print_json(_with_drops(settings, work))
    return 0


def cmd_move(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import print_json

    async def work(admin: Any, audit: Any) -> Any:
        change = getattr(admin, args.verb)(args.drop_id)
        return _show(await _audited(audit, f"drop.{args.verb}", args.drop_id, {}, change))

    print_json(_with_drops(settings, work))
    return 0


def cmd_rate(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from cluster.cli_common import print_json
    from matchday.waitingroom.models import RateIn

    try:
        rate = RateIn(rate_per_s=args.rate).rate_per_s
    except ValidationError as exc:
        return _refused(exc)
    why = _checked_rate(settings, args, rate)
    if why is not None:
        return _refused(ValueError(why))

    async def work(admin: Any, audit: Any) -> Any:
        params = {"rate_per_s": rate}
        change = admin.set_rate(args.drop_id, rate)
        return _show(await _audited(audit, "drop.rate", args.drop_id, params, change))

    print_json(_with_drops(settings, work, args.profile))
    return 0
