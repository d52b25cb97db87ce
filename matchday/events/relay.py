"""Outbox relay: committed inventory changes to a Redis Stream, at least once, in order.

An outbox row names one batch of a shard (010_compact_journal.sql) and the counters it left
per SKU; the relay derives each SKU's events from the batch's journal entries
(``matchday.inventory.journal.events_of``) and adds one stream entry per SKU of the batch.
Rows are read in id order and deleted only after Redis accepted them, inside one
transaction that holds an advisory lock: two relays never interleave, so per-SKU order holds
(a SKU's batches are committed in order by its single owning shard). A crash between XADD
and DELETE re-sends rows: consumers de-duplicate by ``(outbox_id, sku)``. Rows written
before 010, with their events stored, are relayed first, from ``inventory_outbox_0``.

The relay also maintains the availability hash that product pages read, so browsing never
touches the inventory actors.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from matchday.inventory.journal import Event, events_of

log = logging.getLogger(__name__)

_RELAY_LOCK = 0x72656C6179  # "relay"

# The outbox rows to publish and their batches' entries, joined with each reservation's cart.
_ENTRIES_SQL = """
SELECT o.id, e.kind, e.rid, e.sku, e.ref, e.qty, e.before, e.after, e.expires, e.on_hand,
    e.sold, e.pcl, e.lst, e.cap, r.cart_id
FROM inventory_outbox o
JOIN inventory_batches b ON b.id = o.batch
CROSS JOIN LATERAL unnest(b.kinds, b.request_ids, b.skus, b.refs, b.qtys, b.avail_before,
                          b.avail_after, b.expires, b.on_hand, b.sold, b.pcl, b.lst, b.cap)
    WITH ORDINALITY AS e(kind, rid, sku, ref, qty, before, after, expires, on_hand, sold, pcl,
                         lst, cap, pos)
LEFT JOIN reservations r ON r.reservation_id = e.ref
WHERE o.id = ANY(%s::bigint[])
ORDER BY o.id, e.pos
"""


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
        self._legacy_done = False

    async def run_once(self) -> int:
        """Publish up to one batch; return how many rows went out (0: nothing to do)."""
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_RELAY_LOCK,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return 0  # another relay is working
            if not self._legacy_done:
                n = await self._relay_legacy(conn)
                if n:
                    self.published += n
                    return n
                self._legacy_done = True
            cur = await conn.execute(
                "SELECT id, skus, on_hand, reserved, sold, extract(epoch FROM at)::float8"
                " FROM inventory_outbox ORDER BY id LIMIT %s",
                (self.batch,),
            )
            rows = await cur.fetchall()
            if not rows:
                return 0
            events = await self._events(conn, [r[0] for r in rows])
            await self._publish(
                (
                    outbox_id,
                    sku,
                    events[outbox_id].get(sku, []),
                    on_hand[i],
                    reserved[i],
                    sold[i],
                    at,
                )
                for outbox_id, skus, on_hand, reserved, sold, at in rows
                for i, sku in enumerate(skus)
            )
            await conn.execute(
                "DELETE FROM inventory_outbox WHERE id = ANY(%s::bigint[])", ([r[0] for r in rows],)
            )
        self.published += len(rows)
        return len(rows)

    async def _events(
        self, conn: psycopg.AsyncConnection[Any], ids: list[int]
    ) -> dict[int, dict[str, list[Event]]]:
        """Per outbox row, per SKU, the events its batch's entries announce."""
        cur = await conn.execute(_ENTRIES_SQL, (ids,))
        rows = await cur.fetchall()
        skus = sorted({r[3] for r in rows})
        cur = await conn.execute(
            "SELECT sku, low_stock_threshold FROM inventory WHERE sku = ANY(%s::text[])", (skus,)
        )
        thresholds = dict(await cur.fetchall())
        by_row: dict[int, list[Sequence[Any]]] = {i: [] for i in ids}
        carts: dict[str, str] = {}
        for r in rows:
            by_row[r[0]].append(r[1:14])
            if r[14] is not None:
                carts[r[4]] = r[14]
        return {i: events_of(entries, carts, thresholds) for i, entries in by_row.items()}

    async def _relay_legacy(self, conn: psycopg.AsyncConnection[Any]) -> int:
        """Rows written before 010, events and all: they go out first, as they are."""
        cur = await conn.execute(
            "SELECT id, sku, events, on_hand, reserved, sold, extract(epoch FROM at)::float8"
            " FROM inventory_outbox_0 ORDER BY id LIMIT %s",
            (self.batch,),
        )
        rows = await cur.fetchall()
        if rows:
            await self._publish(rows)
            await conn.execute(
                "DELETE FROM inventory_outbox_0 WHERE id = ANY(%s::bigint[])",
                ([r[0] for r in rows],),
            )
        return len(rows)

    async def _publish(self, rows: Any) -> None:
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
        if availability:
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
            cur = await conn.execute(
                "SELECT (SELECT count(*) FROM inventory_outbox)"
                " + (SELECT count(*) FROM inventory_outbox_0)"
            )
            row = await cur.fetchone()
            return int(row[0]) if row else 0
