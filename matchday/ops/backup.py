"""Encrypted backups of the shop's database, restores, and restore drills (ADR 0010).

    backup(url, path, key)    pg_dump (custom format) inside one exported snapshot, with the
                              row count and checksum of every table taken in that same
                              snapshot, encrypted as it streams (``matchday.ops.crypto``)
    restore(path, url, key)   authenticate the whole file first, then pg_restore into a
                              fresh database in one transaction, then verify every table
    drill(url, key)           backup, restore into a scratch database on the same server,
                              verify, drop the scratch database

The key is only ever handed to the cipher: it is not logged, not put in headers, error
messages or reports, and never reaches pg_dump or pg_restore.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from matchday.ops.crypto import VERSION, BackupError, EncryptedWriter, open_backup
from matchday.ops.pgtools import (
    Target,
    compare,
    connect,
    find_tool,
    fingerprints,
    server_major,
    target,
    tool_env,
    user_tables,
)

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
_READ = 1 << 20
# Progress lines while bytes flow: often enough to show life on a multi-GB dump, rarely
# enough not to flood a terminal or a cron mail.
_REPORT_EVERY = 64 << 20


class TargetNotEmpty(BackupError):
    pass


@dataclass
class Report:
    """What a restore (or drill) found, table by table."""

    database: str
    source: str
    created_at: str
    bytes: int
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        rows = sum(t["rows"] for t in self.tables.values())
        out = [
            f"backup of {self.source!r} taken {self.created_at}, {self.bytes} bytes decrypted",
            f"restored into {self.database!r}: {len(self.tables)} tables, {rows} rows",
        ]
        width = max((len(name) for name in self.tables), default=0)
        for name, t in sorted(self.tables.items()):
            mark = "ok" if t.get("match") else "MISMATCH"
            out.append(f"  {name:<{width}}  {t['rows']:>10} rows  {t['checksum']}  {mark}")
        out += [f"  problem: {p}" for p in self.problems]
        out.append("PASS: every row count and checksum matches" if self.ok else "FAIL")
        return out


def _quiet(_: str) -> None:
    pass


class _Meter:
    def __init__(self, progress: Progress, verb: str) -> None:
        self.progress, self.verb, self.total, self._next = progress, verb, 0, _REPORT_EVERY

    def add(self, n: int) -> None:
        self.total += n
        if self.total >= self._next:
            self._next += _REPORT_EVERY
            self.progress(f"{self.verb} {self.total / (1 << 20):.0f} MiB")


def _tail(err: IO[bytes]) -> str:
    err.seek(0)
    text = err.read().decode(errors="replace").strip()
    return text[-2000:] or "no message"


def backup(
    database_url: str, out_path: Path, key: str, progress: Progress = _quiet
) -> dict[str, Any]:
    """Write an encrypted backup of the database to ``out_path``; return its header."""
    out_path = Path(out_path)
    t = target(database_url)
    with connect(t) as conn:
        # One snapshot for the fingerprints and the dump: the shop keeps writing while a
        # backup runs, and the header must describe exactly the rows the dump holds.
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        major = server_major(conn)
        pg_dump = find_tool("pg_dump", major)
        row = conn.execute(
            "SELECT pg_export_snapshot(), current_database(), current_setting('server_version')"
        ).fetchone()
        assert row is not None
        snapshot, dbname, version = row
        progress(f"snapshot {snapshot} of {dbname!r} (PostgreSQL {version}); counting rows")
        tables = fingerprints(conn)
        header = {
            "format": VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": dbname,
            "server_version": version,
            "tables": tables,
        }
        progress(f"{len(tables)} tables, {sum(x['rows'] for x in tables.values())} rows")
        _dump(pg_dump, t, snapshot, out_path, key, header, progress)
        conn.rollback()
    log.info("backup of %s written to %s", dbname, out_path)
    return header


def _dump(
    pg_dump: Path,
    t: Target,
    snapshot: str,
    out_path: Path,
    key: str,
    header: dict[str, Any],
    progress: Progress,
) -> None:
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    partial.unlink(missing_ok=True)
    # 0600 from the first byte, and a half-written file never carries the final name.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, tempfile.TemporaryFile() as err:
            proc = subprocess.Popen(  # noqa: S603 - pg_dump of the server's version, no shell
                [
                    str(pg_dump),
                    "--format=custom",
                    f"--snapshot={snapshot}",
                    "--no-password",
                    f"--dbname={t.conninfo}",
                ],
                stdout=subprocess.PIPE,
                stderr=err,
                env=tool_env(t),
            )
            assert proc.stdout is not None
            writer = EncryptedWriter(out, key, header)
            meter = _Meter(progress, "wrote")
            while chunk := proc.stdout.read(_READ):
                writer.write(chunk)
                meter.add(len(chunk))
            if proc.wait() != 0:
                raise BackupError(f"pg_dump failed: {_tail(err)}")
            writer.close()
            os.fsync(out.fileno())
        partial.rename(out_path)
        progress(f"wrote {writer.bytes_written} bytes to {out_path}")
    finally:
        partial.unlink(missing_ok=True)


def verify_file(
    backup_path: Path, key: str, progress: Progress = _quiet
) -> tuple[dict[str, Any], int]:
    """Authenticate every byte of a backup without restoring it: its header and dump size."""
    with open(backup_path, "rb") as src:
        header, chunks = open_backup(src, key)
        meter = _Meter(progress, "authenticated")
        for chunk in chunks:
            meter.add(len(chunk))
    return header, meter.total


def restore(
    backup_path: Path,
    database_url: str,
    key: str,
    progress: Progress = _quiet,
    *,
    force: bool = False,
) -> Report:
    """Restore a backup into ``database_url`` and verify every table against its header.

    Nothing reaches the database until the whole file has been authenticated: a wrong key or
    a modified byte is refused up front. The target must hold no tables unless ``force``
    (then the backup's objects replace theirs). One transaction: a failure leaves the target
    as it was.
    """
    header, size = verify_file(Path(backup_path), key, progress)
    progress(f"authenticated {size} bytes of {header['database']!r}, taken {header['created_at']}")
    t = target(database_url)
    with connect(t, autocommit=True) as conn:
        major = server_major(conn)
        existing = user_tables(conn)
    if existing and not force:
        raise TargetNotEmpty(
            f"database {t.dbname!r} is not empty ({len(existing)} tables, e.g. {existing[0]});"
            " restore into a fresh database, or pass --force to replace its contents"
        )
    pg_restore = find_tool("pg_restore", major)
    args = [
        str(pg_restore),
        "--single-transaction",
        "--exit-on-error",
        # Roles are not in a database dump: objects belong to whoever restores them.
        "--no-owner",
        "--no-privileges",
        "--no-password",
        f"--dbname={t.conninfo}",
    ]
    if force:
        args += ["--clean", "--if-exists"]
    with open(backup_path, "rb") as src, tempfile.TemporaryFile() as err:
        _, chunks = open_backup(src, key)
        proc = subprocess.Popen(  # noqa: S603 - pg_restore of the server's version, no shell
            args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err, env=tool_env(t)
        )
        _feed(proc, chunks, progress)
        if proc.wait() != 0:
            raise BackupError(f"pg_restore failed: {_tail(err)}")
    progress("restored; verifying every table")
    with connect(t) as conn:
        actual = fingerprints(conn)
        conn.rollback()
    return _report(header, actual, t.dbname, size, progress)


def _feed(proc: subprocess.Popen[bytes], chunks: Iterator[bytes], progress: Progress) -> None:
    assert proc.stdin is not None
    meter = _Meter(progress, "restored")
    try:
        for chunk in chunks:
            proc.stdin.write(chunk)
            meter.add(len(chunk))
        proc.stdin.close()
    except BrokenPipeError:
        pass  # pg_restore stopped early; its exit status and message say why


def _report(
    header: dict[str, Any],
    actual: dict[str, dict[str, Any]],
    dbname: str,
    size: int,
    progress: Progress,
) -> Report:
    expected: dict[str, dict[str, Any]] = header["tables"]
    report = Report(dbname, header["database"], header["created_at"], size)
    report.problems = compare(expected, actual)
    for name, want in sorted(expected.items()):
        got = actual.get(name, {"rows": 0, "checksum": "-"})
        match = got == want
        report.tables[name] = {**got, "match": match}
        progress(f"verified {name}: {got['rows']} rows {'ok' if match else 'MISMATCH'}")
    return report


def drill(database_url: str, key: str, progress: Progress = _quiet) -> Report:
    """Prove the backups work: back up the live database, restore it into a scratch
    database on the same server, compare every table, and drop the scratch database."""
    scratch = f"matchday_drill_{uuid.uuid4().hex[:12]}"
    params: dict[str, Any] = conninfo_to_dict(database_url)
    with tempfile.TemporaryDirectory(prefix="matchday-drill-") as tmp:
        path = Path(tmp) / "drill.mdbk"
        backup(database_url, path, key, progress)
        with connect(target(database_url), autocommit=True) as conn:
            # template0: nothing a site added to template1 can make the copy differ.
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(scratch))
            )
        progress(f"created scratch database {scratch!r}")
        try:
            return restore(path, make_conninfo(**{**params, "dbname": scratch}), key, progress)
        finally:
            with connect(target(database_url), autocommit=True) as conn:
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(scratch)
                    )
                )
            progress(f"dropped scratch database {scratch!r}")
