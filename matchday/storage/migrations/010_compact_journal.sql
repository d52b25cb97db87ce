-- The engine persists per batch, not per mutation (issue 12, ADR 0017).
--
-- Before: every applied mutation wrote a journal row with two JSONB documents and two index
-- entries, every touched SKU an outbox row with a JSONB list of events, and every reserve a
-- customer_units upsert, with or without a limit. Now one batch (one transaction) writes:
--   inventory_batches   one row: the batch's changes as parallel arrays, one entry each
--   inventory_requests  one narrow row per request id: an 8-byte key, for retries' answers
--   inventory_outbox    one row naming the batch: the relay derives events from its entries
-- plus the counters, the reservations (inserted when new, updated when changed) and the
-- customer totals of SKUs with a per-customer limit. A request's answer and its events are
-- not stored: both follow from its entry (matchday/inventory/journal.py).
--
-- An entry: kind (0 reserve, 1 release, 2 commit, 3 extend, 4 resize, 5 restock,
-- 6 set_on_hand, 7 adjust_limits, 8 expire, 9 revoke: a hold a count revoked, under the
-- count's request id), request id, SKU, reservation id, qty (the reservation's units; the
-- units restocked; the count), available units before and after, the reservation's
-- expiry (epoch seconds, float8: a retry gets the very float it got first), and for a stock
-- change its on_hand, sold and the three limits after it.

CREATE TABLE inventory_batches (
    id            bigserial PRIMARY KEY,
    shard_id      integer NOT NULL,
    epoch         bigint NOT NULL,
    at            timestamptz NOT NULL,
    kinds         smallint[] NOT NULL,
    request_ids   text[] NOT NULL,
    skus          text[] NOT NULL,
    refs          text[] NOT NULL,
    qtys          bigint[] NOT NULL,
    avail_before  bigint[] NOT NULL,
    avail_after   bigint[] NOT NULL,
    expires       float8[] NOT NULL,
    on_hand       bigint[] NOT NULL,
    sold          bigint[] NOT NULL,
    pcl           integer[] NOT NULL,
    lst           integer[] NOT NULL,
    cap           integer[] NOT NULL
);
-- Keep a batch's row inline and uncompressed up to 8 KB (the default compresses past ~2 KB):
-- pglz was 4% of PostgreSQL's CPU in a profile of hot-SKU batches, and with this setting
-- PostgreSQL spent 41-42 instead of 47-52 us per reserve (batches of 100, 2026-12-02).
ALTER TABLE inventory_batches SET (toast_tuple_target = 8160);

-- A request id seen once is answered the same ever after: key = hashtextextended(id, 0),
-- the function hash partitioning relies on (stable across releases). Unique: a retry
-- applied as new fails its batch, which the shard then answers from the journal. No
-- foreign key: it would cost a look-up per request. Expiries and revocations have none.
CREATE TABLE inventory_requests (
    key    bigint PRIMARY KEY,
    batch  bigint NOT NULL
);

-- Raised inside a batch's statement to roll it back for a reason the shard acts on:
-- 'stale_epoch <current>', 'cart_closed <json: cart -> status>', 'moved', 'duplicate'.
CREATE FUNCTION inventory_batch_refused(reason text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING ERRCODE = 'MD001', MESSAGE = reason;
END;
$$;

-- Units each customer bought, for a per-customer limit set on a SKU that had none.
CREATE INDEX reservations_committed ON reservations (sku) WHERE status = 'committed';

-- Customer totals are kept only while a SKU has a per-customer limit.
DELETE FROM customer_units c USING inventory i
WHERE i.sku = c.sku AND i.per_customer_limit IS NULL;
DELETE FROM customer_units c WHERE NOT EXISTS (SELECT 1 FROM inventory i WHERE i.sku = c.sku);

-- The outbox: one row per batch. Rows written before 010 keep their events and are relayed
-- first, from inventory_outbox_0; the ids continue the same sequence.
ALTER TABLE inventory_outbox RENAME TO inventory_outbox_0;
ALTER INDEX inventory_outbox_pkey RENAME TO inventory_outbox_0_pkey;
CREATE TABLE inventory_outbox (
    id        bigint PRIMARY KEY DEFAULT nextval('inventory_outbox_id_seq'),
    batch     bigint NOT NULL,
    skus      text[] NOT NULL,
    on_hand   bigint[] NOT NULL,
    reserved  bigint[] NOT NULL,
    sold      bigint[] NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE inventory_outbox_id_seq OWNED BY inventory_outbox.id;

-- The journal before 010, one row per mutation, converted entry for entry: each row becomes
-- a batch of its own (batch id = its seq, so the order is kept), a count's revocations
-- entries before it. Availability before (and, for a reservation, after) was not recorded:
-- NULL. A converted reservation's cart, customer and order are on its reservations row,
-- where answers read them for new entries too.
ALTER TABLE inventory_journal RENAME TO inventory_journal_0;

WITH entries AS (
    SELECT j.seq, r.pos - 1000 AS pos, 9 AS kind, j.request_id, j.sku, r.rid AS ref,
           res.qty::bigint AS qty, NULL::bigint AS after, NULL::float8 AS expires,
           NULL::bigint AS on_hand, NULL::bigint AS sold, NULL::int AS pcl, NULL::int AS lst,
           NULL::int AS cap
    FROM inventory_journal_0 j
    CROSS JOIN LATERAL jsonb_array_elements_text(j.result -> 'stock' -> 'revoked')
        WITH ORDINALITY AS r(rid, pos)
    LEFT JOIN reservations res ON res.reservation_id = r.rid
    WHERE j.result ? 'stock'
    UNION ALL
    SELECT j.seq, 0, array_position(
               ARRAY['reserve', 'release', 'commit', 'extend', 'resize', 'restock',
                     'set_on_hand', 'adjust_limits', 'expire'], j.kind) - 1,
           j.request_id, j.sku, j.result -> 'reservation' ->> 'reservation_id',
           CASE WHEN j.result ? 'reservation' THEN (j.result -> 'reservation' ->> 'qty')::bigint
                WHEN j.kind = 'restock' THEN (j.mutation ->> 'qty')::bigint
                WHEN j.kind = 'set_on_hand' THEN (j.mutation ->> 'units')::bigint END,
           (j.result -> 'stock' ->> 'available')::bigint,
           (j.result -> 'reservation' ->> 'expires_at')::float8,
           (j.result -> 'stock' ->> 'on_hand')::bigint,
           (j.result -> 'stock' ->> 'sold')::bigint,
           (j.result -> 'stock' ->> 'per_customer_limit')::int,
           (j.result -> 'stock' ->> 'low_stock_threshold')::int,
           (j.result -> 'stock' ->> 'low_stock_order_cap')::int
    FROM inventory_journal_0 j
)
INSERT INTO inventory_batches (id, shard_id, epoch, at, kinds, request_ids, skus, refs, qtys,
                               avail_before, avail_after, expires, on_hand, sold, pcl, lst,
                               cap)
SELECT j.seq, j.shard_id, j.epoch, j.at,
       array_agg(e.kind ORDER BY e.pos), array_agg(e.request_id ORDER BY e.pos),
       array_agg(e.sku ORDER BY e.pos), array_agg(e.ref ORDER BY e.pos),
       array_agg(e.qty ORDER BY e.pos), array_agg(NULL::bigint ORDER BY e.pos),
       array_agg(e.after ORDER BY e.pos), array_agg(e.expires ORDER BY e.pos),
       array_agg(e.on_hand ORDER BY e.pos), array_agg(e.sold ORDER BY e.pos),
       array_agg(e.pcl ORDER BY e.pos), array_agg(e.lst ORDER BY e.pos),
       array_agg(e.cap ORDER BY e.pos)
FROM inventory_journal_0 j
JOIN entries e ON e.seq = j.seq
GROUP BY j.seq, j.shard_id, j.epoch, j.at;

INSERT INTO inventory_requests (key, batch)
SELECT hashtextextended(request_id, 0), seq FROM inventory_journal_0 WHERE kind <> 'expire'
ON CONFLICT DO NOTHING;

SELECT setval(pg_get_serial_sequence('inventory_batches', 'id'),
              (SELECT coalesce(max(seq), 0) + 1 FROM inventory_journal_0), false);

-- One row per entry, in journal order (seq), for the reports, the audit and people.
CREATE VIEW inventory_journal AS
SELECT (b.id << 20) + e.pos AS seq,
       b.id AS batch,
       e.pos::int AS pos,
       e.request_id,
       b.shard_id,
       b.epoch,
       e.sku,
       (ARRAY['reserve', 'release', 'commit', 'extend', 'resize', 'restock', 'set_on_hand',
              'adjust_limits', 'expire', 'revoke'])[e.kind + 1] AS kind,
       e.reservation_id,
       e.qty,
       e.available_before,
       e.available_after,
       e.expires_at,
       e.on_hand,
       e.sold,
       e.per_customer_limit,
       e.low_stock_threshold,
       e.low_stock_order_cap,
       b.at
FROM inventory_batches b
CROSS JOIN LATERAL unnest(b.kinds, b.request_ids, b.skus, b.refs, b.qtys, b.avail_before,
                          b.avail_after, b.expires, b.on_hand, b.sold, b.pcl, b.lst, b.cap)
    WITH ORDINALITY AS e(kind, request_id, sku, reservation_id, qty, available_before,
                         available_after, expires_at, on_hand, sold, per_customer_limit,
                         low_stock_threshold, low_stock_order_cap, pos);

-- Turnover's level history (009), read from the new journal: same columns, same meaning.
CREATE OR REPLACE VIEW inventory_stock_changes AS
SELECT sku, seq, at, kind,
       CASE WHEN kind IN ('restock', 'set_on_hand', 'adjust_limits') THEN on_hand - sold
       END AS level,
       CASE WHEN kind = 'restock' THEN qty ELSE 0 END AS restocked,
       CASE WHEN kind = 'commit' THEN qty ELSE 0 END AS sold
FROM inventory_journal
WHERE kind IN ('commit', 'restock', 'set_on_hand', 'adjust_limits');

DROP TABLE inventory_journal_0;
