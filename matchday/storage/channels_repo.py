"""All SQL of marketplace channels: their rows and keys, and what they read of stock.

Stock is only read here (channel_stock and inventory, as of the engine's last group
commit); it is written by the engine alone (inventory_batch.BATCH_SQL_CHANNELS).
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool

from matchday.channels.model import Channel, ChannelStockView
from matchday.storage.db import StorageConnection

_COLUMNS = (
    "channel_id, name, active, extract(epoch FROM created_at)::float8,"
    " extract(epoch FROM updated_at)::float8, extract(epoch FROM key_issued_at)::float8"
)
_STOCK = (
    "SELECT i.sku, %(channel)s, i.on_hand - i.reserved - i.sold, c.max_units, c.max_percent,"
    " coalesce(c.max_units, i.on_hand * c.max_percent / 100), coalesce(c.held, 0),"
    " coalesce(c.sold, 0) FROM inventory i"
    " LEFT JOIN channel_stock c ON c.sku = i.sku AND c.channel_id = %(channel)s"
)


class ChannelsRepository:
    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool

    async def insert(self, c: Channel, hashed: bytes) -> bool:
        """False if the id is taken (nothing changed)."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "INSERT INTO channels (channel_id, name, key_hash, active, created_at,"
                " updated_at, key_issued_at) VALUES (%s, %s, %s, %s, to_timestamp(%s),"
                " to_timestamp(%s), to_timestamp(%s)) ON CONFLICT (channel_id) DO NOTHING",
                (
                    c.channel_id,
                    c.name,
                    hashed,
                    c.active,
                    c.created_at,
                    c.updated_at,
                    c.key_issued_at,
                ),
            )
            return bool(cur.rowcount == 1)

    async def get(self, channel_id: str) -> Channel | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"SELECT {_COLUMNS} FROM channels WHERE channel_id = %s", (channel_id,)
            )
            row = await cur.fetchone()
        return None if row is None else Channel(*row)

    async def channels(self) -> list[Channel]:
        async with self._conn() as conn:
            cur = await conn.execute(f"SELECT {_COLUMNS} FROM channels ORDER BY channel_id")
            return [Channel(*row) for row in await cur.fetchall()]

    async def key_of(self, channel_id: str) -> tuple[bool, bytes] | None:
        """(active, key hash) of a channel, or None."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT active, key_hash FROM channels WHERE channel_id = %s", (channel_id,)
            )
            row = await cur.fetchone()
        return None if row is None else (bool(row[0]), bytes(row[1]))

    async def set_key(self, channel_id: str, hashed: bytes, at: float) -> Channel | None:
        return await self._update(
            "key_hash = %s, key_issued_at = to_timestamp(%s)", (hashed, at), channel_id, at
        )

    async def set_active(self, channel_id: str, active: bool, at: float) -> Channel | None:
        return await self._update("active = %s", (active,), channel_id, at)

    async def stock(self, channel_id: str, skus: list[str] | None) -> list[ChannelStockView]:
        """Each SKU of ``skus`` that exists, or every SKU the channel has a share of."""
        params: dict[str, Any] = {"channel": channel_id, "skus": skus}
        where = "i.sku = ANY(%(skus)s::text[])" if skus is not None else "c.sku IS NOT NULL"
        async with self._conn() as conn:
            cur = await conn.execute(f"{_STOCK} WHERE {where} ORDER BY i.sku LIMIT 1000", params)
            return [ChannelStockView(*row) for row in await cur.fetchall()]

    async def holder(self, reservation_id: str) -> tuple[str | None, str] | None:
        """(channel, SKU) of a reservation (channel None: the shop's), or None."""
        async with self._conn() as conn:
            cur = await conn.execute(
                "SELECT channel_id, sku FROM reservations WHERE reservation_id = %s",
                (reservation_id,),
            )
            row = await cur.fetchone()
        return None if row is None else (row[0], row[1])

    async def _update(
        self, sets: str, values: tuple[Any, ...], channel_id: str, at: float
    ) -> Channel | None:
        async with self._conn() as conn:
            cur = await conn.execute(
                f"UPDATE channels SET {sets}, updated_at = to_timestamp(%s)"
                f" WHERE channel_id = %s RETURNING {_COLUMNS}",
                (*values, at, channel_id),
            )
            row = await cur.fetchone()
        return None if row is None else Channel(*row)

    def _conn(self) -> Any:
        return StorageConnection(self.pool, "channels")
