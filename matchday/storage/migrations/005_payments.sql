-- Payments (issue 4, ADR 0008): every gateway attempt, the one capture per order, the retry
-- queue the payments worker drains, webhook de-duplication, fraud signals and reports.

-- An order can be held for review by the velocity rules before any charge.
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check CHECK (status IN (
    'pending_payment', 'payment_pending', 'requires_action', 'review',
    'paid', 'payment_failed', 'cancelled', 'refunded'));
DROP INDEX IF EXISTS orders_one_active_per_cart;
CREATE UNIQUE INDEX orders_one_active_per_cart ON orders (cart_id)
    WHERE status IN ('pending_payment', 'payment_pending', 'requires_action', 'review', 'paid');

-- One row per (order, attempt, gateway), written BEFORE the gateway is called ('started')
-- and completed after. A 'started' row without an intent id is an ambiguous call: the intent
-- is looked up (by its metadata key) before anything is sent again. localstripe ignores
-- Idempotency-Key, so this table is what makes a retry safe there.
CREATE TABLE payment_attempts (
    order_id     text NOT NULL REFERENCES orders (order_id),
    attempt      integer NOT NULL CHECK (attempt > 0),
    gateway      text NOT NULL,
    intent_id    text,
    status       text NOT NULL,           -- started, succeeded, requires_capture, declined, ...
    error        text,
    risk_level   text,                    -- Stripe's charge.outcome.risk_level, when given
    fingerprint  text,                    -- the card's fingerprint (never the number)
    started_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (order_id, attempt, gateway)
);
CREATE INDEX payment_attempts_by_intent ON payment_attempts (intent_id);
CREATE INDEX payment_attempts_open ON payment_attempts (updated_at)
    WHERE status IN ('started', 'requires_capture', 'unknown');

-- At most one captured payment per order, across every gateway and attempt: an intent is
-- captured only by the process that inserted its row here. A duplicate authorisation (a
-- timed-out call the gateway processed after all) is cancelled, never captured.
CREATE TABLE payment_captures (
    order_id    text PRIMARY KEY REFERENCES orders (order_id),
    gateway     text NOT NULL,
    intent_id   text NOT NULL UNIQUE,
    at          timestamptz NOT NULL DEFAULT now()
);

-- Every call the router made, for reports (attempt rows hold the latest state only).
CREATE TABLE payment_attempt_log (
    seq         bigserial PRIMARY KEY,
    order_id    text NOT NULL,
    attempt     integer NOT NULL,
    gateway     text NOT NULL,
    intent_id   text,
    status      text NOT NULL,
    error       text,
    at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_attempt_log_by_order ON payment_attempt_log (order_id, seq);

-- The outbox of orders to settle. A row is written before a charge (due after a grace
-- period) and removed once the order settles, so a crash anywhere in between leaves work the
-- worker finds. Claimed with FOR UPDATE SKIP LOCKED; a claim pushes next_at out by a lease.
CREATE TABLE payment_queue (
    order_id    text PRIMARY KEY REFERENCES orders (order_id),
    tries       integer NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL,
    last_error  text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX payment_queue_due ON payment_queue (next_at);

-- Webhook events already handled: Stripe delivers at least once and out of order.
CREATE TABLE webhook_events (
    event_id     text PRIMARY KEY,
    account      text NOT NULL,
    type         text NOT NULL,
    object_id    text,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Velocity signals, one per checkout that reached the payment step.
CREATE TABLE checkout_signals (
    order_id     text PRIMARY KEY,
    customer_id  text NOT NULL,
    fingerprint  text,
    client_ip    text,
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkout_signals_customer ON checkout_signals (customer_id, at);
CREATE INDEX checkout_signals_fingerprint ON checkout_signals (fingerprint, at);
CREATE INDEX checkout_signals_ip ON checkout_signals (client_ip, at);

-- Suspicious activity for the reports: velocity holds, high risk, late or duplicate charges,
-- disputes. Never card data: ids, codes and counts only.
CREATE TABLE suspicious_activity (
    seq          bigserial PRIMARY KEY,
    kind         text NOT NULL,
    order_id     text,
    customer_id  text,
    detail       jsonb NOT NULL DEFAULT '{}',
    at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX suspicious_activity_by_kind ON suspicious_activity (kind, at);

CREATE TABLE disputes (
    dispute_id   text PRIMARY KEY,
    account      text NOT NULL,
    charge_id    text,
    intent_id    text,
    order_id     text,
    amount_cents bigint,
    reason       text,
    status       text,
    at           timestamptz NOT NULL DEFAULT now()
);

-- Refunds, keyed by our idempotency key and written before the gateway is called, so a
-- retried refund is looked up rather than sent twice (localstripe ignores Idempotency-Key).
CREATE TABLE payment_refunds (
    idempotency_key  text PRIMARY KEY,
    gateway          text NOT NULL,
    intent_id        text NOT NULL,
    refund_id        text,
    amount_cents     bigint NOT NULL CHECK (amount_cents > 0),
    status           text NOT NULL,
    at               timestamptz NOT NULL DEFAULT now()
);
