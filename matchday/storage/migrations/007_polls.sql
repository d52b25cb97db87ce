-- Live polls and personalised offers (issue 7, ADR 0013). Votes land in Redis first and are
-- drained here by a consumer group (write-behind): poll_votes is the durable record the Redis
-- tallies are rebuilt from. Only matchday.storage.polls_repo writes these tables.

CREATE TABLE polls (
    poll_id             text PRIMARY KEY CHECK (poll_id ~ '^p_[a-z2-7]+$'),
    question            text NOT NULL CHECK (length(question) BETWEEN 1 AND 200),
    placement           text NOT NULL
                        CHECK (placement ~ '^(checkout|product:[a-z0-9][a-z0-9-]{0,63})$'),
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    closes_at           timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    closed_at           timestamptz,
    created_by          text,
    -- The offer a voter earns, if any: percent off the offer's product, valid for
    -- offer_valid_s after the vote. No product: the product of the SKU the voter chose.
    offer_percent_off   integer CHECK (offer_percent_off BETWEEN 1 AND 50),
    offer_product_id    text REFERENCES products (product_id),
    offer_valid_s       integer CHECK (offer_valid_s BETWEEN 60 AND 2592000),
    CHECK ((offer_percent_off IS NULL) = (offer_valid_s IS NULL))
);
CREATE INDEX polls_open_by_placement ON polls (placement, created_at DESC) WHERE status = 'open';
CREATE INDEX polls_newest ON polls (created_at DESC);

CREATE TABLE poll_options (
    poll_id     text NOT NULL REFERENCES polls (poll_id),
    option_id   text NOT NULL,
    position    integer NOT NULL,
    label       text NOT NULL CHECK (length(label) BETWEEN 1 AND 80),
    sku         text REFERENCES variants (sku),
    -- The SKU's product, resolved once at creation: offers and the demand report use it.
    product_id  text REFERENCES products (product_id),
    PRIMARY KEY (poll_id, option_id)
);

-- One vote per shopper per poll: the primary key is the rule, so a vote drained twice (a
-- consumer that died before its XACK) is inserted once (ON CONFLICT DO NOTHING).
CREATE TABLE poll_votes (
    poll_id      text NOT NULL,
    customer_id  text NOT NULL,
    option_id    text NOT NULL,
    voted_at     timestamptz NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, customer_id),
    FOREIGN KEY (poll_id, option_id) REFERENCES poll_options (poll_id, option_id)
);
CREATE INDEX poll_votes_by_option ON poll_votes (poll_id, option_id);

-- Offer codes are derived (an HMAC naming poll, option, customer and expiry), so issuing one
-- writes nothing; this table makes each voter's offer single-use. A row is the claim of the
-- order that is using it; the claim is dropped again if that order fails or is cancelled.
CREATE TABLE offer_redemptions (
    poll_id      text NOT NULL REFERENCES polls (poll_id),
    customer_id  text NOT NULL,
    code         text NOT NULL,
    order_id     text NOT NULL UNIQUE,
    redeemed_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (poll_id, customer_id)
);

-- What the offer took off an order. total_cents stays the sum of the lines; the amount
-- charged (and refundable) is total_cents - discount_cents.
ALTER TABLE orders ADD COLUMN IF NOT EXISTS discount_cents bigint NOT NULL DEFAULT 0
    CHECK (discount_cents >= 0);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS offer_code text;
ALTER TABLE orders ADD CONSTRAINT orders_discount_within_total
    CHECK (discount_cents <= total_cents);

-- Demand signal: votes per option beside the sales velocity of the option's SKU and product
-- (report_sku_velocity / report_product_velocity of 006, so it is refreshed after them).
-- Polls closed more than 30 days ago drop out.
CREATE MATERIALIZED VIEW report_poll_demand AS
WITH votes AS (
    SELECT poll_id, option_id, count(*) AS votes
    FROM poll_votes
    GROUP BY poll_id, option_id
)
SELECT p.poll_id,
       p.question,
       p.status,
       o.option_id,
       o.label,
       coalesce(o.sku, '') AS sku,
       coalesce(o.product_id, '') AS product_id,
       coalesce(v.votes, 0)::bigint AS votes,
       CASE WHEN sum(coalesce(v.votes, 0)) OVER (PARTITION BY p.poll_id) > 0
            THEN round(coalesce(v.votes, 0)::numeric
                       / sum(coalesce(v.votes, 0)) OVER (PARTITION BY p.poll_id), 4)::float8
            ELSE 0 END AS vote_share,
       coalesce(sv.units_7d, 0)::bigint AS sku_units_7d,
       coalesce(sv.units_per_day, 0)::float8 AS sku_units_per_day,
       coalesce(pv.units_7d, 0)::bigint AS product_units_7d,
       coalesce(pv.units_per_day, 0)::float8 AS product_units_per_day,
       now() AS refreshed_at
FROM polls p
JOIN poll_options o ON o.poll_id = p.poll_id
LEFT JOIN votes v ON v.poll_id = o.poll_id AND v.option_id = o.option_id
LEFT JOIN report_sku_velocity sv ON sv.sku = o.sku
LEFT JOIN report_product_velocity pv ON pv.product_id = o.product_id
WHERE p.status = 'open' OR p.closed_at >= now() - interval '30 days';
CREATE UNIQUE INDEX report_poll_demand_key ON report_poll_demand (poll_id, option_id);
