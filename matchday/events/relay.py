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

What a run costs (issue 12; ``python -m bench.relay``): an idle run is one PostgreSQL
statement outside any transaction; a busy run hands all its stream entries to Redis in one
script call (``_PUBLISH_LUA``) rather than packing an XADD per entry in Python; and ``run``
waits ``idle_s`` after any run that was not full, so under load a run carries what came in
``idle_s`` instead of the one or two batches committed while the previous run worked.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import psycopg
import redis.asyncio as aioredis
from psycopg_pool import AsyncConnectionPool

from matchday.inventory.journal import events_text

log = logging.getLogger(__name__)

_RELAY_LOCK = 0x72656C6179  # "relay"

# An idle run is this one statement, without a transaction.
_ANY_SQL = "SELECT EXISTS (SELECT 1 FROM inventory_outbox)"

_ROWS_SQL = """
SELECT id, skus, on_hand, reserved, sold, extract(epoch FROM at)::float8
FROM inventory_outbox
WHERE (SELECT pg_try_advisory_xact_lock(%s))
ORDER BY id LIMIT %s
"""

# Those rows' batches, one row each: the journal's arrays as stored, each batch's carts (since
# 019; ``_CARTS_SQL`` reads an older batch's from its reservations) and its SKUs' low-stock
# thresholds. The relay zips the arrays itself. Unnesting them here, an entry's row and its
# join cost PostgreSQL 1.7-1.9 us per entry. The arrays cost 0.6, read in binary, and the
# relay parsed them in 0.6 us where it parsed the rows in 0.8 (2026-12-05, 256,000 entries).
_BATCHES_SQL = """
SELECT o.id, b.kinds, b.request_ids, b.skus, b.refs, b.qtys, b.avail_before, b.avail_after,
    b.expires, b.on_hand, b.sold, b.pcl, b.lst, b.cap, b.carts,
    ARRAY(SELECT i.sku FROM inventory i WHERE i.sku = ANY(b.skus) ORDER BY i.sku),
    ARRAY(SELECT i.low_stock_threshold FROM inventory i WHERE i.sku = ANY(b.skus)
          ORDER BY i.sku)
FROM inventory_outbox o
JOIN inventory_batches b ON b.id = o.batch
WHERE o.id = ANY(%s::bigint[])
ORDER BY o.id
"""
_CARTS_SQL = (
    "SELECT reservation_id, cart_id FROM reservations WHERE reservation_id = ANY(%s::text[])"
)

# The stream entries and the availability of one run (``_publish``), added in order. Each
# entry's events (JSON text already) come as arguments of their own after the document: inside
# it, they were escaped by the relay and parsed again by Redis, ~1 us per reserve of the two
# processes' CPU at 256 callers (perf, 2026-12-05).
_PUBLISH_LUA = """
local doc = cjson.decode(ARGV[2])
for i, e in ipairs(doc[1]) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'outbox_id', e[1], 'sku', e[2],
    'events', ARGV[2 + i], 'on_hand', e[3], 'reserved', e[4], 'sold', e[5],
    'available', e[6], 'at', e[7])
end
local avail = doc[2]
for i = 1, #avail, 2 do
  redis.call('HSET', KEYS[2], avail[i], avail[i + 1])
end
return #doc[1]
"""
_CHUNK = 1_000  # entries per script call: Redis serves no one else while a call runs

# json.dumps with separators builds an encoder per call; these are built once.
_compact = json.JSONEncoder(separators=(",", ":")).encode
_compact_utf8 = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_DELETE_SQL = "DELETE FROM inventory_outbox WHERE id = ANY(%s::bigint[])"


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
        self._script: Any = redis.register_script(_PUBLISH_LUA)

    async def run_once(self) -> int:
        """Publish up to one batch; return how many rows went out (0: nothing to do).

        An idle run is one PostgreSQL round trip (psycopg's pipeline mode, tried for the
        rest, cost more CPU than the trips it saved); a busy one is that, five more in a
        transaction (rows under the lock, their batches, the delete) and one to Redis.
        """
        if not self._legacy_done:
            if n := await self._run_legacy():
                return n
            self._legacy_done = True
        async with self.pool.connection() as conn:
            await conn.set_autocommit(True)
            try:
                return await self._relay(conn)
            finally:
                if not conn.broken:
                    await conn.set_autocommit(False)

    async def _relay(self, conn: psycopg.AsyncConnection[Any]) -> int:
        cur = await conn.execute(_ANY_SQL)
        found = await cur.fetchone()
        if not found or not found[0]:
            return 0
        async with conn.transaction():
            cur = await conn.execute(_ROWS_SQL, (_RELAY_LOCK, self.batch))
            rows = await cur.fetchall()
            if not rows:
                return 0  # another relay is working
            ids = [r[0] for r in rows]
            cur = await conn.execute(_BATCHES_SQL, (ids,), binary=True)
            batches = await cur.fetchall()
            carts = await self._carts_before_019(conn, batches)
            await self._publish(self._stream_rows(rows, batches, carts))
            await conn.execute(_DELETE_SQL, (ids,))
        self.published += len(rows)
        return len(rows)

    @staticmethod
    async def _carts_before_019(
        conn: psycopg.AsyncConnection[Any], batches: list[Any]
    ) -> dict[str, str]:
        """The carts of the holds in batches written before 019, which store none."""
        refs = [ref for b in batches if b[14] is None for ref in b[4] if ref is not None]
        if not refs:
            return {}
        cur = await conn.execute(_CARTS_SQL, (refs,))
        return {ref: cart for ref, cart in await cur.fetchall()}

    @staticmethod
    def _stream_rows(rows: list[Any], batches: list[Any], old_carts: dict[str, str]) -> Any:
        """(outbox id, sku, events, on hand, reserved, sold, at) per SKU of each row."""
        by_row = {b[0]: b for b in batches}
        for outbox_id, skus, on_hand, reserved, sold, at in rows:
            events: dict[str, str] = {}
            b = by_row.get(outbox_id)
            if b is not None:
                refs, carts = b[4], b[14]
                if carts is None:
                    held = old_carts
                else:
                    held = {r: c for r, c in zip(refs, carts, strict=True) if c is not None}
                entries = zip(*b[1:14], strict=True)  # (kind, rid, sku, ref, qty, ..., cap)
                events = events_text(entries, held, dict(zip(b[15], b[16], strict=True)))
            for i, sku in enumerate(skus):
                yield outbox_id, sku, events.get(sku, "[]"), on_hand[i], reserved[i], sold[i], at

    async def _run_legacy(self) -> int:
        async with self.pool.connection() as conn, conn.transaction():
            cur = await conn.execute("SELECT pg_try_advisory_xact_lock(%s)", (_RELAY_LOCK,))
            row = await cur.fetchone()
            if not row or not row[0]:
                return 0  # another relay is working
            n = await self._relay_legacy(conn)
        self.published += n
        return n

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
        """Add a stream entry per row and set each SKU's availability, in one script call.

        Each value is sent as the text redis-py's XADD sent (``repr`` of a number), in one
        JSON document but each entry's events, which follow it as arguments of their own;
        so the entries are byte for byte what they were. The script's XADDs
        run in Redis instead of packing and parsing one command per entry here (measured:
        about 100 us of the relay's CPU per entry, 2026-12-02; bench/relay.py).
        """
        entries = []
        texts = []
        for outbox_id, sku, events, on_hand, reserved, sold, at in rows:
            available = repr(on_hand - reserved - sold)
            entries.append(
                (
                    repr(outbox_id),
                    sku,
                    repr(on_hand),
                    repr(reserved),
                    repr(sold),
                    available,
                    repr(at),
                )
            )
            texts.append(events if isinstance(events, str) else _compact(events))  # pre-010
        for n in range(0, len(entries), _CHUNK):
            chunk = entries[n : n + _CHUNK]
            latest = {e[1]: e[5] for e in chunk}  # a SKU's last entry has its availability
            flat = [v for kv in latest.items() for v in kv]
            await self._script(
                keys=[self.stream, self.availability_key],
                args=[self.maxlen, _compact_utf8([chunk, flat]), *texts[n : n + _CHUNK]],
            )

    async def run(self, idle_s: float = 0.05, max_backoff_s: float = 5.0) -> None:
        """Forever: drain, nap when idle, back off while Redis or PostgreSQL is down."""
        backoff = idle_s
        while True:
            try:
                n = await self.run_once()
                backoff = idle_s
                if n >= self.batch:
                    continue  # more is waiting
                # A run that was not full took all there was: the next waits ``idle_s``, so
                # under load a run carries what came in ``idle_s`` rather than the few rows
                # committed while the last run worked, and no empty run follows each one.
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
