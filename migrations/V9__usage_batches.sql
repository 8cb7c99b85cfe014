-- Usage records are stored a batch to a row (issue 8, figure 5; README
-- "Benchmarks").
--
-- A row per record cost a heap tuple and three index entries per record,
-- about seven times COPY's cost before any rule ran, so batch ingest could not
-- come near COPY's rate. Now a batch is one row of parallel arrays, one
-- element per record, compressed with lz4: a 1,000-record batch writes one
-- tuple, one index entry and about 16 bytes per record. usage.records stays as
-- a view with the same columns (sql/usage.sql), so analysts, reporting and
-- every SQL reader see the same records as before.

-- 1. Fold whatever the previous release left waiting, with its own
--    functions, so every record below is in the budgets and rollups. (On a
--    new database nothing waits and those functions do not exist yet.)
DO $$
BEGIN
    IF to_regprocedure('usage._fold_waiting(integer)') IS NOT NULL THEN
        PERFORM usage._fold_waiting(NULL);
    END IF;
    IF EXISTS (SELECT 1 FROM usage.unfolded) THEN
        RAISE EXCEPTION 'usage.unfolded still names batches; fold them before upgrading';
    END IF;
END $$;

-- 2. The batches. A batch's records have the ids first_id .. first_id + n - 1
--    in array order; element i of every array belongs to record i.
CREATE TABLE usage.batches (
    first_id           bigint PRIMARY KEY,
    n                  integer NOT NULL CHECK (n BETWEEN 1 AND 10000),
    epoch              integer NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),  -- created_at of records without `at`
    min_at             timestamptz NOT NULL,                -- the records' created_at range,
    max_at             timestamptz NOT NULL,                -- for time filters
    thread_ids         text[] COLLATE "C" NOT NULL,
    agent_ids          text[] COLLATE "C" NOT NULL,
    models             text[] COLLATE "C" NOT NULL,
    providers          text[] NOT NULL,                     -- as given, else the price's
    prompt_tokens      bigint[] NOT NULL,
    completion_tokens  bigint[] NOT NULL,
    latency_ms         bigint[] NOT NULL,
    costs              numeric[] NOT NULL,                  -- NULL element: no price
    price_ids          bigint[] NOT NULL,
    user_ids           text[] NOT NULL,
    variant_ids        text[] NOT NULL,
    metadata           jsonb[] NOT NULL,                    -- NULL element: {}
    at                 timestamptz[] NOT NULL,              -- NULL element: recorded_at
    CHECK (min_at <= max_at)
);
-- lz4, not the default pglz: compressing a 1,000-record batch took pglz about
-- 3 ms and lz4 0.1 ms, for about the same size (16 bytes per record).
ALTER TABLE usage.batches
    ALTER thread_ids SET COMPRESSION lz4, ALTER agent_ids SET COMPRESSION lz4,
    ALTER models SET COMPRESSION lz4, ALTER providers SET COMPRESSION lz4,
    ALTER prompt_tokens SET COMPRESSION lz4, ALTER completion_tokens SET COMPRESSION lz4,
    ALTER latency_ms SET COMPRESSION lz4, ALTER costs SET COMPRESSION lz4,
    ALTER price_ids SET COMPRESSION lz4, ALTER user_ids SET COMPRESSION lz4,
    ALTER variant_ids SET COMPRESSION lz4, ALTER metadata SET COMPRESSION lz4,
    ALTER at SET COMPRESSION lz4;
COMMENT ON TABLE usage.batches IS
    'usage records, one row per batch: element i of each array is record first_id + i - 1 (read them through the usage.records view)';

-- 3. Move the records: each run of consecutive ids within one epoch becomes
--    batches of at most 10,000 records (ids are unchanged).
INSERT INTO usage.batches (first_id, n, epoch, recorded_at, min_at, max_at, thread_ids, agent_ids,
                           models, providers, prompt_tokens, completion_tokens, latency_ms, costs,
                           price_ids, user_ids, variant_ids, metadata, at)
SELECT min(id), count(*), epoch, max(created_at), min(created_at), max(created_at),
       array_agg(thread_id ORDER BY id), array_agg(agent_id ORDER BY id),
       array_agg(model ORDER BY id), array_agg(provider ORDER BY id),
       array_agg(prompt_tokens ORDER BY id), array_agg(completion_tokens ORDER BY id),
       array_agg(latency_ms ORDER BY id), array_agg(cost ORDER BY id),
       array_agg(price_id ORDER BY id), array_agg(user_id ORDER BY id),
       array_agg(variant_id ORDER BY id), array_agg(metadata ORDER BY id),
       array_agg(created_at ORDER BY id)
FROM (SELECT r.*, (row_number() OVER (PARTITION BY epoch, island ORDER BY id) - 1) / 10000 AS chunk
      FROM (SELECT x.*, x.id - row_number() OVER (PARTITION BY x.epoch ORDER BY x.id) AS island
            FROM usage.records x) r) y
GROUP BY epoch, island, chunk;

-- 4. The record table goes (its readers are recreated from sql/ after the
--    migrations); the id sequence now belongs to the batches.
ALTER SEQUENCE usage.record_blocks OWNED BY usage.batches.first_id;
DROP TABLE usage.records CASCADE;
COMMENT ON TABLE usage.unfolded IS
    'usage batches (usage.batches.first_id) written but not yet in the budgets and rollups (usage.fold)';
