"""All SQL of suppliers, secrets, mappings and pushed messages (syncs: supplier_syncs_repo).

Timestamps are written from the caller's injected clock (``to_timestamp``). Inventory is
only read here (the counters a level is compared with); it is written by the engine alone.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Conflict
from matchday.storage.db import StorageConnection
from matchday.suppliers.model import (
    Counters,
    MessageRecord,
    Plan,
    SealedSecrets,
    Supplier,
)
from matchday.suppliers.model import (
    Mapping as SkuMapping,
)


def epoch(column: str) -> str:
    return f"extract(epoch FROM {column})::float8"


_SUPPLIER_COLUMNS = (
    "supplier_id, name, feed_url, feed_format, pull_every_s, max_units, active, "
    f"{epoch('created_at')}, {epoch('updated_at')}, etag, last_modified, "
    f"{epoch('last_pulled_at')}"
)
# What an operator may change with update_supplier (never the id, never a secret).
EDITABLE = frozenset({"name", "feed_url", "feed_format", "pull_every_s", "max_units", "active"})


class SuppliersRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    # -- suppliers ---------------------------------------------------------------------------

    async def insert_supplier(self, s: Supplier, sealed: str, issue_key: str | None) -> bool:
        """False if the id is taken (nothing changed)."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "INSERT INTO suppliers (supplier_id, name, secret_sealed, issue_key, feed_url,"
                " feed_format, pull_every_s, max_units, active, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, to_timestamp(%s),"
                " to_timestamp(%s)) ON CONFLICT (supplier_id) DO NOTHING",
                (
                    s.supplier_id,
                    s.name,
                    sealed,
                    issue_key,
                    s.feed_url,
                    s.feed_format,
                    s.pull_every_s,
                    s.max_units,
                    s.active,
                    s.created_at,
                    s.updated_at,
                ),
            )
            return bool(cur.rowcount == 1)

    async def issued(self, supplier_id: str) -> tuple[str | None, str] | None:
        """(the issue key, the sealed current secret) of a supplier, or None."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT issue_key, secret_sealed FROM suppliers WHERE supplier_id = %s",
                (supplier_id,),
            )
            row = await cur.fetchone()
        return None if row is None else (row[0], row[1])

    async def get_supplier(self, supplier_id: str) -> Supplier | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_SUPPLIER_COLUMNS} FROM suppliers WHERE supplier_id = %s",
                (supplier_id,),
            )
            row = await cur.fetchone()
        return None if row is None else Supplier(*row)

    async def list_suppliers(self) -> list[Supplier]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_SUPPLIER_COLUMNS} FROM suppliers ORDER BY supplier_id"
            )
            return [Supplier(*row) for row in await cur.fetchall()]

    async def update_supplier(
        self, supplier_id: str, changes: Mapping[str, Any], at: float
    ) -> Supplier | None:
        unknown = set(changes) - EDITABLE
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        sets = "".join(f", {name} = %s" for name in changes)
        async with self._conn() as conn:
            cur = await conn.execute(
                f"UPDATE suppliers SET updated_at = to_timestamp(%s){sets}"
                f" WHERE supplier_id = %s RETURNING {_SUPPLIER_COLUMNS}",
                (at, *changes.values(), supplier_id),
            )
            row = await cur.fetchone()
        return None if row is None else Supplier(*row)

    async def sealed_secrets(self, supplier_id: str) -> tuple[bool, SealedSecrets] | None:
        """(active, sealed secrets) of a supplier, or None."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT active, secret_sealed, previous_sealed, "
                f"{epoch('previous_until')} FROM suppliers WHERE supplier_id = %s",
                (supplier_id,),
            )
            row = await cur.fetchone()
        return None if row is None else (bool(row[0]), SealedSecrets(*row[1:]))

    async def rotate_secret(
        self,
        supplier_id: str,
        sealed: str,
        previous_until: float,
        at: float,
        issue_key: str | None,
    ) -> bool:
        """The new secret becomes current; the current one stays valid until
        ``previous_until`` (one rotation's predecessor only). False, and nothing changed,
        when there is no such supplier or ``issue_key`` already issued its current secret."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE suppliers SET previous_sealed = secret_sealed, secret_sealed = %s,"
                " previous_until = to_timestamp(%s), updated_at = to_timestamp(%s),"
                " issue_key = %s WHERE supplier_id = %s"
                " AND (%s::text IS NULL OR issue_key IS DISTINCT FROM %s)",
                (sealed, previous_until, at, issue_key, supplier_id, issue_key, issue_key),
            )
            return bool(cur.rowcount == 1)

    async def sealed_rows(self) -> list[tuple[str, str]]:
        """(supplier id, sealed current secret) of every supplier."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT supplier_id, secret_sealed FROM suppliers ORDER BY supplier_id"
            )
            return [(r[0], r[1]) for r in await cur.fetchall()]

    async def replace_sealed(self, supplier_id: str, expected: str, stored: str) -> bool:
        """Re-sealed under a new key, if the row still holds ``expected`` (compare and set).
        The previous secret of a rotation is dropped: it was sealed under the old key."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "UPDATE suppliers SET secret_sealed = %s, previous_sealed = NULL,"
                " previous_until = NULL WHERE supplier_id = %s AND secret_sealed = %s",
                (stored, supplier_id, expected),
            )
            return bool(cur.rowcount == 1)

    async def record_pull(
        self, supplier_id: str, etag: str | None, last_modified: str | None, at: float
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE suppliers SET etag = coalesce(%s, etag),"
                " last_modified = coalesce(%s, last_modified),"
                " last_pulled_at = to_timestamp(%s) WHERE supplier_id = %s",
                (etag, last_modified, at, supplier_id),
            )

    async def due_pulls(self, now: float) -> list[Supplier]:
        """Active suppliers with a feed whose next scheduled pull is due."""
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_SUPPLIER_COLUMNS} FROM suppliers WHERE active"
                " AND feed_url IS NOT NULL AND pull_every_s IS NOT NULL"
                " AND (last_pulled_at IS NULL"
                "      OR last_pulled_at + make_interval(secs => pull_every_s)"
                "         <= to_timestamp(%s))"
                " ORDER BY last_pulled_at NULLS FIRST",
                (now,),
            )
            return [Supplier(*row) for row in await cur.fetchall()]

    # -- mappings ----------------------------------------------------------------------------

    async def put_mappings(
        self, supplier_id: str, pairs: Sequence[tuple[str, str]], at: float
    ) -> None:
        """Map supplier SKU -> SKU, replacing a supplier SKU's earlier target; all or none.
        :class:`Conflict` when a SKU is already fed through another mapping."""
        try:
            async with self._conn() as conn, conn.transaction():
                for supplier_sku, sku in pairs:
                    await conn.execute(
                        "INSERT INTO supplier_skus (supplier_id, supplier_sku, sku, created_at)"
                        " VALUES (%s, %s, %s, to_timestamp(%s))"
                        " ON CONFLICT (supplier_id, supplier_sku) DO UPDATE SET sku ="
                        " excluded.sku, level_as_of = CASE WHEN supplier_skus.sku ="
                        " excluded.sku THEN supplier_skus.level_as_of END",
                        (supplier_id, supplier_sku, sku, at),
                    )
        except psycopg.errors.UniqueViolation:
            raise Conflict(
                "a SKU in this request is already fed by another supplier SKU: unmap it first"
            ) from None

    async def delete_mapping(self, supplier_id: str, supplier_sku: str) -> bool:
        async with self._conn() as conn:
            cur = await conn.execute(
                "DELETE FROM supplier_skus WHERE supplier_id = %s AND supplier_sku = %s",
                (supplier_id, supplier_sku),
            )
            return bool(cur.rowcount == 1)

    async def mappings(
        self, supplier_id: str, supplier_skus: Collection[str] | None = None
    ) -> dict[str, SkuMapping]:
        """Of the given supplier SKUs (all of the supplier's when None)."""
        where, params = "supplier_id = %s", [supplier_id]
        if supplier_skus is not None:
            where += " AND supplier_sku = ANY(%s::text[])"
            params.append(list(supplier_skus))  # type: ignore[arg-type]
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT supplier_sku, sku, {epoch('level_as_of')} FROM supplier_skus"
                f" WHERE {where} ORDER BY supplier_sku",
                params,
            )
            return {r[0]: SkuMapping(*r) for r in await cur.fetchall()}

    async def note_levels(
        self, supplier_id: str, supplier_skus: Sequence[str], as_of: float
    ) -> None:
        """Levels as of ``as_of`` were applied through these mappings."""
        if not supplier_skus:
            return
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE supplier_skus SET level_as_of ="
                " greatest(level_as_of, to_timestamp(%s))"
                " WHERE supplier_id = %s AND supplier_sku = ANY(%s::text[])",
                (as_of, supplier_id, list(supplier_skus)),
            )

    # -- inventory, read only ----------------------------------------------------------------

    async def counters(self, skus: Collection[str]) -> dict[str, Counters]:
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT sku, on_hand, reserved, sold FROM inventory WHERE sku = ANY(%s::text[])",
                (list(skus),),
            )
            return {r[0]: Counters(int(r[1]), int(r[2]), int(r[3])) for r in await cur.fetchall()}

    # -- pushed messages ---------------------------------------------------------------------

    async def claim_message(
        self, supplier_id: str, message_id: str, sha: str, plans: Mapping[int, Plan], at: float
    ) -> MessageRecord | None:
        """None when this call claimed the id; else the record of whoever did first."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "INSERT INTO supplier_messages (supplier_id, message_id, body_sha256, status,"
                " plans, received_at) VALUES (%s, %s, %s, 'pending', %s, to_timestamp(%s))"
                " ON CONFLICT (supplier_id, message_id) DO NOTHING",
                (supplier_id, message_id, sha, Jsonb(_plans_out(plans)), at),
            )
            if cur.rowcount == 1:
                return None
            cur = await conn.execute(
                "SELECT body_sha256, status, plans, answer FROM supplier_messages"
                " WHERE supplier_id = %s AND message_id = %s",
                (supplier_id, message_id),
            )
            row = await cur.fetchone()
        assert row is not None  # claimed by someone, and message rows are only pruned old
        return MessageRecord(row[0], row[1], _plans_in(row[2]), row[3])

    async def finish_message(
        self, supplier_id: str, message_id: str, answer: dict[str, Any], at: float
    ) -> None:
        async with self._conn() as conn:
            await conn.execute(
                "UPDATE supplier_messages SET status = 'done', answer = %s,"
                " finished_at = to_timestamp(%s) WHERE supplier_id = %s AND message_id = %s",
                (Jsonb(answer), at, supplier_id, message_id),
            )

    async def prune_messages(self, before: float) -> int:
        """Forget answered messages received before ``before`` (far outside the signature
        window, so they cannot be replayed anyway)."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "DELETE FROM supplier_messages WHERE status = 'done'"
                " AND received_at < to_timestamp(%s)",
                (before,),
            )
            return int(cur.rowcount)

    def _conn(self) -> Any:
        return StorageConnection(self.pool, "suppliers")


def _plans_out(plans: Mapping[int, Plan]) -> dict[str, list[int]]:
    return {str(line): [p.units, p.sold] for line, p in plans.items()}


def _plans_in(stored: dict[str, list[int]] | None) -> dict[int, Plan]:
    return {int(line): Plan(int(v[0]), int(v[1])) for line, v in (stored or {}).items()}
