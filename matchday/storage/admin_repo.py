"""All SQL of the admin side: API keys, the audit log, stock imports.

Every timestamp is written from the caller's injected clock (``to_timestamp``), not the
database's ``now()``, so that tests control lockouts and TOTP time. Values are always bound.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.admin.records import (
    AuditEntry,
    ImportRecord,
    ImportRow,
    KeyInfo,
    KeyRecord,
    RowResult,
)
from matchday.storage.db import StorageConnection


def _epoch(column: str) -> str:
    return f"extract(epoch FROM {column})::float8"


_KEY_COLUMNS = (
    "key_id, name, secret_hash, totp_secret, "
    + ", ".join(_epoch(c) for c in ("created_at", "revoked_at"))
    + ", last_totp_step, failed_attempts, "
    + _epoch("locked_until")
)
_AUDIT_COLUMNS = f"id, {_epoch('at')}, key_id, action, target, request_id, params, outcome, client"
_IMPORT_COLUMNS = (
    "import_id, key_id, content_sha256, status, row_count, "
    f"{_epoch('created_at')}, {_epoch('finished_at')}, errors"
)


class AdminRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- API keys --------------------------------------------------------------------------

    async def insert_key(
        self, key_id: str, name: str, secret_hash: bytes, totp_secret: str, at: float
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO admin_keys (key_id, name, secret_hash, totp_secret, created_at)"
                " VALUES (%s, %s, %s, %s, to_timestamp(%s))",
                (key_id, name, secret_hash, totp_secret, at),
            )

    async def get_key(self, key_id: str) -> KeyRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_KEY_COLUMNS} FROM admin_keys WHERE key_id = %s", (key_id,)
            )
            row = await cur.fetchone()
        if row is None:
            return None
        key_id, name, secret_hash, *rest = row
        return KeyRecord(key_id, name, bytes(secret_hash), *rest)

    async def list_keys(self) -> list[KeyInfo]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT key_id, name, "
                + ", ".join(_epoch(c) for c in ("created_at", "revoked_at", "locked_until"))
                + " FROM admin_keys ORDER BY created_at, key_id"
            )
            return [KeyInfo(*row) for row in await cur.fetchall()]

    async def totp_rows(self) -> list[tuple[str, str]]:
        """(key id, stored TOTP secret) of every key, for re-sealing under a new key."""
        async with self._conn() as conn:
            cur = await conn.execute("SELECT key_id, totp_secret FROM admin_keys ORDER BY key_id")
            return [(str(k), str(t)) for k, t in await cur.fetchall()]

    async def replace_totp(self, key_id: str, expected: str, stored: str) -> bool:
        """Replace a key's stored TOTP secret if it still holds ``expected``."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE admin_keys SET totp_secret = %s WHERE key_id = %s AND totp_secret = %s",
                (stored, key_id, expected),
            )
            return cur.rowcount == 1

    async def revoke_key(self, key_id: str, at: float) -> KeyInfo | None:
        """Revoke once; revoking again keeps the first revocation time."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE admin_keys SET revoked_at = coalesce(revoked_at, to_timestamp(%s))"
                " WHERE key_id = %s RETURNING key_id, name, "
                + ", ".join(_epoch(c) for c in ("created_at", "revoked_at", "locked_until")),
                (at, key_id),
            )
            row = await cur.fetchone()
        return None if row is None else KeyInfo(*row)

    async def accept_step(self, key_id: str, step: int) -> bool:
        """Record ``step`` as the last accepted TOTP step unless it is not newer than it.

        One conditional UPDATE, so two requests racing with the same code cannot both win.
        """
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE admin_keys SET last_totp_step = %s, failed_attempts = 0,"
                " locked_until = NULL"
                " WHERE key_id = %s AND revoked_at IS NULL"
                " AND (last_totp_step IS NULL OR last_totp_step < %s)",
                (step, key_id, step),
            )
            return cur.rowcount == 1

    async def record_failure(
        self, key_id: str, max_failures: int, locked_until: float
    ) -> float | None:
        """Count a failed attempt; the one that reaches ``max_failures`` locks the key until
        ``locked_until`` and restarts the count. Returns the lock's end if it locked now."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE admin_keys SET"
                " locked_until = CASE WHEN failed_attempts + 1 >= %(max)s"
                "   THEN to_timestamp(%(until)s) ELSE locked_until END,"
                " failed_attempts = CASE WHEN failed_attempts + 1 >= %(max)s"
                "   THEN 0 ELSE failed_attempts + 1 END"
                " WHERE key_id = %(key)s"
                " RETURNING failed_attempts = 0",
                {"max": max_failures, "until": locked_until, "key": key_id},
            )
            row = await cur.fetchone()
        return locked_until if row is not None and row[0] else None

    # -- audit log -------------------------------------------------------------------------

    async def insert_audit(
        self,
        at: float,
        key_id: str | None,
        action: str,
        target: str,
        request_id: str | None,
        params: dict[str, Any],
        outcome: str,
        client: str,
    ) -> int:
        async with self._conn() as conn:
            cur = await conn.execute(
                "INSERT INTO admin_audit"
                " (at, key_id, action, target, request_id, params, outcome, client)"
                " VALUES (to_timestamp(%s), %s, %s, %s, %s, %s, %s, %s) RETURNING id",
                (at, key_id, action, target, request_id, Jsonb(params), outcome, client),
            )
            row = await cur.fetchone()
        assert row is not None
        return int(row[0])

    async def recent_audit(self, limit: int, action: str | None = None) -> list[AuditEntry]:
        async with self._conn() as conn:
            if action is None:
                cur = await conn.execute(
                    f"SELECT {_AUDIT_COLUMNS} FROM admin_audit ORDER BY id DESC LIMIT %s",
                    (limit,),
                )
            else:
                cur = await conn.execute(
                    f"SELECT {_AUDIT_COLUMNS} FROM admin_audit WHERE action = %s"
                    " ORDER BY id DESC LIMIT %s",
                    (action, limit),
                )
            return [AuditEntry(*row) for row in await cur.fetchall()]

    # -- stock imports ---------------------------------------------------------------------

    async def existing_skus(self, skus: Sequence[str]) -> set[str]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT sku FROM inventory WHERE sku = ANY(%s::text[])", (list(skus),)
            )
            return {row[0] for row in await cur.fetchall()}

    async def get_import(self, import_id: str) -> ImportRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_IMPORT_COLUMNS} FROM stock_imports WHERE import_id = %s",
                (import_id,),
            )
            row = await cur.fetchone()
        return None if row is None else ImportRecord(*row)

    async def save_rejected(
        self,
        import_id: str,
        key_id: str | None,
        content_sha256: str,
        row_count: int,
        errors: list[Any],
        at: float,
    ) -> None:
        """Record a file refused by validation; a later attempt may replace it, since
        nothing of it was applied. An import already started is never overwritten."""
        async with self._conn() as conn:
            await conn.execute(
                "INSERT INTO stock_imports (import_id, key_id, content_sha256, status,"
                " row_count, created_at, finished_at, errors)"
                " VALUES (%(id)s, %(key)s, %(sha)s, 'rejected', %(n)s, to_timestamp(%(at)s),"
                " to_timestamp(%(at)s), %(errors)s)"
                " ON CONFLICT (import_id) DO UPDATE SET key_id = excluded.key_id,"
                " content_sha256 = excluded.content_sha256, row_count = excluded.row_count,"
                " created_at = excluded.created_at, finished_at = excluded.finished_at,"
                " errors = excluded.errors WHERE stock_imports.status = 'rejected'",
                {
                    "id": import_id,
                    "key": key_id,
                    "sha": content_sha256,
                    "n": row_count,
                    "at": at,
                    "errors": Jsonb(errors),
                },
            )

    async def start_import(
        self,
        import_id: str,
        key_id: str | None,
        content_sha256: str,
        rows: Sequence[ImportRow],
        at: float,
    ) -> bool:
        """Write the validated plan as pending, in one transaction. False when the import
        was started already (by a concurrent caller): nothing is written then."""
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO stock_imports (import_id, key_id, content_sha256, status,"
                " row_count, created_at)"
                " VALUES (%(id)s, %(key)s, %(sha)s, 'pending', %(n)s, to_timestamp(%(at)s))"
                " ON CONFLICT (import_id) DO UPDATE SET key_id = excluded.key_id,"
                " content_sha256 = excluded.content_sha256, status = 'pending',"
                " row_count = excluded.row_count, created_at = excluded.created_at,"
                " finished_at = NULL, errors = '[]'::jsonb"
                " WHERE stock_imports.status = 'rejected'",
                {"id": import_id, "key": key_id, "sha": content_sha256, "n": len(rows), "at": at},
            )
            if cur.rowcount != 1:
                return False
            await conn.execute(
                "INSERT INTO stock_import_rows (import_id, line, sku, action, quantity, status)"
                " SELECT %s, u.*, 'pending'"
                " FROM unnest(%s::int[], %s::text[], %s::text[], %s::bigint[]) AS u",
                (
                    import_id,
                    [r.line for r in rows],
                    [r.sku for r in rows],
                    [r.action for r in rows],
                    [r.quantity for r in rows],
                ),
            )
            return True

    async def import_rows(self, import_id: str, pending_only: bool = False) -> list[RowResult]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT line, sku, action, quantity, status, result FROM stock_import_rows"
                " WHERE import_id = %s AND (NOT %s OR status = 'pending') ORDER BY line",
                (import_id, pending_only),
            )
            return [RowResult(*row) for row in await cur.fetchall()]

    async def record_rows(
        self, import_id: str, answers: Sequence[tuple[int, str, dict[str, Any]]]
    ) -> None:
        """(line, applied|refused, result) for rows the engine answered."""
        if not answers:
            return
        lines, statuses, results = zip(*answers, strict=True)
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE stock_import_rows r SET status = a.status, result = a.result"
                " FROM unnest(%s::int[], %s::text[], %s::jsonb[]) AS a(line, status, result)"
                " WHERE r.import_id = %s AND r.line = a.line",
                (list(lines), list(statuses), [Jsonb(r) for r in results], import_id),
            )

    async def finish_import(
        self, import_id: str, status: str, errors: list[Any], at: float
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE stock_imports SET status = %s, errors = %s,"
                " finished_at = to_timestamp(%s) WHERE import_id = %s",
                (status, Jsonb(errors), at, import_id),
            )

    # -- internals -------------------------------------------------------------------------

    def _conn(self) -> StorageConnection:
        return StorageConnection(self.pool, "admin")
