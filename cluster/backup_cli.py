"""``matchday backup | restore | drill``: encrypted backups and the drill that proves them.

    matchday backup [--out PATH]                           an encrypted pg_dump of the database
    matchday restore PATH [--database-url URL] [--force]   into an empty database, then verified
    matchday drill                                         backup, restore to a scratch database,
                                                           compare every table, exit 1 on a miss

The key is MATCHDAY_BACKUP_KEY (ADR 0010, docs/ops/backups.md). The database is the running
stack's (``<data_dir>/stack.json``) or MATCHDAY_DATABASE_URL. Progress goes to stderr, the
result to stdout, so cron can mail the one and a script can parse the other.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from matchday.settings import Settings


def register(subparsers: Any) -> None:
    """Add ``backup``, ``restore`` and ``drill`` to ``matchday``'s parser."""
    backup = subparsers.add_parser("backup", help="write an encrypted backup of the database")
    backup.add_argument(
        "--out", type=Path, help="where to write it (default: <data_dir>/backups/<time>.mdbk)"
    )
    backup.set_defaults(fn=cmd_backup)
    restore = subparsers.add_parser("restore", help="restore a backup into an empty database")
    restore.add_argument("path", type=Path)
    restore.add_argument("--database-url", help="target database (default: the stack's)")
    restore.add_argument(
        "--force", action="store_true", help="replace the contents of a non-empty database"
    )
    restore.set_defaults(fn=cmd_restore)
    subparsers.add_parser(
        "drill", help="backup, restore into a scratch database, verify every table"
    ).set_defaults(fn=cmd_drill)


def _progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def _key(settings: Settings) -> str:
    key = settings.backup_key.get_secret_value()
    if not key:
        raise SystemExit(
            "MATCHDAY_BACKUP_KEY is not set: backups are always encrypted (docs/ops/backups.md)"
        )
    return key


def _guarded(work: Callable[[], int]) -> int:
    """Run ``work()``; a refused or failed operation is one line on stderr and exit 1."""
    import psycopg

    from matchday.ops.crypto import BackupError

    try:
        return int(work())
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except psycopg.Error as exc:
        print(f"error: database: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 1


def cmd_backup(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import resolve
    from matchday.ops.backup import backup

    key = _key(settings)
    settings = resolve(settings)
    out = args.out
    if out is None:
        folder = settings.data_dir / "backups"
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        out = folder / f"matchday-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.mdbk"

    def work() -> int:
        header = backup(settings.database_url, out, key, _progress)
        tables = header["tables"]
        summary = {
            "path": str(out),
            "bytes": out.stat().st_size,
            "database": header["database"],
            "created_at": header["created_at"],
            "tables": len(tables),
            "rows": sum(t["rows"] for t in tables.values()),
        }
        print(json.dumps(summary, indent=2))
        return 0

    return _guarded(work)


def cmd_restore(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import resolve
    from matchday.ops.backup import restore

    key = _key(settings)
    url = args.database_url or resolve(settings).database_url

    def work() -> int:
        report = restore(args.path, url, key, _progress, force=args.force)
        print("\n".join(report.lines()))
        return 0 if report.ok else 1

    return _guarded(work)


def cmd_drill(args: argparse.Namespace, settings: Settings) -> int:
    from cluster.cli_common import resolve
    from matchday.ops.backup import drill

    key = _key(settings)
    url = resolve(settings).database_url

    def work() -> int:
        report = drill(url, key, _progress)
        print("\n".join(report.lines()))
        return 0 if report.ok else 1

    return _guarded(work)
