-- Carts and orders. A cart's lines are not stored here: they are its reservations
-- (reservations.cart_id), written by the inventory engine before it answers, so a cart can
-- never disagree with the stock it holds.

CREATE TABLE carts (
    cart_id      text PRIMARY KEY,
    customer_id  text NOT NULL,
    status       text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'checked_out')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    order_id     text
);
CREATE INDEX carts_by_customer ON carts (customer_id, created_at DESC);

CREATE TABLE orders (
    order_id         text PRIMARY KEY,
    cart_id          text NOT NULL REFERENCES carts (cart_id),
    customer_id      text NOT NULL,
    idempotency_key  text NOT NULL,
    status           text NOT NULL CHECK (status IN (
                         'pending_payment', 'payment_pending', 'requires_action',
                         'paid', 'payment_failed', 'cancelled', 'refunded')),
    total_cents      bigint NOT NULL CHECK (total_cents >= 0),
    currency         text NOT NULL,
    payment_token    text NOT NULL,
    gateway          text,
    payment_ref      text,
    failure_code     text,
    failure_message  text,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (customer_id, idempotency_key)
);
-- One checkout at a time per cart: a second one, under another idempotency key, is refused.
CREATE UNIQUE INDEX orders_one_active_per_cart ON orders (cart_id)
    WHERE status IN ('pending_payment', 'payment_pending', 'requires_action', 'paid');
CREATE INDEX orders_by_customer ON orders (customer_id, created_at DESC);
CREATE INDEX orders_unsettled ON orders (updated_at)
    WHERE status IN ('pending_payment', 'payment_pending');

CREATE TABLE order_lines (
    order_id          text NOT NULL REFERENCES orders (order_id),
    reservation_id    text NOT NULL,
    sku               text NOT NULL,
    qty               integer NOT NULL CHECK (qty > 0),
    unit_price_cents  bigint NOT NULL CHECK (unit_price_cents >= 0),
    title             text NOT NULL,
    PRIMARY KEY (order_id, reservation_id)
);

-- Every status an order went through, in order: the history shown to the customer and the
-- replay source for its live status stream.
CREATE TABLE order_events (
    seq       bigserial PRIMARY KEY,
    order_id  text NOT NULL REFERENCES orders (order_id),
    status    text NOT NULL,
    detail    jsonb NOT NULL DEFAULT '{}',
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_events_by_order ON order_events (order_id, seq);
