-- A large batch's journal arrays are stored out of line uncompressed (issue 12, ADR 0036).
--
-- A batch row past toast_tuple_target (8,160 bytes: about 60 reserves with the shop's
-- request ids) was compressed with pglz before it went out of line: 14% of PostgreSQL's
-- CPU at 256 callers (perf, 2026-12-05), and mostly wasted, since the shop's request ids,
-- hold ids and cart ids are random and pglz gives up on them only after reading them. This
-- build of PostgreSQL has no lz4. In process, 1,500 batches of 220 reserves with random ids:
-- 14.1-14.6 us of PostgreSQL's CPU per reserve before, 11.4-12.0 after; the table and its
-- TOAST take a third more room (about 35 bytes more per reserve).
--
-- skus keeps pglz: a hot batch repeats one SKU, which compresses 45-fold for little work.
-- New rows only: a batch written before 020 stays as it was, and reads the same.
ALTER TABLE inventory_batches
    ALTER COLUMN kinds SET STORAGE EXTERNAL,
    ALTER COLUMN request_ids SET STORAGE EXTERNAL,
    ALTER COLUMN refs SET STORAGE EXTERNAL,
    ALTER COLUMN qtys SET STORAGE EXTERNAL,
    ALTER COLUMN avail_before SET STORAGE EXTERNAL,
    ALTER COLUMN avail_after SET STORAGE EXTERNAL,
    ALTER COLUMN expires SET STORAGE EXTERNAL,
    ALTER COLUMN on_hand SET STORAGE EXTERNAL,
    ALTER COLUMN sold SET STORAGE EXTERNAL,
    ALTER COLUMN pcl SET STORAGE EXTERNAL,
    ALTER COLUMN lst SET STORAGE EXTERNAL,
    ALTER COLUMN cap SET STORAGE EXTERNAL,
    ALTER COLUMN carts SET STORAGE EXTERNAL;
