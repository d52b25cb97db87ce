-- Merchandisers' reports (issue 6): materialized views, so a report never scans the hot
-- tables while shoppers write them. Each view is refreshed CONCURRENTLY (readers are never
-- blocked), which PostgreSQL allows only on a view with a UNIQUE index over plain columns:
-- every view below has one, on columns made NOT NULL with coalesce where needed.
--
-- Time windows are fixed here and measured from now() at refresh time; a report shows when
-- it was refreshed (refreshed_at) so a stale one is visible. Only matchday.storage.reports_repo
-- reads these views.
--
-- A sale is a committed reservation (reservations.status = 'committed', at closed_at): the
-- engine commits a hold only after the payment succeeded, and every paid order line is one
-- committed reservation, so counting order lines as well would count each unit twice.

-- The region a charge was made in (Settings.payment_region of the process that charged).
-- Nullable and without a default so the existing writers keep working unchanged; reports
-- show NULL as 'unknown' until the payments repository writes it.
ALTER TABLE payment_attempts ADD COLUMN IF NOT EXISTS region text;

-- Sales per SKU. Velocity windows: the last 24 hours (per hour) and the last 7 days (per day).
CREATE MATERIALIZED VIEW report_sku_velocity AS
WITH sales AS (
    SELECT sku,
           sum(qty) FILTER (WHERE closed_at >= now() - interval '24 hours') AS units_24h,
           sum(qty) FILTER (WHERE closed_at >= now() - interval '7 days') AS units_7d,
           max(closed_at) AS last_sold_at
    FROM reservations
    WHERE status = 'committed' AND closed_at >= now() - interval '7 days'
    GROUP BY sku
)
SELECT s.sku,
       coalesce(v.product_id, '') AS product_id,
       coalesce(s.units_24h, 0)::bigint AS units_24h,
       coalesce(s.units_7d, 0)::bigint AS units_7d,
       round(coalesce(s.units_24h, 0) / 24.0, 4)::float8 AS units_per_hour,
       round(coalesce(s.units_7d, 0) / 7.0, 4)::float8 AS units_per_day,
       s.last_sold_at,
       now() AS refreshed_at
FROM sales s
LEFT JOIN variants v ON v.sku = s.sku;
CREATE UNIQUE INDEX report_sku_velocity_key ON report_sku_velocity (sku);

-- The same per product (every variant's sales added up).
CREATE MATERIALIZED VIEW report_product_velocity AS
SELECT v.product_id,
       p.name,
       sum(s.units_24h)::bigint AS units_24h,
       sum(s.units_7d)::bigint AS units_7d,
       round(sum(s.units_24h) / 24.0, 4)::float8 AS units_per_hour,
       round(sum(s.units_7d) / 7.0, 4)::float8 AS units_per_day,
       max(s.last_sold_at) AS last_sold_at,
       now() AS refreshed_at
FROM report_sku_velocity s
JOIN variants v ON v.sku = s.sku
JOIN products p ON p.product_id = v.product_id
GROUP BY v.product_id, p.name;
CREATE UNIQUE INDEX report_product_velocity_key ON report_product_velocity (product_id);

-- Trending: units sold in the last 24 hours against the 24 hours before. growth is the ratio
-- (NULL when nothing sold in the previous window: new demand, ranked by units instead).
CREATE MATERIALIZED VIEW report_trending_products AS
WITH sales AS (
    SELECT v.product_id,
           coalesce(sum(r.qty) FILTER (WHERE r.closed_at >= now() - interval '24 hours'), 0)
               AS units_now,
           coalesce(sum(r.qty) FILTER (WHERE r.closed_at < now() - interval '24 hours'), 0)
               AS units_before
    FROM reservations r
    JOIN variants v ON v.sku = r.sku
    WHERE r.status = 'committed' AND r.closed_at >= now() - interval '48 hours'
    GROUP BY v.product_id
)
SELECT s.product_id,
       p.name,
       s.units_now::bigint AS units_now,
       s.units_before::bigint AS units_before,
       (s.units_now - s.units_before)::bigint AS change,
       CASE WHEN s.units_before > 0
            THEN round(s.units_now::numeric / s.units_before, 4)::float8 END AS growth,
       now() AS refreshed_at
FROM sales s
JOIN products p ON p.product_id = s.product_id;
CREATE UNIQUE INDEX report_trending_products_key ON report_trending_products (product_id);

-- Inventory turnover over the last 30 days: units sold / average units on hand. Stock is
-- not kept as a history, so the average is that of the ends of the window: today's units
-- on hand (on_hand - sold) and the units at the start (today's plus those sold since),
-- which ignores restocks within the window (a restocked SKU's turnover reads low).
CREATE MATERIALIZED VIEW report_inventory_turnover AS
WITH sold AS (
    SELECT sku, sum(qty) AS units
    FROM reservations
    WHERE status = 'committed' AND closed_at >= now() - interval '30 days'
    GROUP BY sku
)
SELECT i.sku,
       coalesce(v.product_id, '') AS product_id,
       coalesce(s.units, 0)::bigint AS units_sold_30d,
       (i.on_hand - i.sold)::bigint AS units_on_hand,
       ((i.on_hand - i.sold) + coalesce(s.units, 0) / 2.0)::float8 AS average_on_hand,
       CASE WHEN (i.on_hand - i.sold) + coalesce(s.units, 0) > 0
            THEN round(coalesce(s.units, 0)
                       / ((i.on_hand - i.sold) + coalesce(s.units, 0) / 2.0), 4)::float8
            ELSE 0 END AS turnover,
       now() AS refreshed_at
FROM inventory i
LEFT JOIN sold s ON s.sku = i.sku
LEFT JOIN variants v ON v.sku = i.sku;
CREATE UNIQUE INDEX report_inventory_turnover_key ON report_inventory_turnover (sku);

-- Dead stock: units on hand and nothing sold in the last 30 days (or ever).
CREATE MATERIALIZED VIEW report_dead_stock AS
WITH last_sale AS (
    SELECT sku, max(closed_at) AS at
    FROM reservations
    WHERE status = 'committed'
    GROUP BY sku
)
SELECT i.sku,
       coalesce(v.product_id, '') AS product_id,
       (i.on_hand - i.sold)::bigint AS units_on_hand,
       l.at AS last_sold_at,
       (extract(epoch FROM now() - l.at) / 86400)::int AS days_since_sale,
       now() AS refreshed_at
FROM inventory i
LEFT JOIN last_sale l ON l.sku = i.sku
LEFT JOIN variants v ON v.sku = i.sku
WHERE i.on_hand - i.sold > 0
  AND (l.at IS NULL OR l.at < now() - interval '30 days');
CREATE UNIQUE INDEX report_dead_stock_key ON report_dead_stock (sku);

-- Payment success per gateway and region over the last 30 days, one row per attempt on a
-- gateway (payment_attempts keeps each attempt's final state). 'started' and 'unknown' are
-- attempts whose outcome is not known yet: counted, but not in the success rate.
CREATE MATERIALIZED VIEW report_payment_success AS
SELECT gateway,
       coalesce(region, 'unknown') AS region,
       count(*)::bigint AS attempts,
       count(*) FILTER (WHERE status = 'succeeded')::bigint AS succeeded,
       count(*) FILTER (WHERE status = 'declined')::bigint AS declined,
       count(*) FILTER (WHERE status IN ('started', 'unknown'))::bigint AS pending,
       count(*) FILTER (WHERE status NOT IN ('succeeded', 'declined', 'started', 'unknown'))::bigint
           AS other,
       CASE WHEN count(*) FILTER (WHERE status NOT IN ('started', 'unknown')) > 0
            THEN round(count(*) FILTER (WHERE status = 'succeeded')::numeric
                       / count(*) FILTER (WHERE status NOT IN ('started', 'unknown')), 4)::float8
            ELSE 0 END AS success_rate,
       now() AS refreshed_at
FROM payment_attempts
WHERE started_at >= now() - interval '30 days'
GROUP BY gateway, coalesce(region, 'unknown');
CREATE UNIQUE INDEX report_payment_success_key ON report_payment_success (gateway, region);

-- Chargebacks per gateway account and reason, all time (disputes are few and arrive weeks
-- after the sale, so a window would hide them).
CREATE MATERIALIZED VIEW report_chargebacks AS
SELECT account,
       coalesce(reason, 'unspecified') AS reason,
       count(*)::bigint AS disputes,
       coalesce(sum(amount_cents), 0)::bigint AS amount_cents,
       count(*) FILTER (WHERE status = 'lost')::bigint AS lost,
       count(*) FILTER (WHERE status = 'won')::bigint AS won,
       count(*) FILTER (WHERE status IS NULL OR status NOT IN ('won', 'lost'))::bigint AS open,
       max(at) AS last_at,
       now() AS refreshed_at
FROM disputes
GROUP BY account, coalesce(reason, 'unspecified');
CREATE UNIQUE INDEX report_chargebacks_key ON report_chargebacks (account, reason);

-- Suspicious activity per kind and day, the last 30 days.
CREATE MATERIALIZED VIEW report_suspicious_activity AS
SELECT kind,
       (at AT TIME ZONE 'UTC')::date AS day,
       count(*)::bigint AS events,
       count(DISTINCT customer_id)::bigint AS customers,
       count(DISTINCT order_id)::bigint AS orders,
       max(at) AS last_at,
       now() AS refreshed_at
FROM suspicious_activity
WHERE at >= now() - interval '30 days'
GROUP BY kind, (at AT TIME ZONE 'UTC')::date;
CREATE UNIQUE INDEX report_suspicious_activity_key ON report_suspicious_activity (kind, day);
