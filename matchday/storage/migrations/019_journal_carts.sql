-- Each journal entry's cart, beside its reservation id (issue 12).
--
-- The outbox relay announces a hold's cart with each of its events. It read the cart from the
-- entry's reservation row: one index scan per entry, ~55% of its read's time and ~2 us of
-- PostgreSQL's CPU per reserve (bench.relay, 2026-12-05). A batch now stores the carts of its
-- entries (NULL for a stock change) as one more array, which the shard has in hand. Batches
-- written before 019 have none (NULL): the relay still reads theirs from the reservations.
ALTER TABLE inventory_batches ADD COLUMN carts text[];
