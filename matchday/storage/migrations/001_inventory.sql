-- The inventory engine's tables. Counters are written only by the shard that owns the SKU
-- (inventory.shard_id), once per batch; shard_epochs fences off zombie shards.

CREATE TABLE shard_epochs (
    shard_id    integer PRIMARY KEY,
    epoch       bigint NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE inventory (
    sku                  text PRIMARY KEY,
    shard_id             integer NOT NULL,
    on_hand              bigint NOT NULL DEFAULT 0,
    reserved             bigint NOT NULL DEFAULT 0,
    sold                 bigint NOT NULL DEFAULT 0,
    per_customer_limit   integer,
    low_stock_threshold  integer,
    low_stock_order_cap  integer,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT stock_never_negative CHECK (reserved >= 0 AND sold >= 0 AND on_hand - reserved - sold >= 0)
);
CREATE INDEX inventory_by_shard ON inventory (shard_id);

-- Operator pins: a hot SKU served by a dedicated shard. Survives restarts.
CREATE TABLE sku_pins (
    sku        text PRIMARY KEY REFERENCES inventory (sku),
    shard_id   integer NOT NULL,
    pinned_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE reservations (
    reservation_id  text PRIMARY KEY,
    sku             text NOT NULL REFERENCES inventory (sku),
    qty             integer NOT NULL CHECK (qty > 0),
    cart_id         text NOT NULL,
    customer_id     text NOT NULL,
    status          text NOT NULL CHECK (status IN ('held', 'committed', 'released', 'expired', 'revoked')),
    order_id        text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL,
    closed_at       timestamptz
);
CREATE INDEX reservations_held ON reservations (sku) WHERE status = 'held';
CREATE INDEX reservations_by_cart ON reservations (cart_id);

-- Units each customer holds or bought, for per-customer purchase limits.
CREATE TABLE customer_units (
    sku          text NOT NULL,
    customer_id  text NOT NULL,
    units        integer NOT NULL CHECK (units >= 0),
    PRIMARY KEY (sku, customer_id)
);

-- Every applied mutation, with the answer it got: the audit trail, and how a retried
-- request gets its first answer after a restart.
CREATE TABLE inventory_journal (
    seq         bigserial PRIMARY KEY,
    request_id  text NOT NULL,
    shard_id    integer NOT NULL,
    epoch       bigint NOT NULL,
    sku         text NOT NULL,
    kind        text NOT NULL,
    mutation    jsonb NOT NULL,
    result      jsonb NOT NULL,
    at          timestamptz NOT NULL
);
CREATE UNIQUE INDEX inventory_journal_request ON inventory_journal (request_id);
CREATE INDEX inventory_journal_sku ON inventory_journal (sku, seq);

-- Transactional outbox: one row per touched SKU per batch, relayed to a Redis Stream and
-- deleted once published (at least once, in order per SKU).
CREATE TABLE inventory_outbox (
    id        bigserial PRIMARY KEY,
    sku       text NOT NULL,
    events    jsonb NOT NULL,
    on_hand   bigint NOT NULL,
    reserved  bigint NOT NULL,
    sold      bigint NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
