-- The admin side: API keys with a TOTP second factor, an append-only audit log, and batch
-- stock imports with a per-row record so that an interrupted import can be resumed.

-- Only a hash of each key's secret is kept (matchday/admin/auth.py says why sha256 suffices).
-- The TOTP secret has to be kept in the clear: the server computes the same codes as the
-- authenticator app (ADR 0005).
CREATE TABLE admin_keys (
    key_id           text PRIMARY KEY,
    name             text NOT NULL,
    secret_hash      bytea NOT NULL,
    totp_secret      text NOT NULL,
    created_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    -- The last accepted TOTP time step: a code for this step or an earlier one is a replay.
    last_totp_step   bigint,
    failed_attempts  integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
    locked_until     timestamptz
);

-- key_id is NULL for actions not taken with an API key (the CLI on the operator's machine,
-- refused authentications with a malformed key).
CREATE TABLE admin_audit (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL,
    key_id      text,
    action      text NOT NULL,
    target      text NOT NULL DEFAULT '',
    request_id  text,
    params      jsonb NOT NULL DEFAULT '{}'::jsonb,
    outcome     text NOT NULL,
    client      text NOT NULL DEFAULT ''
);
CREATE INDEX admin_audit_recent ON admin_audit (id DESC);
CREATE INDEX admin_audit_by_action ON admin_audit (action, id DESC);

-- Append-only: the application role can insert and read, never rewrite history. (A
-- superuser can still drop the trigger; backups are the defence against that.)
CREATE FUNCTION admin_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'admin_audit is append-only';
END;
$$;
CREATE TRIGGER admin_audit_no_update_or_delete
    BEFORE UPDATE OR DELETE ON admin_audit
    FOR EACH ROW EXECUTE FUNCTION admin_audit_append_only();
CREATE TRIGGER admin_audit_no_truncate
    BEFORE TRUNCATE ON admin_audit
    FOR EACH STATEMENT EXECUTE FUNCTION admin_audit_append_only();

CREATE TABLE stock_imports (
    import_id       text PRIMARY KEY,
    key_id          text,
    content_sha256  text NOT NULL,
    status          text NOT NULL
                    CHECK (status IN ('pending', 'applied', 'partial', 'rejected')),
    row_count       integer NOT NULL CHECK (row_count >= 0),
    created_at      timestamptz NOT NULL,
    finished_at     timestamptz,
    -- Validation errors of a rejected file, or the engine's refusals of a partial import.
    errors          jsonb NOT NULL DEFAULT '[]'::jsonb
);

-- The validated plan, one row per CSV line, written before anything is applied: a resumed
-- import re-sends only the rows not yet recorded as answered.
CREATE TABLE stock_import_rows (
    import_id  text NOT NULL REFERENCES stock_imports (import_id),
    line       integer NOT NULL,
    sku        text NOT NULL,
    action     text NOT NULL CHECK (action IN ('restock', 'set')),
    quantity   bigint NOT NULL,
    status     text NOT NULL CHECK (status IN ('pending', 'applied', 'refused')),
    result     jsonb,
    PRIMARY KEY (import_id, line)
);
