-- A shop cart's holds are found in a range of the primary key, not in a cart index
-- (issue 12, ADR 0041).
--
-- Every shop add is tagged with its cart's creation time (ADR 0039), so a cart's holds have
-- ids 't<its tag>.<8 hex>.<8 hex>': one range of reservations_pkey, which every hold pays
-- for anyway. The hash index on cart_id then only needs the holds without a tag, those made
-- before 0039 and by callers that tag nothing (an order's hold-again, the channels), so it
-- becomes partial and a tagged hold writes no entry to it. In bench.inventory, dropping the
-- cart index took 1.8 us of 21.2 per durable reserve (docs/performance-history.md,
-- "2026-12-05, late night").
--
-- The range needs byte order: in a linguistic collation, '.' may be ignored and letters may
-- contract (Danish "aa"), so the ids' order would not be the tags'. The column takes
-- COLLATE "C": equality is unchanged, the primary key is rebuilt in byte order, and a
-- comparison with a column of the default collation takes "C" (a non-default implicit
-- collation wins), so no query has to name it.
ALTER TABLE reservations ALTER COLUMN reservation_id TYPE text COLLATE "C";

DROP INDEX reservations_by_cart;
CREATE INDEX reservations_by_cart ON reservations USING hash (cart_id)
    WHERE left(reservation_id, 1) <> 't';

-- The range of a cart's tagged holds, from its creation time. The shop tagged each with
-- Python's round(float(epoch) * 1000), which is the floor or the ceiling of the exact
-- milliseconds, so the range takes both: [t<floor>, t<ceiling + 1>). Tags are 11 hex digits,
-- zero-padded, so byte order is the tags' order.
CREATE FUNCTION cart_holds_from(made timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN 't' || lpad(to_hex(floor(extract(epoch FROM made) * 1000)::bigint), 11, '0');

CREATE FUNCTION cart_holds_until(made timestamptz) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN 't' || lpad(to_hex(ceil(extract(epoch FROM made) * 1000)::bigint + 1), 11, '0');
