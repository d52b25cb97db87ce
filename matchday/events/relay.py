"""Outbox relay: committed inventory changes to a Redis Stream, at least once, in order.

Rows are read in id order and deleted only after Redis accepted them, inside one
transaction that holds an advisory lock: two relays never interleave, so per-SKU order holds
(a SKU's rows are committed in order by its single owning shard). A crash between XADD and
DELETE re-sends rows: consumers de-duplicate by ``outbox_id``.

The relay also maintains the availability hash that product pages read, so browsing never
touches the inventory actors.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

log = logging.getLogger(__name__)

_RELAY_LOCK = 0x72656C6179  # "relay"


class OutboxRelay:
    def __init__(
        self,
        pool: AsyncConnectionPool,
        redis: aioredis.Redis,
        *,
        stream: str,
        availability_key: str,
        maxlen: int = 1_000_000,
        batch: int = 1_000,
    ) -> None:
        self.pool = pool
        self.redis = redis
        self.stream = stream
        self.availability_key = availability_key
        self.maxlen = maxlen
        self.batch = batch
        self.published = 0
        self.failures = 0

    async def run_once(self) -> int:
        """Publish up to one batch; return how many rows went out (0: nothing to do)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_RELAY_LOCK,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return 0  # another relay is working
            cur = await conn.execute(
                "SELECT id, sku, events, on_hand, reserved, sold, extract(epoch FROM at)::float8"
                " FROM inventory_outbox ORDER BY id LIMIT %s",
                (self.batch,),
            )
            rows = await cur.fetchall()
            if not rows:
                return 0
            await self._publish(rows)
            await conn.execute(
                "DELETE FROM inventory_outbox WHERE id = ANY(%s::bigint[])", ([r[0] for r in rows],)
            )
        self.published += len(rows)
        return len(rows)

    async def _publish(self, rows: list[tuple[Any, ...]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        availability: dict[Any, Any] = {}  # redis-py types keys invariantly
        for outbox_id, sku, events, on_hand, reserved, sold, at in rows:
            available = on_hand - reserved - sold
            availability[sku] = available
            pipe.xadd(
                self.stream,
                {
                    "outbox_id": outbox_id,
                    "sku": sku,
                    "events": json.dumps(events, separators=(",", ":")),
                    "on_hand": on_hand,
                    "reserved": reserved,
                    "sold": sold,
                    "available": available,
                    "at": at,
                },
                maxlen=self.maxlen,
                approximate=True,
            )
        pipe.hset(self.availability_key, mapping=availability)
        await pipe.execute()

    async def run(self, idle_s: float = 0.05, max_backoff_s: float = 5.0) -> None:
        """Forever: drain, nap when idle, back off while Redis or PostgreSQL is down."""
        backoff = idle_s
        while True:
            try:
                n = await self.run_once()
                backoff = idle_s
                if n:
                    continue
            except Exception as exc:
                self.failures += 1
                backoff = min(max_backoff_s, backoff * 2)
                log.warning("outbox relay failed (%r); retrying in %.2fs", exc, backoff)
            await asyncio.sleep(backoff)

    async def backlog(self) -> int:
        async with self.pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM inventory_outbox")
            row = await cur.fetchone()
            return int(row[0]) if row else 0
