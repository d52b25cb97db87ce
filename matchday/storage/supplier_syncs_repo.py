"""All SQL of bulk supplier syncs: the queue, its leases, the per-line record, the report.

A sync's lines are written once, when it is queued (COPY), keyed by their line (a JSON
position or a CSV file line, increasing). A line's ``result`` is set once (``WHERE result IS
NULL``) and the counters grow only by the rows that statement changed, so a chunk recorded
twice after a crash counts once. ``cursor`` is the last line of the last chunk recorded whole.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.storage.db import StorageConnection
from matchday.storage.suppliers_repo import epoch
from matchday.suppliers.model import FeedLine, LineResult, Plan, SyncRecord

_SYNC_COLUMNS = (
    "sync_id, supplier_id, source, status, forced, content_sha256, "
    f"{epoch('as_of')}, total_lines, cursor, applied, unchanged, rejected, queued_by, "
    f"{epoch('created_at')}, {epoch('started_at')}, {epoch('finished_at')}, report"
)
# Rejected lines and drifts kept in a report: the worst ones; all of them stay in the lines.
REPORT_ROWS = 100


class SyncsRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def create(
        self, record: SyncRecord, lines: Sequence[FeedLine]
    ) -> tuple[SyncRecord, bool]:
        """Queue a sync with its lines; (the open sync of the same content, False) instead
        when one is queued or running for this supplier already."""
        r = record
        async with self._conn() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(
                        f"INSERT INTO supplier_syncs ({_INSERT_COLUMNS}) VALUES"
                        " (%s, %s, %s, %s, %s, %s, to_timestamp(%s), %s, %s,"
                        " to_timestamp(%s), to_timestamp(%s), %s)",
                        (
                            r.sync_id,
                            r.supplier_id,
                            r.source,
                            r.status,
                            r.forced,
                            r.content_sha256,
                            r.as_of,
                            r.total_lines,
                            r.queued_by,
                            r.created_at,
                            r.finished_at,
                            Jsonb(r.report) if r.report is not None else None,
                        ),
                    )
                    await _copy_lines(conn, r.sync_id, lines)
            except psycopg.errors.UniqueViolation:
                cur = await conn.execute(
                    f"SELECT {_SYNC_COLUMNS} FROM supplier_syncs WHERE supplier_id = %s"
                    " AND content_sha256 = %s AND status IN ('queued', 'running')",
                    (r.supplier_id, r.content_sha256),
                )
                row = await cur.fetchone()
                if row is None:  # it finished meanwhile: queue this one after all
                    return await self.create(record, lines)
                return _sync(row), False
        return record, True

    async def get(self, sync_id: str) -> SyncRecord | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_SYNC_COLUMNS} FROM supplier_syncs WHERE sync_id = %s", (sync_id,)
            )
            row = await cur.fetchone()
        return None if row is None else _sync(row)

    async def recent(self, supplier_id: str | None, limit: int) -> list[SyncRecord]:
        where = "WHERE supplier_id = %s" if supplier_id else ""
        params: list[Any] = [supplier_id] if supplier_id else []
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_SYNC_COLUMNS} FROM supplier_syncs {where}"
                " ORDER BY created_at DESC, sync_id LIMIT %s",
                [*params, limit],
            )
            return [_sync(row) for row in await cur.fetchall()]

    async def claim(
        self, owner: str, now: float, lease_s: float, *, forced_only: bool
    ) -> SyncRecord | None:
        """Lease the next sync to run: forced ones first, then the oldest; a running one
        whose lease ran out (its runner died) is resumed. None when nothing may run."""
        forced = "AND forced" if forced_only else ""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE supplier_syncs SET status = 'running', lease_owner = %s,"
                " lease_until = to_timestamp(%s),"
                " started_at = coalesce(started_at, to_timestamp(%s))"
                " WHERE sync_id = (SELECT sync_id FROM supplier_syncs"
                "   WHERE (status = 'queued' OR (status = 'running'"
                "          AND (lease_until IS NULL OR lease_until < to_timestamp(%s))))"
                f"  {forced} ORDER BY forced DESC, created_at, sync_id"
                "   LIMIT 1 FOR UPDATE SKIP LOCKED)"
                f" RETURNING {_SYNC_COLUMNS}",
                (owner, now + lease_s, now, now),
            )
            row = await cur.fetchone()
        return None if row is None else _sync(row)

    async def renew(self, sync_id: str, owner: str, until: float) -> str | None:
        """Extend the lease; the sync's status, or None when another runner holds it."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE supplier_syncs SET lease_until = to_timestamp(%s)"
                " WHERE sync_id = %s AND lease_owner = %s RETURNING status",
                (until, sync_id, owner),
            )
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def release(self, sync_id: str, owner: str) -> None:
        """Give a running sync back to the queue (the shop got busy): it keeps its cursor."""
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE supplier_syncs SET lease_owner = NULL, lease_until = NULL"
                " WHERE sync_id = %s AND lease_owner = %s",
                (sync_id, owner),
            )

    async def pending_lines(
        self, sync_id: str, after: int, limit: int
    ) -> list[tuple[FeedLine, Plan | None]]:
        """Lines past ``after`` without an outcome, with the plans stored for them."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT line, supplier_sku, kind, qty, plan_units, plan_sold"
                " FROM supplier_sync_lines WHERE sync_id = %s AND line > %s"
                " AND result IS NULL ORDER BY line LIMIT %s",
                (sync_id, after, limit),
            )
            rows = await cur.fetchall()
        return [
            (FeedLine(r[0], r[1], r[2], r[3]), None if r[4] is None else Plan(r[4], r[5]))
            for r in rows
        ]

    async def store_plans(self, sync_id: str, plans: Mapping[int, Plan]) -> None:
        """``plans`` by file line (FeedLine.line), stored before the engine is called."""
        if not plans:
            return
        lines = list(plans)
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE supplier_sync_lines l SET plan_units = u.units, plan_sold = u.sold"
                " FROM unnest(%s::int[], %s::int[], %s::bigint[]) AS u(line, units, sold)"
                " WHERE l.sync_id = %s AND l.line = u.line AND l.plan_units IS NULL",
                (lines, [plans[n].units for n in lines], [plans[n].sold for n in lines], sync_id),
            )

    async def record(
        self, sync_id: str, owner: str, results: Sequence[LineResult], cursor: int | None
    ) -> bool:
        """Store each line's outcome once and count it; move the cursor when given. False
        (and nothing stored) when this runner no longer holds the sync."""
        lines = [r.line for r in results]
        docs = [Jsonb(r.record()) for r in results]
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT 1 FROM supplier_syncs WHERE sync_id = %s AND lease_owner = %s"
                " AND status = 'running' FOR UPDATE",
                (sync_id, owner),
            )
            if await cur.fetchone() is None:
                return False
            cur = await conn.execute(
                "UPDATE supplier_sync_lines l SET result = u.result"
                " FROM unnest(%s::int[], %s::jsonb[]) AS u(line, result)"
                " WHERE l.sync_id = %s AND l.line = u.line AND l.result IS NULL"
                " RETURNING u.result->>'status'",
                (lines, docs, sync_id),
            )
            counts = {"applied": 0, "unchanged": 0, "rejected": 0}
            for (status,) in await cur.fetchall():
                counts[status] += 1
            await conn.execute(
                "UPDATE supplier_syncs SET applied = applied + %s, unchanged = unchanged + %s,"
                " rejected = rejected + %s, cursor = greatest(cursor, coalesce(%s, cursor))"
                " WHERE sync_id = %s",
                (counts["applied"], counts["unchanged"], counts["rejected"], cursor, sync_id),
            )
        return True

    async def finish(
        self, sync_id: str, status: str, report: dict[str, Any], at: float, owner: str | None
    ) -> bool:
        """End an open sync (``owner`` None: whoever holds it, for a cancel)."""
        held = "AND lease_owner = %s" if owner is not None else ""
        params: list[Any] = [status, Jsonb(report), at, sync_id]
        if owner is not None:
            params.append(owner)
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE supplier_syncs SET status = %s, report = %s,"
                " finished_at = to_timestamp(%s), lease_owner = NULL, lease_until = NULL"
                f" WHERE sync_id = %s AND status IN ('queued', 'running') {held}",
                params,
            )
            return bool(cur.rowcount == 1)

    async def force(self, sync_id: str) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE supplier_syncs SET forced = true"
                " WHERE sync_id = %s AND status IN ('queued', 'running')",
                (sync_id,),
            )
            return bool(cur.rowcount == 1)

    async def report(self, sync_id: str) -> dict[str, Any]:
        """Rejections by reason with the first of them, and the largest drifts."""
        async with self._conn() as conn:
            cur = await conn.execute(_REASONS_SQL, (sync_id,))
            reasons = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            cur = await conn.execute(_REJECTED_SQL, (sync_id, REPORT_ROWS))
            rejected = [r[0] for r in await cur.fetchall()]
            cur = await conn.execute(_DRIFT_TOTALS_SQL, (sync_id,))
            drifted, total = await cur.fetchone() or (0, 0)
            cur = await conn.execute(_DRIFT_SQL, (sync_id, REPORT_ROWS))
            drift = [
                {
                    "sku": r[0],
                    "supplier_sku": r[1],
                    "matchday": r[2],
                    "supplier": r[3],
                    "drift": r[4],
                }
                for r in await cur.fetchall()
            ]
        return {
            "rejected_by_reason": reasons,
            "rejected_lines": rejected,
            "drift": {"skus": int(drifted or 0), "units": int(total or 0), "largest": drift},
        }

    def _conn(self) -> Any:
        return StorageConnection(self.pool, "supplier syncs")


_INSERT_COLUMNS = (
    "sync_id, supplier_id, source, status, forced, content_sha256, as_of, total_lines,"
    " queued_by, created_at, finished_at, report"
)
_RESULT = "result->>'status' = 'rejected'"
_REASONS_SQL = (
    "SELECT result->>'reason', count(*) FROM supplier_sync_lines"
    f" WHERE sync_id = %s AND {_RESULT} GROUP BY 1 ORDER BY 2 DESC"
)
_REJECTED_SQL = (
    "SELECT result FROM supplier_sync_lines"
    f" WHERE sync_id = %s AND {_RESULT} ORDER BY line LIMIT %s"
)
_DRIFT = "(result->>'drift')::bigint"
_DRIFT_TOTALS_SQL = (
    f"SELECT count(*), sum(abs({_DRIFT})) FROM supplier_sync_lines"
    f" WHERE sync_id = %s AND {_DRIFT} <> 0"
)
_DRIFT_SQL = (
    "SELECT result->>'sku', supplier_sku, (result->>'before')::bigint, qty, "
    f"{_DRIFT} FROM supplier_sync_lines WHERE sync_id = %s AND {_DRIFT} <> 0"
    f" ORDER BY abs({_DRIFT}) DESC, line LIMIT %s"
)


async def _copy_lines(
    conn: psycopg.AsyncConnection[Any], sync_id: str, lines: Sequence[FeedLine]
) -> None:
    async with conn.cursor().copy(
        "COPY supplier_sync_lines (sync_id, line, supplier_sku, kind, qty) FROM STDIN"
    ) as copy:
        for ln in lines:
            await copy.write_row((sync_id, ln.line, ln.supplier_sku, ln.kind, ln.qty))


def _sync(row: Sequence[Any]) -> SyncRecord:
    return SyncRecord(*row)
