-- Automatic drops and the provenance of a drop's rate (issue 16, ADR 0026). Only
-- matchday.storage.drops_repo writes these columns.

-- 'auto': opened by the waiting room itself on a SKU whose adds outran its shard; it closes
-- itself too. An operator's drop is never closed automatically.
ALTER TABLE drops ADD COLUMN origin text NOT NULL DEFAULT 'operator'
    CHECK (origin IN ('operator', 'auto'));
-- Where rate_per_s came from: 'operator', the 'setting' of automatic drops, or the capacity
-- profile and the arithmetic that derived it ('auto: ...').
ALTER TABLE drops ADD COLUMN rate_source text NOT NULL DEFAULT 'operator'
    CHECK (length(rate_source) BETWEEN 1 AND 400);
CREATE INDEX drops_live_auto ON drops (drop_id) WHERE origin = 'auto' AND state <> 'closed';
