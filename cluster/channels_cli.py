"""``matchday channels``: marketplace channels for operators (ADR 0028).

    matchday channels create ID --name N       a new channel and its API key (shown once)
    matchday channels list | show ID
    matchday channels rotate-key ID            a new key; the old one stops working at once
    matchday channels disable ID | enable ID   a disabled channel's key is refused (403)
    matchday channels allocate ID SKU (--units N | --percent P | --none)
    matchday channels allocations ID           its share of every SKU it has one of

An API key is printed by ``create`` and ``rotate-key`` only, once; it is stored as a hash
and is in no audit entry. Every change is audited with the operator's login as the client,
like ``matchday admin``. ``allocate`` goes through the inventory engine, which enforces the
allocation, so it needs the running stack (``matchday run``); the rest is PostgreSQL only.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from matchday.settings import Settings

T = TypeVar("T")


def register(subparsers: Any) -> None:
    """Add ``channels`` and its subcommands to ``matchday``'s parser."""
    top = subparsers.add_parser("channels", help="marketplace channels, keys, allocations")
    sub = top.add_subparsers(dest="channels_cmd", required=True)

    def cmd(name: str, fn: Callable[..., int], help: str, *ids: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=help)
        for arg in ids:
            p.add_argument(arg)
        p.set_defaults(fn=fn)
        return p

    cmd("create", cmd_create, "a new channel and its API key", "channel_id").add_argument(
        "--name", required=True
    )
    cmd("list", cmd_list, "every channel (never a key)")
    cmd("show", cmd_show, "one channel", "channel_id")
    cmd("rotate-key", cmd_rotate, "a new API key; the old one stops working", "channel_id")
    cmd("disable", cmd_active, "refuse the channel's key from now on", "channel_id")
    cmd("enable", cmd_active, "accept the channel's key again", "channel_id")
    alloc = cmd("allocate", cmd_allocate, "a SKU's allocation for a channel", "channel_id", "sku")
    bound = alloc.add_mutually_exclusive_group(required=True)
    bound.add_argument("--units", type=int, help="at most N units held or sold at once")
    bound.add_argument("--percent", type=int, help="at most P%% of the SKU's stock")
    bound.add_argument("--none", action="store_true", help="remove the allocation")
    alloc.add_argument("--request-id", help="idempotency key (default: a new one)")
    cmd("allocations", cmd_allocations, "a channel's share of its SKUs", "channel_id")


def _run(
    settings: Settings,
    action: str | None,
    target: str,
    work: Callable[[Any], Awaitable[T]],
    *,
    engine: bool = False,
) -> T:
    """Run ``work(tools)`` against the stack's database, with the engine when ``engine``;
    audit it when ``action`` is given, a refusal's code included. ``tools`` has ``admin`` (a
    ChannelAdmin) and ``audit`` (what the audit entry records besides the target)."""
    from cluster.cli_common import cli_operator, resolve, with_ray
    from matchday import bootstrap
    from matchday.domain.errors import MatchdayError

    settings = resolve(settings)

    async def run(client: Any) -> T:
        async with bootstrap.operator_pool(settings, "matchday-channels-cli") as pool:
            tools = argparse.Namespace(admin=bootstrap.channel_admin(pool, client), audit={})
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

    if engine:
        return with_ray(settings, lambda ctx: run(ctx[0]))  # type: ignore[no-any-return]
    return asyncio.run(run(None))


def _show(obj: Any) -> int:
    from cluster.cli_common import print_json

    print_json(obj)
    return 0


def _issued(issued: Any) -> int:
    out = issued.public()
    print(f"channel: {out['channel_id']}")
    print(f"API key: {out['api_key']}")
    print(
        "\nGive the key to the marketplace over a safe channel now: it is shown this once"
        "\n(matchday keeps only its hash). They send it as 'Authorization: Bearer <key>'."
    )
    return 0


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import validated_model
    from matchday.channels.admin import ChannelIn

    spec = validated_model(ChannelIn, channel_id=args.channel_id, name=args.name)

    async def work(t: Any) -> Any:
        t.audit = spec.model_dump()
        return await t.admin.create(spec)

    return _issued(_run(settings, "channel.create", args.channel_id, work))


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return await t.admin.rotate(args.channel_id)

    return _issued(_run(settings, "channel.rotate", args.channel_id, work))


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return [c.public() for c in await t.admin.channels()]

    return _show(_run(settings, None, "", work))


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        return (await t.admin.get(args.channel_id)).public()

    return _show(_run(settings, None, "", work))


def cmd_active(args: argparse.Namespace, settings: Settings) -> int:
    active = args.channels_cmd == "enable"

    async def work(t: Any) -> Any:
        t.audit = {"active": active}
        return (await t.admin.set_active(args.channel_id, active)).public()

    return _show(_run(settings, f"channel.{args.channels_cmd}", args.channel_id, work))


def cmd_allocate(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import validated_model
    from matchday.channels.admin import AllocationIn

    body = validated_model(
        AllocationIn, sku=args.sku, max_units=args.units, max_percent=args.percent
    )
    rid = args.request_id or f"cli-alloc:{uuid.uuid4().hex}"

    async def work(t: Any) -> Any:
        t.audit = body.model_dump()
        return (await t.admin.allocate(args.channel_id, body, rid)).public()

    return _show(_run(settings, "channel.allocate", args.channel_id, work, engine=True))


def cmd_allocations(args: argparse.Namespace, settings: Settings) -> int:
    async def work(t: Any) -> Any:
        await t.admin.get(args.channel_id)
        return [v.public() for v in await t.admin.stock(args.channel_id)]

    return _show(_run(settings, None, "", work))
