-- The ledger's primary key is its id alone (issue 8, figure 2; README
-- "Benchmarks").
--
-- It was (user_id, id): an index whose inserts land on a random leaf (the
-- user's), so after every checkpoint each spend wrote a full-page image of
-- that leaf to the WAL, on top of the history index's. Keyed by the identity
-- alone, inserts append at the right edge. Every lookup of one ledger row
-- knows its id (the feed's join, (de)activation), and user_id stays in their
-- conditions; per-user reads use transactions_history.
ALTER TABLE credits.transactions
    DROP CONSTRAINT transactions_pkey,
    ADD CONSTRAINT transactions_pkey PRIMARY KEY (id);
