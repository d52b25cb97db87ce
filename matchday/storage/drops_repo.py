"""All SQL of the waiting room's drops (014_drops.sql), and the stock levels it reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool

from matchday.domain.errors import Conflict, InvalidInput
from matchday.storage.db import StorageConnection
from matchday.waitingroom.models import CLOSED, Drop

_COLUMNS = (
    "drop_id, name, skus, state, extract(epoch FROM opens_at), rate_per_s, pass_ttl_s,"
    " pow_bits, address_limit, extract(epoch FROM created_at), origin, rate_source"
)


def _drop(row: tuple[Any, ...]) -> Drop:
    return Drop(
        drop_id=row[0],
        name=row[1],
        skus=tuple(row[2]),
        state=row[3],
        opens_at=float(row[4]) if row[4] is not None else None,
        rate_per_s=float(row[5]),
        pass_ttl_s=float(row[6]),
        pow_bits=int(row[7]),
        address_limit=int(row[8]),
        created_at=float(row[9]),
        origin=row[10],
        rate_source=row[11],
    )


class DropsRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    def _conn(self) -> StorageConnection:
        return StorageConnection(self.pool, "drops")

    async def create(self, drop: Drop) -> Drop:
        async with self._conn() as conn, conn.transaction():
            row = await self._insert(conn, drop)
            if row is None:  # the same request again: the drop it made
                found = await self._get(conn, drop.drop_id)
                assert found is not None
                return found
            await self._bind(conn, drop)
            return _drop(row)

    async def claim(self, drop: Drop) -> Drop | None:
        try:
            async with self._conn() as conn, conn.transaction():
                row = await self._insert(conn, drop)
                if row is None:
                    return None
                await self._bind(conn, drop)  # rolls the insert back when a SKU is taken
                return _drop(row)
        except (Conflict, InvalidInput):  # a SKU taken meanwhile, or one that does not exist
            return None

    async def live_auto(self) -> list[Drop]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM drops WHERE origin = 'auto' AND state <> 'closed'"
            )
            return [_drop(r) for r in await cur.fetchall()]

    @staticmethod
    async def _insert(conn: psycopg.AsyncConnection[Any], drop: Drop) -> tuple[Any, ...] | None:
        cur = await conn.execute(
            "INSERT INTO drops (drop_id, name, skus, state, opens_at, rate_per_s,"
            " pass_ttl_s, pow_bits, address_limit, created_at, origin, rate_source)"
            " VALUES (%s, %s, %s, %s, to_timestamp(%s), %s, %s, %s, %s, to_timestamp(%s),"
            " %s, %s)"
            f" ON CONFLICT (drop_id) DO NOTHING RETURNING {_COLUMNS}",
            (
                drop.drop_id,
                drop.name,
                list(drop.skus),
                drop.state,
                drop.opens_at,
                drop.rate_per_s,
                drop.pass_ttl_s,
                drop.pow_bits,
                drop.address_limit,
                drop.created_at,
                drop.origin,
                drop.rate_source,
            ),
        )
        return await cur.fetchone()

    async def _bind(self, conn: psycopg.AsyncConnection[Any], drop: Drop) -> None:
        cur = await conn.execute(
            "SELECT s.sku, d.drop_id FROM unnest(%s::text[]) AS s(sku)"
            " LEFT JOIN inventory i ON i.sku = s.sku LEFT JOIN drop_skus d ON d.sku = s.sku"
            " WHERE i.sku IS NULL OR d.sku IS NOT NULL ORDER BY s.sku",
            (list(drop.skus),),
        )
        bad = await cur.fetchall()
        unknown = [sku for sku, other in bad if other is None]
        if unknown:
            raise InvalidInput("skus", f"no such SKU: {', '.join(unknown[:5])}")
        if bad:
            taken = ", ".join(f"{sku} ({other})" for sku, other in bad[:5])
            raise Conflict(f"already in a drop that is not closed: {taken}")
        try:
            await conn.execute(
                "INSERT INTO drop_skus (sku, drop_id) SELECT unnest(%s::text[]), %s",
                (list(drop.skus), drop.drop_id),
            )
        except psycopg.errors.UniqueViolation as exc:  # another drop took one meanwhile
            raise Conflict("a SKU was just put in another drop: try again") from exc

    async def get(self, drop_id: str) -> Drop | None:
        async with self._conn() as conn:
            return await self._get(conn, drop_id)

    @staticmethod
    async def _get(conn: psycopg.AsyncConnection[Any], drop_id: str) -> Drop | None:
        cur = await conn.execute(f"SELECT {_COLUMNS} FROM drops WHERE drop_id = %s", (drop_id,))
        row = await cur.fetchone()
        return _drop(row) if row else None

    async def recent(self, limit: int) -> list[Drop]:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM drops ORDER BY created_at DESC LIMIT %s", (limit,)
            )
            return [_drop(r) for r in await cur.fetchall()]

    async def set_state(self, drop_id: str, state: str, allowed: Sequence[str]) -> Drop | None:
        async with self._conn() as conn, conn.transaction():
            cur = await conn.execute(
                f"UPDATE drops SET state = %s, updated_at = now()"
                f" WHERE drop_id = %s AND state = ANY(%s) RETURNING {_COLUMNS}",
                (state, drop_id, list(allowed)),
            )
            row = await cur.fetchone()
            if row is not None and state == CLOSED:
                await conn.execute("DELETE FROM drop_skus WHERE drop_id = %s", (drop_id,))
            return _drop(row) if row else None

    async def set_rate(self, drop_id: str, rate_per_s: float, source: str) -> Drop | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"UPDATE drops SET rate_per_s = %s, rate_source = %s, updated_at = now()"
                f" WHERE drop_id = %s AND state <> 'closed' RETURNING {_COLUMNS}",
                (rate_per_s, source, drop_id),
            )
            row = await cur.fetchone()
            return _drop(row) if row else None

    async def live_skus(self) -> dict[str, str]:
        async with self._conn() as conn:
            cur = await conn.execute("SELECT sku, drop_id FROM drop_skus")
            return {sku: drop_id for sku, drop_id in await cur.fetchall()}


class InventoryLevels:
    """The waiting room's StockLevels: the engine's durable counters, as of its last group
    commit (a hold or a sale is there once the shopper has its answer)."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def levels(self, skus: Sequence[str]) -> tuple[int, int]:
        async with StorageConnection(self.pool, "inventory") as conn:
            cur = await conn.execute(
                "SELECT coalesce(sum(on_hand - reserved - sold), 0), coalesce(sum(reserved), 0)"
                " FROM inventory WHERE sku = ANY(%s::text[])",
                (list(skus),),
            )
            row = await cur.fetchone()
            assert row is not None
            return int(row[0]), int(row[1])
