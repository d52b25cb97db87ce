"""The engine's storage as it was from 010 to 017, to fill a database before 018.

``Repository017`` is the shard's repository with the write path and journal look-up of
commit 5071a76 (matchday/storage/inventory_batch.py): every journaled request, reserves
too, writes a key row, ``hashtextextended(request_id, 0)``, and a hold has no batch column.
The shard core runs over it unchanged; the rows it leaves are the rows 017 left for the
same mutations. (Its reservation ids take today's form, a hash of the request id, which
018 does not read: the ids 017 issued are opaque to it alike.)
"""

from __future__ import annotations

import psycopg
from psycopg.errors import UniqueViolation

from matchday.inventory.journal import answers
from matchday.inventory.records import BatchRefused, BatchWrite
from matchday.inventory.wire import WireOutcome
from matchday.storage.inventory_batch import _compact, batch_sql
from matchday.storage.inventory_repo import InventoryRepository, _refusal

BATCH_SQL_017 = """
WITH ep AS (
    SELECT epoch FROM shard_epochs WHERE shard_id = %(shard)s FOR SHARE
), carts_now AS (
    SELECT cart_id, status FROM carts WHERE cart_id = ANY(%(carts)b::text[]) FOR SHARE
), c AS (
    UPDATE inventory AS i SET on_hand = v.on_hand, reserved = v.reserved, sold = v.sold,
        per_customer_limit = v.pcl, low_stock_threshold = v.lst, low_stock_order_cap = v.cap,
        updated_at = now()
    FROM unnest(%(c_sku)b::text[], %(c_on_hand)b::bigint[], %(c_reserved)b::bigint[],
                %(c_sold)b::bigint[], %(c_pcl)b::int[], %(c_lst)b::int[], %(c_cap)b::int[])
        AS v(sku, on_hand, reserved, sold, pcl, lst, cap)
    WHERE i.sku = v.sku AND i.shard_id = %(shard)s
    RETURNING i.sku, i.on_hand, i.reserved, i.sold
), rn AS (
    INSERT INTO reservations (reservation_id, sku, qty, cart_id, customer_id, status,
        order_id, created_at, expires_at, closed_at)
    SELECT v.id, v.sku, v.qty, v.cart, v.customer, v.status, v.order_id,
        to_timestamp(v.created), to_timestamp(v.expires),
        CASE WHEN v.status = 'held' THEN NULL ELSE now() END
    FROM unnest(%(rn_id)b::text[], %(rn_sku)b::text[], %(rn_qty)b::int[], %(rn_cart)b::text[],
                %(rn_customer)b::text[], %(rn_status)b::text[], %(rn_order)b::text[],
                %(rn_created)b::float8[], %(rn_expires)b::float8[])
        AS v(id, sku, qty, cart, customer, status, order_id, created, expires)
    RETURNING sku
), ru AS (
    UPDATE reservations AS r SET qty = v.qty, status = v.status, order_id = v.order_id,
        expires_at = to_timestamp(v.expires),
        closed_at = CASE WHEN v.status = 'held' THEN NULL ELSE now() END
    FROM unnest(%(ru_id)b::text[], %(ru_qty)b::int[], %(ru_status)b::text[],
                %(ru_order)b::text[], %(ru_expires)b::float8[])
        AS v(id, qty, status, order_id, expires)
    WHERE r.reservation_id = v.id
    RETURNING 1
), cu AS (
    INSERT INTO customer_units (sku, customer_id, units)
    SELECT * FROM unnest(%(cu_sku)b::text[], %(cu_customer)b::text[], %(cu_units)b::int[])
    ON CONFLICT (sku, customer_id) DO UPDATE SET units = excluded.units
    RETURNING 1
), j AS (
    INSERT INTO inventory_batches (shard_id, epoch, at, kinds, request_ids, skus, refs, qtys,
        avail_before, avail_after, expires, on_hand, sold, pcl, lst, cap)
    VALUES (%(shard)s, %(epoch)s, to_timestamp(%(at)s), %(kinds)b::smallint[],
        %(rids)b::text[], %(skus)b::text[], %(refs)b::text[], %(qtys)b::bigint[],
        %(before)b::bigint[], %(after)b::bigint[], %(expires)b::float8[],
        %(on_hand)b::bigint[], %(sold)b::bigint[], %(pcl)b::int[], %(lst)b::int[],
        %(cap)b::int[])
    RETURNING id, kinds, request_ids
), d AS (
    INSERT INTO inventory_requests (key, batch)
    SELECT DISTINCT hashtextextended(e.rid, 0), j.id
    FROM j, unnest(j.request_ids, j.kinds) AS e(rid, kind)
    WHERE e.kind NOT IN (8, 9)
    RETURNING 1
), o AS (
    INSERT INTO inventory_outbox (batch, skus, on_hand, reserved, sold)
    SELECT j.id, array_agg(c.sku), array_agg(c.on_hand), array_agg(c.reserved),
        array_agg(c.sold)
    FROM j, c GROUP BY j.id
    RETURNING 1
)
SELECT CASE
    WHEN (SELECT epoch FROM ep) IS DISTINCT FROM %(epoch)s THEN inventory_batch_refused(
        'stale_epoch ' || coalesce((SELECT epoch FROM ep), -1))
    WHEN EXISTS (SELECT 1 FROM carts_now WHERE status <> 'open') THEN inventory_batch_refused(
        'cart_closed ' || (SELECT json_object_agg(cart_id, status) FROM carts_now
                           WHERE status <> 'open'))
    WHEN (SELECT count(*) FROM c) <> %(n_counters)s THEN inventory_batch_refused('moved')
    WHEN EXISTS (SELECT 1 FROM rn WHERE rn.sku NOT IN (SELECT sku FROM c))
        THEN inventory_batch_refused('unknown_sku a new reservation names a SKU not counted')
    WHEN (SELECT count(*) FROM d) <> %(n_requests)s THEN inventory_batch_refused('duplicate')
    WHEN (SELECT count(*) FROM ru) <> %(n_changed)s
        THEN inventory_batch_refused('a changed reservation has no row')
    END,
    (SELECT count(*) FROM rn), (SELECT count(*) FROM cu), (SELECT count(*) FROM o)
"""

LOOKUP_SQL_017 = """
WITH hits AS (
    SELECT x AS asked, q.batch
    FROM unnest(%(ids)s::text[]) AS x
    JOIN inventory_requests q ON q.key = hashtextextended(x, 0)
)
SELECT h.asked, e.kind, e.sku, e.ref, e.qty, e.after, e.expires, e.on_hand, e.sold, e.pcl,
    e.lst, e.cap, r.cart_id, r.customer_id, r.order_id
FROM hits h
JOIN inventory_batches b ON b.id = h.batch
LEFT JOIN LATERAL (
    SELECT * FROM unnest(b.kinds, b.request_ids, b.skus, b.refs, b.qtys, b.avail_after,
                         b.expires, b.on_hand, b.sold, b.pcl, b.lst, b.cap)
        WITH ORDINALITY AS u(kind, rid, sku, ref, qty, after, expires, on_hand, sold, pcl,
                             lst, cap, pos)
    WHERE u.rid = h.asked
) e ON true
LEFT JOIN reservations r ON r.reservation_id = e.ref
ORDER BY b.id, e.pos
"""
LOOKUP_SQL_017 = LOOKUP_SQL_017.replace(
    "r.order_id\nFROM hits", "r.order_id, r.channel_id\nFROM hits"
)
BATCH_SQL_017, LOOKUP_SQL_017 = _compact(BATCH_SQL_017), _compact(LOOKUP_SQL_017)


class Repository017(InventoryRepository):
    async def lookup_results(self, request_ids: list[str]) -> dict[str, WireOutcome]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(LOOKUP_SQL_017, {"ids": request_ids})
            return answers(await cur.fetchall())

    async def write_batch(self, batch: BatchWrite) -> None:
        assert not batch.channels and not batch.customers_reset, "not needed to fill"
        _, params = batch_sql(batch)
        for name in ("keys", "hold_keys", "key_holds", "e_carts"):
            del params[name]
        params["n_requests"] = len(batch.request_ids)
        try:
            async with self.pool.connection() as conn:
                await conn.set_autocommit(True)
                await conn.execute(BATCH_SQL_017, params)
        except psycopg.Error as exc:
            if exc.sqlstate == "MD001":
                raise _refusal(batch, exc.diag.message_primary or "") from None
            if isinstance(exc, UniqueViolation):
                raise BatchRefused(duplicate=True) from None
            raise
