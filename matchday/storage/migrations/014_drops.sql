-- Drops of the waiting room (issue 16, ADR 0026). The queue itself lives in Redis; a drop's
-- definition and state are durable here. Only matchday.storage.drops_repo writes these tables.

CREATE TABLE drops (
    drop_id        text PRIMARY KEY CHECK (drop_id ~ '^d_[a-z2-7]{16}$'),
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 80),
    state          text NOT NULL DEFAULT 'scheduled'
                   CHECK (state IN ('scheduled', 'open', 'paused', 'closed')),
    opens_at       timestamptz,
    rate_per_s     double precision NOT NULL CHECK (rate_per_s > 0),
    pass_ttl_s     double precision NOT NULL CHECK (pass_ttl_s > 0),
    pow_bits       integer NOT NULL CHECK (pow_bits BETWEEN 0 AND 24),
    address_limit  integer NOT NULL CHECK (address_limit >= 1),
    skus           text[] NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drops_newest ON drops (created_at DESC);

-- The SKUs of drops that are not closed: the primary key keeps a SKU in one such drop at
-- most; closing a drop deletes its rows. Every replica reads this table every 2 s.
CREATE TABLE drop_skus (
    sku      text PRIMARY KEY REFERENCES inventory (sku),
    drop_id  text NOT NULL REFERENCES drops (drop_id)
);
CREATE INDEX drop_skus_by_drop ON drop_skus (drop_id);
