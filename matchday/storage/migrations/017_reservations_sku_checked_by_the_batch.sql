-- A new reservation's SKU is checked by the batch that inserts it, not by a foreign key
-- (issue 12). The key's check is a query per inserted hold: 0.46 ms of a 32-hold batch's
-- 2.9 ms under EXPLAIN ANALYZE, 8-14% of PostgreSQL's CPU per batch. Every batch that
-- inserts a hold updates that SKU's counters row in the same statement, and refuses itself
-- when a hold names a SKU it did not count (inventory_batch.BATCH_SQL); nothing deletes an
-- inventory row. The dedupe keys went without a foreign key for the same reason (010).
ALTER TABLE reservations DROP CONSTRAINT IF EXISTS reservations_sku_fkey;
