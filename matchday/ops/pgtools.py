"""PostgreSQL's client tools and the per-table fingerprints that backups are checked against.

``pg_dump`` and ``pg_restore`` come from the same install as the embedded server (the
``pgserver`` wheel, found the way :class:`~matchday.embedded.EmbeddedPostgres` finds it), or
from PATH for a real server; whichever is used must have the server's major version, so a
dump is never written or read by a tool that may not understand it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from matchday.ops.crypto import BackupError

# Schemas that belong to PostgreSQL itself; everything else is ours to back up and verify.
_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


class VersionMismatch(BackupError):
    pass


@dataclass(frozen=True)
class Target:
    """Where a tool connects: a conninfo without the password, which rides in the
    environment (PGPASSWORD) instead of the command line, where ``ps`` would show it."""

    conninfo: str
    env: dict[str, str]

    @property
    def dbname(self) -> str:
        return str(conninfo_to_dict(self.conninfo).get("dbname") or "")


def target(database_url: str, dbname: str | None = None) -> Target:
    params: dict[str, Any] = conninfo_to_dict(database_url)
    if dbname is not None:
        params["dbname"] = dbname
    password = params.pop("password", None)
    env = {"PGPASSWORD": str(password)} if password else {}
    return Target(make_conninfo(**params), env)


def connect(t: Target, **kwargs: Any) -> psycopg.Connection[Any]:
    params: dict[str, Any] = conninfo_to_dict(t.conninfo)
    if "PGPASSWORD" in t.env:
        params["password"] = t.env["PGPASSWORD"]
    return psycopg.connect(**params, **kwargs)


def server_major(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SHOW server_version_num").fetchone()
    assert row is not None
    return int(row[0]) // 10_000


def _bundled(tool: str) -> Path | None:
    try:
        from matchday.embedded import EmbeddedPostgres
    except ImportError:  # pragma: no cover - pgserver is a dependency, but be plain about it
        return None
    try:
        # Constructing it only computes paths (nothing starts): this reuses its notion of
        # where the wheel's binaries live instead of repeating it here.
        path = EmbeddedPostgres(Path(tempfile.gettempdir())).tool(tool)
    except ImportError:
        return None
    return path if path.exists() else None


def _tool_major(path: Path) -> int | None:
    out = subprocess.run(  # noqa: S603 - a PostgreSQL client tool, fixed arguments
        [str(path), "--version"], capture_output=True, text=True, timeout=30, check=False
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(match.group(1)) if match else None


def find_tool(tool: str, major: int) -> Path:
    """``pg_dump`` or ``pg_restore`` of exactly this server major version."""
    seen: list[str] = []
    on_path = shutil.which(tool)
    for candidate in (_bundled(tool), Path(on_path) if on_path else None):
        if candidate is None:
            continue
        found = _tool_major(candidate)
        if found == major:
            return candidate
        seen.append(f"{candidate} is version {found}")
    raise VersionMismatch(
        f"no {tool} for PostgreSQL {major} found ({'; '.join(seen) or 'none installed'});"
        f" install the PostgreSQL {major} client tools and put them on PATH"
    )


def tool_env(t: Target) -> dict[str, str]:
    return {**os.environ, **t.env}


# -- fingerprints -------------------------------------------------------------------------


def _tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str, list[str]]]:
    """(schema, table, primary key columns) of every ordinary table, in a stable order.

    Materialized views are left out: a restore refreshes them from the restored tables, so
    they prove nothing the tables do not, and a stale one would differ for no fault.
    """
    rows = conn.execute(
        "SELECT n.nspname, c.relname,"
        " coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)"
        "   FROM pg_index i, unnest(i.indkey) WITH ORDINALITY k(attnum, ord), pg_attribute a"
        "   WHERE i.indrelid = c.oid AND i.indisprimary"
        "     AND a.attrelid = c.oid AND a.attnum = k.attnum), '{}')"
        " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind = 'r' AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_temp%%'"
        " ORDER BY 1, 2",
        (list(_SYSTEM_SCHEMAS),),
    ).fetchall()
    return [(schema, name, list(pk)) for schema, name, pk in rows]


def fingerprints(conn: psycopg.Connection[Any]) -> dict[str, dict[str, Any]]:
    """Row count and checksum of every table, as seen by ``conn``'s current transaction.

    The checksum is the md5 of each row's md5 in primary-key order (whole-row order for a
    table without one): row hashes keep the aggregate at 32 bytes a row, well under
    PostgreSQL's 1 GB value limit. Text forms depend on session settings, so those are
    pinned first; both sides of a comparison compute them the same way.
    """
    conn.execute("SET LOCAL TimeZone = 'UTC'")
    conn.execute("SET LOCAL DateStyle = 'ISO, YMD'")
    conn.execute("SET LOCAL IntervalStyle = 'postgres'")
    conn.execute("SET LOCAL extra_float_digits = 1")
    conn.execute("SET LOCAL bytea_output = 'hex'")
    out: dict[str, dict[str, Any]] = {}
    for schema, name, pk in _tables(conn):
        # Byte order ("C") of the text forms: the same on any server, whatever its default
        # collation, and unique because a primary key's text form is.
        keys: list[sql.Composable] = [
            sql.SQL("t.{}::text").format(sql.Identifier(c)) for c in pk
        ] or [sql.SQL("t::text")]
        order = sql.SQL(", ").join(sql.SQL('{} COLLATE "C"').format(k) for k in keys)
        query = sql.SQL(
            "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY {order}), ''))"
            " FROM {table} AS t"
        ).format(order=order, table=sql.Identifier(schema, name))
        row = conn.execute(query).fetchone()
        assert row is not None
        out[f"{schema}.{name}"] = {"rows": int(row[0]), "checksum": str(row[1])}
    return out


def compare(expected: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]]) -> list[str]:
    """Every difference, one sentence each; empty when the two databases hold the same rows."""
    problems = []
    for table, want in sorted(expected.items()):
        got = actual.get(table)
        if got is None:
            problems.append(f"{table}: missing after restore")
        elif got["rows"] != want["rows"]:
            problems.append(f"{table}: {got['rows']} rows, expected {want['rows']}")
        elif got["checksum"] != want["checksum"]:
            problems.append(f"{table}: checksum differs with the same {want['rows']} rows")
    return problems


def user_tables(conn: psycopg.Connection[Any]) -> list[str]:
    return [f"{schema}.{name}" for schema, name, _ in _tables(conn)]
