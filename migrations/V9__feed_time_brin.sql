-- The feed's time index is a BRIN (issue 8, figure 2; README "Benchmarks").
--
-- Every credit movement and most other changes insert a feed event, and the
-- b-tree on created_at, used only by retention, cost each of them one more
-- index insert and WAL record (64 of a spend's ~700 WAL bytes; the spend
-- benchmark waits on WAL writes). Events arrive in time order, so a BRIN
-- finds the expired ones as well and is updated only when a block range
-- closes.
DROP INDEX IF EXISTS feed.events_created_at;
CREATE INDEX IF NOT EXISTS events_created_brin ON feed.events USING brin (created_at);
