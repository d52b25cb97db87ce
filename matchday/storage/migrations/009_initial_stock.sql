-- The stock a SKU was created with, and when: turnover's level history made exact.
--
-- 008 rebuilt each SKU's level from the journal but had to guess where it started, since
-- creating a SKU is not a journaled mutation: it inferred the starting level from the first
-- anchor, which is a guess when that anchor is a count (set_on_hand), and took every SKU as
-- stocked from the start of the window, even one created inside it.
--
-- The starting level goes on the inventory row, not into inventory_journal. The journal is
-- the shards' table: each row is a mutation applied in a fenced batch (shard_id, epoch),
-- looked up by request_id to answer a retry with its first answer (ShardCore), replayed by
-- the load-test audit, and counted per SKU by the shard tests. A creation row written from
-- outside a shard would be the only row of its kind in all of them. The new columns are
-- read by this view alone: the shards load and write named columns (inventory_repo.py), so
-- recovery does not see them.
--
--   initial_stock  on_hand - sold when the row was inserted: the units it was created with
--   created_at     when the row was inserted
--
-- A BEFORE INSERT trigger fills initial_stock, so every way of creating stock records it in
-- the same statement: create_skus (seeding, CLI, bench) and the catalogue's create_product
-- (the admin API). An explicit value is kept.
--
-- Existing rows are backfilled where the journal makes it exact (008's derivation, see there):
--   - no anchor at all: today's level plus every unit sold;
--   - a first anchor that is a restock or a limits change: its level (minus the restocked
--     units) plus the units sold before it.
-- A SKU whose first anchor is a count keeps initial_stock NULL: its starting level is
-- recorded nowhere, and the view keeps 008's estimate (the count plus the units sold before
-- it) for it. created_at of an existing SKU with a variant is its product's creation (the
-- same transaction when the admin API created it), or its first journaled change if that is
-- earlier; a SKU without a variant keeps NULL and is taken as stocked since before the
-- window, as in 008.
--
-- Like any ALTER TABLE, this migration blocks inventory writes until it commits: one pass
-- over the journal's stock-moving rows for the backfill and one to build the view.

ALTER TABLE inventory
    ADD COLUMN initial_stock bigint,
    ADD COLUMN created_at timestamptz;
-- The default only after the column exists: existing rows keep NULL (unknown), not the time
-- of this migration.
ALTER TABLE inventory ALTER COLUMN created_at SET DEFAULT now();

CREATE FUNCTION inventory_initial_stock() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.initial_stock := coalesce(NEW.initial_stock, NEW.on_hand - NEW.sold);
    RETURN NEW;
END;
$$;
CREATE TRIGGER inventory_initial_stock
    BEFORE INSERT ON inventory
    FOR EACH ROW EXECUTE FUNCTION inventory_initial_stock();

-- What each journal row means for the level, for the backfill below and the view: 008's
-- changes, now a view of their own so that the two cannot read the journal differently.
CREATE VIEW inventory_stock_changes AS
SELECT sku, seq, at, kind,
       CASE WHEN result ? 'stock'
            THEN (result -> 'stock' ->> 'on_hand')::bigint
                 - (result -> 'stock' ->> 'sold')::bigint
       END AS level,
       CASE WHEN kind = 'restock' THEN (mutation ->> 'qty')::bigint ELSE 0 END AS restocked,
       CASE WHEN kind = 'commit'
            THEN (result -> 'reservation' ->> 'qty')::bigint ELSE 0 END AS sold
FROM inventory_journal
WHERE kind IN ('commit', 'restock', 'set_on_hand', 'adjust_limits')
  AND NOT result ? 'error';

WITH runs AS (
    SELECT c.*, sum(sold) OVER (PARTITION BY sku ORDER BY at, seq ROWS UNBOUNDED PRECEDING)
                AS sold_so_far
    FROM inventory_stock_changes c
),
first_anchor AS (
    SELECT DISTINCT ON (sku) sku, kind, level - restocked + sold_so_far AS initial
    FROM runs
    WHERE level IS NOT NULL
    ORDER BY sku, at, seq
),
sold_ever AS (
    SELECT sku, sum(sold) AS units FROM inventory_stock_changes GROUP BY sku
),
first_change AS (
    SELECT sku, min(at) AS at FROM inventory_journal GROUP BY sku
),
backfill AS (
    SELECT i.sku,
           CASE WHEN f.sku IS NULL THEN i.on_hand - i.sold + coalesce(e.units, 0)
                WHEN f.kind <> 'set_on_hand' THEN f.initial
           END AS initial_stock,
           CASE WHEN p.created_at IS NOT NULL THEN least(p.created_at, j.at) END AS created_at
    FROM inventory i
    LEFT JOIN first_anchor f ON f.sku = i.sku
    LEFT JOIN sold_ever e ON e.sku = i.sku
    LEFT JOIN first_change j ON j.sku = i.sku
    LEFT JOIN variants v ON v.sku = i.sku
    LEFT JOIN products p ON p.product_id = v.product_id
)
UPDATE inventory i
SET initial_stock = b.initial_stock, created_at = b.created_at
FROM backfill b
WHERE b.sku = i.sku;

-- The view of 008, with the starting level from initial_stock and the window opening at the
-- SKU's creation when that is inside it. Units on hand before the SKU existed are zero; the
-- average is still over the 30 days, like the units sold it is divided into, so a SKU
-- created during the window is measured on the same footing as one that was there all along.

DROP MATERIALIZED VIEW report_inventory_turnover;

CREATE MATERIALIZED VIEW report_inventory_turnover AS
WITH win AS (
    SELECT now() - interval '30 days' AS t0, now() AS t1
),
runs AS (
    -- grp counts the anchors up to each change: 0 before the first one.
    SELECT c.*,
           count(level) OVER run AS grp,
           sum(sold) OVER run AS sold_so_far
    FROM inventory_stock_changes c
    WINDOW run AS (PARTITION BY sku ORDER BY at, seq ROWS UNBOUNDED PRECEDING)
),
first_anchor AS (
    -- Only for a SKU without initial_stock (created before 009, first anchor a count).
    SELECT DISTINCT ON (sku) sku, level - restocked + sold_so_far AS initial
    FROM runs
    WHERE level IS NOT NULL
    ORDER BY sku, at, seq
),
sold_ever AS (
    SELECT sku, sum(sold) AS units FROM inventory_stock_changes GROUP BY sku
),
initial AS (
    -- The level the SKU was created with, and when the window opens for it: at its
    -- creation if that was inside the window (it had nothing on hand before).
    SELECT i.sku,
           coalesce(i.initial_stock, f.initial, i.on_hand - i.sold + coalesce(e.units, 0))
               AS level,
           least(greatest(coalesce(i.created_at, win.t0), win.t0), win.t1) AS opens
    FROM inventory i
    CROSS JOIN win
    LEFT JOIN first_anchor f ON f.sku = i.sku
    LEFT JOIN sold_ever e ON e.sku = i.sku
),
levels AS (
    -- The level after each change. In an anchor's run the anchor is the first row.
    SELECT r.sku, r.at, r.seq, n.opens,
           CASE WHEN r.grp = 0 THEN n.level - r.sold_so_far
                ELSE first_value(r.level) OVER anchored
                     - (r.sold_so_far - first_value(r.sold_so_far) OVER anchored)
           END AS level_after
    FROM runs r
    JOIN initial n ON n.sku = r.sku
    WINDOW anchored AS (PARTITION BY r.sku, r.grp ORDER BY r.at, r.seq)
),
at_start AS (
    -- The level when the window opens: after the last change before it. (A change dated
    -- before the SKU's creation, by a shard's clock behind the database's, counts here.)
    SELECT DISTINCT ON (l.sku) l.sku, l.level_after AS level
    FROM levels l
    WHERE l.at < l.opens
    ORDER BY l.sku, l.at DESC, l.seq DESC
),
inside AS (
    -- A clock ahead of the database's could date a change after now(): clamp it to now().
    SELECT l.sku, l.level_after,
           least(l.at, win.t1) AS from_at,
           least(coalesce(lead(l.at) OVER (PARTITION BY l.sku ORDER BY l.at, l.seq), win.t1),
                 win.t1) AS to_at
    FROM levels l, win
    WHERE l.at >= l.opens
),
inside_area AS (
    SELECT sku,
           sum(level_after * extract(epoch FROM to_at - from_at)) AS unit_seconds,
           min(from_at) AS first_at
    FROM inside
    GROUP BY sku
),
averages AS (
    SELECT n.sku,
           (coalesce(s.level, n.level)
                * extract(epoch FROM coalesce(a.first_at, win.t1) - n.opens)
            + coalesce(a.unit_seconds, 0))
           / extract(epoch FROM win.t1 - win.t0) AS units
    FROM initial n
    CROSS JOIN win
    LEFT JOIN at_start s ON s.sku = n.sku
    LEFT JOIN inside_area a ON a.sku = n.sku
),
sold AS (
    -- Units sold: committed reservations closed in the window, as in every other report.
    SELECT sku, sum(qty) AS units
    FROM reservations
    WHERE status = 'committed' AND closed_at >= now() - interval '30 days'
    GROUP BY sku
)
SELECT i.sku,
       coalesce(v.product_id, '') AS product_id,
       coalesce(s.units, 0)::bigint AS units_sold_30d,
       (i.on_hand - i.sold)::bigint AS units_on_hand,
       round(a.units, 4)::float8 AS average_on_hand,
       CASE WHEN a.units > 0 THEN round(coalesce(s.units, 0) / a.units, 4)::float8
            ELSE 0 END AS turnover,
       now() AS refreshed_at
FROM inventory i
JOIN averages a ON a.sku = i.sku
LEFT JOIN sold s ON s.sku = i.sku
LEFT JOIN variants v ON v.sku = i.sku;
CREATE UNIQUE INDEX report_inventory_turnover_key ON report_inventory_turnover (sku);
