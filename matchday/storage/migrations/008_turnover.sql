-- Inventory turnover with restocks (issue 6). This replaces 006's view, which averaged only
-- the two ends of the window and so ignored restocks and counts made inside it.
--
-- Turnover over the last 30 days is units sold divided by the average units on hand. Units
-- on hand are on_hand - sold: the unsold units, whether held in carts or not. The average is
-- taken over time from the level history that the engine journals. inventory_journal has a
-- row for every committed mutation, with the answer it got:
--   commit                           -qty (result.reservation.qty)
--   restock, set_on_hand,            the level after the change, exactly
--     adjust_limits                  (result.stock: on_hand - sold)
-- A failed mutation (result.error) changed nothing. No other mutation moves on_hand or sold.
-- The changes are ordered by (at, seq). Each change with a stock result is an anchor: the
-- level after a commit is the last anchor's level minus the units committed since then.
--
-- The level before the first anchor is the SKU's stock when it was created, which
-- create_skus does not journal. It is recovered from the first anchor:
--   - a restock: its level minus the restocked units, plus the units sold before it;
--   - a limits change: its level plus the units sold before it;
--   - no anchor at all: today's level plus every unit sold;
--   - a set_on_hand: the level before the count is not recorded anywhere. It is taken as
--     the count plus the units sold before it, that is, as if the count found no shrinkage.
--     This is the only approximation in the view.
-- The view scans the journal's stock-moving rows on each refresh, as the other reports scan
-- reservations.

DROP MATERIALIZED VIEW report_inventory_turnover;

CREATE MATERIALIZED VIEW report_inventory_turnover AS
WITH win AS (
    SELECT now() - interval '30 days' AS t0, now() AS t1
),
changes AS (
    SELECT sku, seq, at,
           CASE WHEN result ? 'stock'
                THEN (result -> 'stock' ->> 'on_hand')::bigint
                     - (result -> 'stock' ->> 'sold')::bigint
           END AS level,
           CASE WHEN kind = 'restock' THEN (mutation ->> 'qty')::bigint ELSE 0 END AS restocked,
           CASE WHEN kind = 'commit'
                THEN (result -> 'reservation' ->> 'qty')::bigint ELSE 0 END AS sold
    FROM inventory_journal
    WHERE kind IN ('commit', 'restock', 'set_on_hand', 'adjust_limits')
      AND NOT result ? 'error'
),
runs AS (
    -- grp counts the anchors up to each change: 0 before the first one.
    SELECT c.*,
           count(level) OVER run AS grp,
           sum(sold) OVER run AS sold_so_far
    FROM changes c
    WINDOW run AS (PARTITION BY sku ORDER BY at, seq ROWS UNBOUNDED PRECEDING)
),
first_anchor AS (
    SELECT DISTINCT ON (sku) sku, level - restocked + sold_so_far AS initial
    FROM runs
    WHERE level IS NOT NULL
    ORDER BY sku, at, seq
),
sold_ever AS (
    SELECT sku, sum(sold) AS units FROM changes GROUP BY sku
),
initial AS (
    SELECT i.sku,
           coalesce(f.initial, i.on_hand - i.sold + coalesce(e.units, 0)) AS level
    FROM inventory i
    LEFT JOIN first_anchor f ON f.sku = i.sku
    LEFT JOIN sold_ever e ON e.sku = i.sku
),
levels AS (
    -- The level after each change. In an anchor's run the anchor is the first row.
    SELECT r.sku, r.at, r.seq,
           CASE WHEN r.grp = 0 THEN n.level - r.sold_so_far
                ELSE first_value(r.level) OVER anchored
                     - (r.sold_so_far - first_value(r.sold_so_far) OVER anchored)
           END AS level_after
    FROM runs r
    JOIN initial n ON n.sku = r.sku
    WINDOW anchored AS (PARTITION BY r.sku, r.grp ORDER BY r.at, r.seq)
),
at_start AS (
    -- The level when the window opens: after the last change before it.
    SELECT DISTINCT ON (l.sku) l.sku, l.level_after AS level
    FROM levels l, win
    WHERE l.at < win.t0
    ORDER BY l.sku, l.at DESC, l.seq DESC
),
inside AS (
    -- A clock ahead of the database's could date a change after now(): clamp it to now().
    SELECT l.sku, l.level_after,
           least(l.at, win.t1) AS from_at,
           least(coalesce(lead(l.at) OVER (PARTITION BY l.sku ORDER BY l.at, l.seq), win.t1),
                 win.t1) AS to_at
    FROM levels l, win
    WHERE l.at >= win.t0
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
                * extract(epoch FROM coalesce(a.first_at, win.t1) - win.t0)
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
