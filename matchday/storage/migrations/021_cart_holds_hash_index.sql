-- A cart's holds are found by a hash index on cart_id, not a B-tree (issue 12, ADR 0038).
--
-- Every reserve inserts its hold's row, and each of the row's index entries is a descent
-- of a B-tree: perf of a shard's backend at 64 reserves a batch spent 45% of its CPU in
-- btinsert, most of it comparing text keys and reading pages. The cart index is only ever
-- asked for one cart (a cart's lines, checkout's count of its other holds), which a hash
-- index answers from one bucket page; its entries are 4-byte hash codes. In process, 1,500
-- batches of 64 reserves, a fresh database per run: PostgreSQL 13.9-14.1 -> 13.0-13.2 us
-- per reserve with ids like bench.inventory's, 14.3-15.0 -> 13.1-14.2 with random ones.
--
-- Same name, same queries: only the access method changes. Hash indexes are WAL-logged and
-- crash-safe since PostgreSQL 10.
DROP INDEX reservations_by_cart;
CREATE INDEX reservations_by_cart ON reservations USING hash (cart_id);
