-- Marketplace channels (ADR 0028) and supplier deltas applied in the engine.
--
-- channels: a marketplace that sells against the engine with its own API key (stored as a
-- hash only: the key is shown once, when issued).
-- channel_stock: per SKU and channel, the channel's allocation and the units it holds and
-- has sold. Written only by the shard that owns the SKU, in the batch that changed them
-- (like the inventory row), and loaded back on recovery.
-- reservations.channel_id: the channel that holds or bought a reservation (NULL: the shop),
-- so the reports split sales by channel.
-- Journal kinds 10 'adjust' (a supplier's delta, applied against the engine's own count)
-- and 11 'allocate' (a channel's allocation set; its ref is the channel).

CREATE TABLE channels (
    channel_id  text PRIMARY KEY CHECK (channel_id ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    name        text NOT NULL,
    -- sha256 of the key's secret part (matchday/channels/keys.py); the key itself is never
    -- stored. 256 random bits: a fast hash loses nothing (as admin keys, ADR 0005).
    key_hash    bytea NOT NULL,
    active      boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    key_issued_at timestamptz NOT NULL
);

CREATE TABLE channel_stock (
    sku          text NOT NULL REFERENCES inventory (sku),
    channel_id   text NOT NULL,
    max_units    integer CHECK (max_units >= 0),
    max_percent  integer CHECK (max_percent BETWEEN 0 AND 100),
    held         bigint NOT NULL CHECK (held >= 0),
    sold         bigint NOT NULL CHECK (sold >= 0),
    PRIMARY KEY (sku, channel_id),
    CONSTRAINT one_allocation CHECK (max_units IS NULL OR max_percent IS NULL)
);
CREATE INDEX channel_stock_by_channel ON channel_stock (channel_id);

ALTER TABLE reservations ADD COLUMN channel_id text;
CREATE INDEX reservations_by_channel ON reservations (channel_id, sku)
    WHERE channel_id IS NOT NULL;

-- One row per entry (010), with the two new kinds named.
CREATE OR REPLACE VIEW inventory_journal AS
SELECT (b.id << 20) + e.pos AS seq,
       b.id AS batch,
       e.pos::int AS pos,
       e.request_id,
       b.shard_id,
       b.epoch,
       e.sku,
       (ARRAY['reserve', 'release', 'commit', 'extend', 'resize', 'restock', 'set_on_hand',
              'adjust_limits', 'expire', 'revoke', 'adjust', 'allocate'])[e.kind + 1] AS kind,
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


-- Turnover's level history (009, 010): a supplier's delta changes the level too.
CREATE OR REPLACE VIEW inventory_stock_changes AS
SELECT sku, seq, at, kind,
       CASE WHEN kind IN ('restock', 'set_on_hand', 'adjust_limits', 'adjust', 'allocate')
            THEN on_hand - sold
       END AS level,
       CASE WHEN kind = 'restock' THEN qty ELSE 0 END AS restocked,
       CASE WHEN kind = 'commit' THEN qty ELSE 0 END AS sold
FROM inventory_journal
WHERE kind IN ('commit', 'restock', 'set_on_hand', 'adjust_limits', 'adjust', 'allocate');

-- Sales split by channel ('shop' for the shop's own), per SKU: the reports (issue 17).
CREATE MATERIALIZED VIEW report_channel_sales AS
SELECT coalesce(r.channel_id, 'shop') AS channel,
       r.sku,
       coalesce(sum(r.qty) FILTER (WHERE r.closed_at >= now() - interval '24 hours'), 0)::bigint
           AS units_24h,
       coalesce(sum(r.qty) FILTER (WHERE r.closed_at >= now() - interval '7 days'), 0)::bigint
           AS units_7d,
       sum(r.qty)::bigint AS units_30d,
       max(r.closed_at) AS last_sold_at,
       now() AS refreshed_at
FROM reservations r
WHERE r.status = 'committed' AND r.closed_at >= now() - interval '30 days'
GROUP BY 1, 2;
CREATE UNIQUE INDEX report_channel_sales_key ON report_channel_sales (channel, sku);
