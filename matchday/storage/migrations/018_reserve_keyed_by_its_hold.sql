-- A reserve's dedupe key is its hold's primary key (issue 12, ADR 0034).
--
-- Before: every journaled request wrote a row in inventory_requests (key, batch), a heap
-- tuple and an index entry, 2 of the ~7 WAL records of a reserve. Now a reserve's
-- reservation id is derived from its request id (matchday/inventory/ids.py), so inserting
-- the hold is what refuses a retry applied as new; the hold names the batch that created
-- it, for the retry's answer. Every other kind keeps its key row.
--
-- The key moves from hashtextextended (computed by PostgreSQL, per batch) to the first 8
-- bytes of SHA-256, which the shard computes and sends: a batch probes the other kind's
-- index with the keys as parameters (a reserve's key must not be a stored key, another
-- request's derived hold must not be a stored hold), and hashing in the statement cost more
-- than the probe.

CREATE FUNCTION inventory_request_key(request_id text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT ('x' || left(encode(sha256(convert_to(request_id, 'UTF8')), 'hex'), 16))::bit(64)::bigint
$$;

-- Set by the batch that inserts the hold; NULL for holds inserted before 018, whose
-- requests' keys stay in inventory_requests.
ALTER TABLE reservations ADD COLUMN batch bigint;

-- Every journaled request's key, recomputed from the journal: its first batch.
CREATE TABLE inventory_requests_018 (
    key    bigint PRIMARY KEY,
    batch  bigint NOT NULL
);
INSERT INTO inventory_requests_018 (key, batch)
SELECT DISTINCT ON (k.key) k.key, b.id
FROM inventory_batches b
CROSS JOIN LATERAL unnest(b.kinds, b.request_ids) AS e(kind, rid)
CROSS JOIN LATERAL (SELECT inventory_request_key(e.rid) AS key) k
WHERE e.kind NOT IN (8, 9)
ORDER BY k.key, b.id;

DROP TABLE inventory_requests;
ALTER TABLE inventory_requests_018 RENAME TO inventory_requests;
ALTER INDEX inventory_requests_018_pkey RENAME TO inventory_requests_pkey;
