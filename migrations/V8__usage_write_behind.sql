-- Usage batches are written behind (issue 8, figure 5; README "Benchmarks").
--
-- A batch used to update every thread budget and rollup it touched in its own
-- transaction: about half of its cost, paid again by every batch for the same
-- threads. Now a batch writes its records and one row naming them in
-- usage.unfolded; usage.fold() adds many batches to the budgets and rollups at
-- once (one row update per thread per fold, not per batch). Every read adds
-- the records not folded yet, so answers stay exact (sql/usage_ingest.sql).

-- 1. A batch's records get consecutive ids, so one row (first_id, last_id)
--    names them: a batch takes one block of usage.max_batch() ids from this
--    sequence instead of one nextval per record. Ids keep increasing in the
--    order batches take their blocks; gaps between blocks are unused. (The
--    column default takes a block per row: only for a writer that does not
--    set ids, such as the previous release's SQL until this release's
--    functions replace it.)
CREATE SEQUENCE usage.record_blocks INCREMENT BY 10000 MINVALUE 1;
SELECT setval('usage.record_blocks', coalesce((SELECT max(id) FROM usage.records), 0) + 1, false);
ALTER TABLE usage.records ALTER COLUMN id DROP IDENTITY IF EXISTS;
ALTER TABLE usage.records ALTER COLUMN id SET DEFAULT nextval('usage.record_blocks');
ALTER SEQUENCE usage.record_blocks OWNED BY usage.records.id;

-- 2. Batches written but not yet added to budgets and rollups.
CREATE TABLE usage.unfolded (
    first_id  bigint PRIMARY KEY,
    last_id   bigint NOT NULL,
    CHECK (last_id >= first_id)
);
COMMENT ON TABLE usage.unfolded IS
    'usage records first_id..last_id are written but not yet in the budgets and rollups (usage.fold)';

-- 3. The per-thread index is a b-tree on (thread, id): a fold-pending read
--    finds one thread's records inside an id range with one probe, and a
--    thread's history reads newest first without a sort. The hash index it
--    replaces walked an ever longer overflow chain per insert (a hash bucket
--    holds every record of its threads): 10% of a batch. Built before the
--    hash index is dropped, so per-thread reads always have an index.
CREATE INDEX IF NOT EXISTS records_thread_id ON usage.records (thread_id, id);
DROP INDEX IF EXISTS usage.records_thread;
