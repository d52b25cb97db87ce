"""``matchday admin``: API keys for the admin API, and its audit log. PostgreSQL only, no Ray.

    matchday admin create-key --name NAME   a new key and its TOTP secret, shown once
    matchday admin list-keys                every key (never a secret)
    matchday admin revoke KEY_ID            revoke a key for good
    matchday admin audit [--limit N] [--action A]   the newest audit entries
    matchday admin reseal --old-key-file F  re-seal TOTP secrets after rotating the secret key

Keys are made here, on a machine that reaches the database, never over the admin API: a
stolen key cannot mint another one. Creating and revoking keys are audited with no key id
and the operator's login as the client.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

from cluster.cli_common import cli_operator
from matchday.settings import Settings

T = TypeVar("T")


def register(subparsers: Any) -> None:
    """Add ``admin`` and its subcommands to ``matchday``'s parser."""
    admin = subparsers.add_parser("admin", help="admin API keys and the audit log")
    sub = admin.add_subparsers(dest="admin_cmd", required=True)
    create = sub.add_parser("create-key", help="a new API key with its TOTP second factor")
    create.add_argument("--name", required=True, help="who or what the key is for")
    create.set_defaults(fn=cmd_create_key)
    sub.add_parser("list-keys", help="every key, without secrets").set_defaults(fn=cmd_list_keys)
    revoke = sub.add_parser("revoke", help="revoke a key for good")
    revoke.add_argument("key_id")
    revoke.set_defaults(fn=cmd_revoke)
    audit = sub.add_parser("audit", help="the newest audit log entries")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--action", help="only entries of this action")
    audit.set_defaults(fn=cmd_audit)
    reseal = sub.add_parser(
        "reseal",
        help="after rotating MATCHDAY_SECRET_KEY: re-seal every TOTP secret under the new key",
    )
    reseal.add_argument(
        "--old-key-file",
        help="a file holding the previous secret key (or set MATCHDAY_OLD_SECRET_KEY); never"
        " on the command line, where it would show in the process list and shell history",
    )
    reseal.set_defaults(fn=cmd_reseal)


def _with_admin(settings: Settings, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Run ``work(auth, audit)`` against the stack's database."""
    from cluster.cli_common import resolve
    from cluster.local import secret_key
    from matchday import bootstrap

    settings = resolve(settings)

    async def run() -> T:
        async with bootstrap.operator_pool(settings, "matchday-admin-cli") as pool:
            # The same key `matchday run` gives the admin API: the configured one, else the
            # data directory's generated one.
            auth = bootstrap.admin_auth(pool, secret_key(settings))
            return await work(auth, bootstrap.audit_log(pool))

    return asyncio.run(run())


def cmd_create_key(args: argparse.Namespace, settings: Settings) -> int:
    async def work(auth: Any, audit: Any) -> tuple[str, str, str]:
        api_key, totp_secret, uri = await auth.create_key(args.name)
        key_id = api_key.split("_")[1]
        await audit.record(cli_operator(), "key.create", key_id, {"name": args.name})
        return api_key, totp_secret, uri

    api_key, totp_secret, uri = _with_admin(settings, work)
    print(f"API key:          {api_key}")
    print(f"TOTP secret:      {totp_secret}")
    print(f"provisioning URI: {uri}")
    print(
        "\nStore these now, in a password manager: they are shown this once and cannot be"
        "\nrecovered (only a hash of the API key is kept). Add the TOTP secret or the URI to an"
        "\nauthenticator app; every admin request needs the key and a current 6-digit code."
    )
    return 0


def cmd_list_keys(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import print_json

    async def work(auth: Any, audit: Any) -> list[dict[str, Any]]:
        return [asdict(k) for k in await auth.list_keys()]

    print_json(_with_admin(settings, work))
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import print_json
    from matchday.domain.errors import MatchdayError

    async def work(auth: Any, audit: Any) -> dict[str, Any]:
        try:
            info = await auth.revoke(args.key_id)
        except MatchdayError as exc:
            await audit.record(cli_operator(), "key.revoke", args.key_id, outcome=exc.code)
            raise
        await audit.record(cli_operator(), "key.revoke", args.key_id)
        return asdict(info)

    print_json(_with_admin(settings, work))
    return 0


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import print_json

    async def work(auth: Any, audit: Any) -> list[dict[str, Any]]:
        return [asdict(e) for e in await audit.recent(args.limit, args.action)]

    print_json(_with_admin(settings, work))
    return 0


def cmd_reseal(args: argparse.Namespace, settings: Settings) -> int:
    import os
    import sys
    from pathlib import Path

    from matchday.admin.rotation import reseal_all
    from matchday.admin.sealing import TotpSeal

    old_key = (
        Path(args.old_key_file).read_text().strip()
        if args.old_key_file
        else os.environ.get("MATCHDAY_OLD_SECRET_KEY", "").strip()
    )
    if len(old_key) < 32:
        print(
            "matchday admin reseal: give the previous secret key (at least 32 characters) in"
            " --old-key-file or MATCHDAY_OLD_SECRET_KEY",
            file=sys.stderr,
        )
        return 2

    async def work(auth: Any, audit: Any) -> Any:
        report = await reseal_all(
            auth.repo, TotpSeal(old_key), auth.seal,
            lambda key_id, outcome: print(f"key {key_id}: {outcome}", flush=True),
        )  # fmt: skip
        counts = {name: len(getattr(report, name)) for name in vars(report)}
        await audit.record(
            cli_operator(), "key.reseal", "*", counts, outcome="ok" if report.ok else "incomplete"
        )
        return report, counts

    report, counts = _with_admin(settings, work)
    print(", ".join(f"{n} {name.replace('_', ' ')}" for name, n in counts.items()))
    if report.unreadable:
        print(
            "neither key opens: " + ", ".join(report.unreadable) + " (another secret key, or"
            " an edited row: revoke these keys and create new ones)",
            file=sys.stderr,
        )
    if report.raced:
        print("changed while re-sealing, run again: " + ", ".join(report.raced), file=sys.stderr)
    return 0 if report.ok else 1
