-- Supplier connectors (ADR 0025): suppliers with sealed signing secrets, their SKU mappings,
-- pushed messages (idempotency by message id) and bulk syncs with a per-line record (a
-- durable cursor). Stock itself is only ever changed through the inventory engine.

CREATE TABLE suppliers (
    supplier_id     text PRIMARY KEY CHECK (supplier_id ~ '^[a-z0-9][a-z0-9-]{0,31}$'),
    name            text NOT NULL,
    -- AES-256-GCM under a key derived from the shop's secret key (matchday/admin/sealing.py).
    secret_sealed   text NOT NULL,
    -- The secret a rotation replaced, valid until previous_until so no message is dropped.
    previous_sealed text,
    previous_until  timestamptz,
    -- sha256 of the Idempotency-Key that issued the current secret: the same key again gets
    -- that secret again (an answer lost on the way), never a second rotation.
    issue_key       text,
    feed_url        text,
    feed_format     text NOT NULL DEFAULT 'json' CHECK (feed_format IN ('json', 'csv')),
    pull_every_s    integer CHECK (pull_every_s IS NULL OR pull_every_s >= 60),
    max_units       integer NOT NULL CHECK (max_units BETWEEN 1 AND 1000000),
    active          boolean NOT NULL DEFAULT true,
    -- Conditional requests: what the feed answered last time.
    etag            text,
    last_modified   text,
    last_pulled_at  timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);

-- A matchday SKU is fed by one supplier SKU at most: a level is all the units there are
-- (set_on_hand), so two feeds of one SKU would overwrite each other.
CREATE TABLE supplier_skus (
    supplier_id   text NOT NULL REFERENCES suppliers (supplier_id),
    supplier_sku  text NOT NULL,
    sku           text NOT NULL UNIQUE,
    -- The as-of time of the last level applied: an older line for this SKU is stale.
    level_as_of   timestamptz,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (supplier_id, supplier_sku)
);

-- One row per pushed message id: a retry gets the first answer, other content a 409.
CREATE TABLE supplier_messages (
    supplier_id    text NOT NULL REFERENCES suppliers (supplier_id),
    message_id     text NOT NULL,
    body_sha256    text NOT NULL,
    status         text NOT NULL CHECK (status IN ('pending', 'done')),
    -- Plans for unit decreases, stored before the engine is called (matchday/suppliers/apply.py).
    plans          jsonb NOT NULL DEFAULT '{}'::jsonb,
    answer         jsonb,
    received_at    timestamptz NOT NULL,
    finished_at    timestamptz,
    PRIMARY KEY (supplier_id, message_id)
);
CREATE INDEX supplier_messages_age ON supplier_messages (received_at);

CREATE TABLE supplier_syncs (
    sync_id        text PRIMARY KEY,
    supplier_id    text NOT NULL REFERENCES suppliers (supplier_id),
    source         text NOT NULL CHECK (source IN ('pull', 'upload')),
    status         text NOT NULL
                   CHECK (status IN ('queued', 'running', 'done', 'cancelled', 'rejected')),
    forced         boolean NOT NULL DEFAULT false,
    content_sha256 text NOT NULL,
    as_of          timestamptz NOT NULL,
    total_lines    integer NOT NULL CHECK (total_lines >= 0),
    -- Every line up to this one (a JSON position or a CSV file line) has an outcome.
    cursor         integer NOT NULL DEFAULT 0,
    applied        integer NOT NULL DEFAULT 0,
    unchanged      integer NOT NULL DEFAULT 0,
    rejected       integer NOT NULL DEFAULT 0,
    -- Who runs it, until when: a runner that died loses its lease and another resumes.
    lease_owner    text,
    lease_until    timestamptz,
    queued_by      text NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    report         jsonb
);
CREATE INDEX supplier_syncs_open ON supplier_syncs (created_at) WHERE status IN ('queued', 'running');
CREATE INDEX supplier_syncs_by_supplier ON supplier_syncs (supplier_id, created_at DESC);
-- The same feed content queued twice for one supplier is one sync (a re-pull, a re-upload).
CREATE UNIQUE INDEX supplier_syncs_content ON supplier_syncs (supplier_id, content_sha256)
    WHERE status IN ('queued', 'running');

CREATE TABLE supplier_sync_lines (
    sync_id       text NOT NULL REFERENCES supplier_syncs (sync_id) ON DELETE CASCADE,
    line          integer NOT NULL,
    supplier_sku  text NOT NULL,
    kind          text NOT NULL CHECK (kind IN ('level', 'delta')),
    qty           integer NOT NULL,
    plan_units    integer,
    plan_sold     bigint,
    result        jsonb,
    PRIMARY KEY (sync_id, line)
);
