-- Usage ingest (docs/usage.md): folding written records into the thread
-- budgets and rollups.
--
-- Records are written at once; the budgets and rollups they add to are
-- written by usage._fold. A single record is folded in its own transaction
-- (its answer and its threshold events are immediate). A batch is folded
-- later, together with the batches around it, by usage.fold(), which the
-- server calls every AGENTPLANE_USAGE_FOLD_MS: one row update per thread per
-- fold instead of one per batch, the largest cost of ingest. Until then
-- usage.unfolded names the batch, and every read adds its records
-- (usage.pending_records), so no answer depends on when the fold runs.

CREATE OR REPLACE FUNCTION usage.fold_lock_key()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7598543208318853734::bigint $$;

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS usage._fold(bigint[]);
-- Adds the records of the batches `p_batches` (their first_ids) to the
-- thread budgets and the rollups: the one writer of both. Thresholds newly
-- reached are recorded in the same row update, under the row lock, so each
-- fires once per thread. Rows are locked in key order and the tables taken in
-- the same order in every call, so concurrent folds queue but never
-- deadlock. Returns the number of records folded.
--
-- Two statements per epoch: the first reads and groups the records and
-- writes nothing, so the transaction has no xid yet and the feed relay does
-- not wait for it (it holds back every event committed after a transaction
-- with an xid that is still open); the second writes the sums, briefly.
-- (jit off: a fold's plan looks big enough to the planner to compile, and
-- compiling costs more than the fold. The planner takes each batch's arrays
-- for 10 records, so it would sort the records to group them and size the
-- hash tables for a few dozen groups: hashing (enable_sort off) with room for
-- the groups (work_mem) halved a fold of 20 batches over 5,000 threads.)
CREATE FUNCTION usage._fold(p_batches bigint[])
RETURNS integer LANGUAGE plpgsql SET jit = off SET enable_sort = off SET work_mem = '64MB' AS $$
DECLARE
    v_shard smallint := (pg_backend_pid() % 16)::smallint;
    v_folded integer := 0;
    v_sums usage.fold_sum[];
    v_now timestamptz := now();  -- Citus: no now() in ON CONFLICT DO UPDATE
    v_n bigint;
    e integer;
BEGIN
    -- Each epoch's batches are folded on their own (a thread joins each
    -- epoch it has records in once). A reset folds what waits first, so this
    -- is one epoch but for a fold racing a reset.
    FOR e IN SELECT DISTINCT b.epoch FROM usage.batches b
             WHERE b.first_id = ANY (p_batches) ORDER BY 1 LOOP
        -- The records, combined by every key the rollups use (one hash
        -- pass; the arrays unnested side by side in the select list), then
        -- each rollup's groups from those combinations. Grouping the records
        -- by each key separately cost twice as much. A batch's day is
        -- computed once, below the fence (OFFSET 0) that keeps it out of the
        -- per-record select list; when its records' times [min_at, max_at]
        -- fall in one UTC day, that is every record's day and its `at` goes
        -- unread (unnest of NULL ends at once; the others carry on).
        WITH c AS MATERIALIZED (
            SELECT y.t, y.a, y.m, coalesce((y.at AT TIME ZONE 'UTC')::date, y.day) AS day,
                   usage.total(y.pt) AS sp, usage.total(y.ct) AS sc, count(*) AS n,
                   sum(y.cost) AS cost, usage.total(y.l) AS ls, count(y.l) AS lc,
                   usage.total(y.cpt) AS scp, usage.total(y.cwt) AS scw, usage.total(y.rt) AS sr
            FROM (SELECT b.day,
                         unnest(b.thread_ids) AS t, unnest(b.agent_ids) AS a,
                         unnest(b.models) AS m, unnest(b.prompt_tokens) AS pt,
                         unnest(b.completion_tokens) AS ct, unnest(b.latency_ms) AS l,
                         unnest(b.cost_micros) AS cost, unnest(b.ats) AS at,
                         unnest(b.cached_prompt_tokens) AS cpt,
                         unnest(b.cache_write_tokens) AS cwt, unnest(b.reasoning_tokens) AS rt
                  FROM (SELECT b.thread_ids, b.agent_ids, b.models, b.prompt_tokens,
                               b.completion_tokens, b.latency_ms, b.cost_micros,
                               b.cached_prompt_tokens, b.cache_write_tokens, b.reasoning_tokens,
                               CASE WHEN d.first_day = d.last_day THEN d.first_day
                                    ELSE (b.recorded_at AT TIME ZONE 'UTC')::date END AS day,
                               CASE WHEN d.first_day <> d.last_day THEN b.at END AS ats
                        FROM usage.batches b,
                             LATERAL (SELECT (b.min_at AT TIME ZONE 'UTC')::date AS first_day,
                                             (b.max_at AT TIME ZONE 'UTC')::date AS last_day) d
                        WHERE b.first_id = ANY (p_batches) AND b.epoch = e
                        OFFSET 0) b) y
            GROUP BY 1, 2, 3, 4),
        g AS (
            SELECT GROUPING(c.t, coalesce(c.a, ''), lower(c.m), c.day)::smallint AS kind,
                   c.t, coalesce(c.a, '') AS a, lower(c.m) AS lm, c.day,
                   usage.total(c.sp) AS sp, usage.total(c.sc) AS sc, usage.total(c.n) AS n,
                   sum(c.cost) AS cost, usage.total(c.ls) AS ls,
                   usage.total(c.lc) AS lc, usage.total(c.scp) AS scp,
                   usage.total(c.scw) AS scw, usage.total(c.sr) AS sr
            FROM c
            GROUP BY GROUPING SETS ((c.t), (coalesce(c.a, '')), (lower(c.m)), (c.day)))
        SELECT array_agg(ROW(g.kind, CASE g.kind WHEN 7 THEN g.t WHEN 11 THEN g.a WHEN 13 THEN g.lm END,
                             g.day, g.sp, g.sc, g.n, g.cost, coalesce(g.ls, 0), g.lc,
                             coalesce(g.scp, 0), coalesce(g.scw, 0), coalesce(g.sr, 0))::usage.fold_sum)
        INTO v_sums
        FROM g;

        WITH s AS MATERIALIZED (
            SELECT * FROM unnest(v_sums)),
        up AS (
            INSERT INTO usage.thread_budgets AS b (thread_id, max_tokens, prompt_tokens,
                                                   completion_tokens, fired, fired_now,
                                                   last_epoch, joined_epoch,
                                                   cached_prompt_tokens, cache_write_tokens,
                                                   reasoning_tokens)
            SELECT s.key, usage.default_max_tokens(), s.prompt_tokens, s.completion_tokens,
                   usage.crossed(s.prompt_tokens + s.completion_tokens,
                                 usage.default_max_tokens(), '{}'),
                   usage.crossed(s.prompt_tokens + s.completion_tokens,
                                 usage.default_max_tokens(), '{}'),
                   e, true, s.cached_prompt_tokens, s.cache_write_tokens, s.reasoning_tokens
            FROM s
            WHERE s.kind = 7
            ORDER BY s.key COLLATE "C"
            ON CONFLICT (thread_id) DO UPDATE SET
                prompt_tokens = b.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = b.completion_tokens + excluded.completion_tokens,
                cached_prompt_tokens = b.cached_prompt_tokens + excluded.cached_prompt_tokens,
                cache_write_tokens = b.cache_write_tokens + excluded.cache_write_tokens,
                reasoning_tokens = b.reasoning_tokens + excluded.reasoning_tokens,
                fired_now = usage.crossed(b.prompt_tokens + b.completion_tokens
                                          + excluded.prompt_tokens + excluded.completion_tokens,
                                          b.max_tokens, b.fired),
                fired = b.fired || usage.crossed(b.prompt_tokens + b.completion_tokens
                                                 + excluded.prompt_tokens + excluded.completion_tokens,
                                                 b.max_tokens, b.fired),
                joined_epoch = b.last_epoch IS DISTINCT FROM excluded.last_epoch,
                last_epoch = excluded.last_epoch,
                updated_at = v_now
            RETURNING b.thread_id, b.max_tokens, b.prompt_tokens + b.completion_tokens AS total,
                      b.fired_now, b.joined_epoch),
        ev AS (
            SELECT usage.emit_thresholds(up.thread_id, up.max_tokens, up.total, up.fired_now) AS k
            FROM up
            WHERE cardinality(up.fired_now) > 0
            ORDER BY up.thread_id),
        ue AS (
            INSERT INTO usage.epoch_rollup AS x (epoch, shard, active_threads)
            SELECT e, v_shard, count(*) FROM up WHERE up.joined_epoch HAVING count(*) > 0
            ON CONFLICT (epoch, shard) DO UPDATE SET active_threads = x.active_threads + excluded.active_threads),
        ua AS (
            INSERT INTO usage.agent_rollup AS x (epoch, agent_id, shard, prompt_tokens, completion_tokens,
                                                 request_count, cost, latency_sum, latency_count,
                                                 cached_prompt_tokens, cache_write_tokens,
                                                 reasoning_tokens)
            SELECT e, s.key, v_shard, s.prompt_tokens, s.completion_tokens, s.request_count,
                   coalesce(usage.usd(s.cost_micros), 0), s.latency_sum, s.latency_count,
                   s.cached_prompt_tokens, s.cache_write_tokens, s.reasoning_tokens
            FROM s WHERE s.kind = 11
            ORDER BY s.key COLLATE "C"
            ON CONFLICT (epoch, agent_id, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost,
                latency_sum = x.latency_sum + excluded.latency_sum,
                latency_count = x.latency_count + excluded.latency_count,
                cached_prompt_tokens = x.cached_prompt_tokens + excluded.cached_prompt_tokens,
                cache_write_tokens = x.cache_write_tokens + excluded.cache_write_tokens,
                reasoning_tokens = x.reasoning_tokens + excluded.reasoning_tokens),
        um AS (
            INSERT INTO usage.model_rollup AS x (epoch, model, shard, prompt_tokens, completion_tokens,
                                                 request_count, cost, latency_sum, latency_count,
                                                 cached_prompt_tokens, cache_write_tokens,
                                                 reasoning_tokens)
            SELECT e, s.key, v_shard, s.prompt_tokens, s.completion_tokens, s.request_count,
                   coalesce(usage.usd(s.cost_micros), 0), s.latency_sum, s.latency_count,
                   s.cached_prompt_tokens, s.cache_write_tokens, s.reasoning_tokens
            FROM s WHERE s.kind = 13
            ORDER BY s.key COLLATE "C"
            ON CONFLICT (epoch, model, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost,
                latency_sum = x.latency_sum + excluded.latency_sum,
                latency_count = x.latency_count + excluded.latency_count,
                cached_prompt_tokens = x.cached_prompt_tokens + excluded.cached_prompt_tokens,
                cache_write_tokens = x.cache_write_tokens + excluded.cache_write_tokens,
                reasoning_tokens = x.reasoning_tokens + excluded.reasoning_tokens),
        ud AS (
            INSERT INTO usage.daily_rollup AS x (day, shard, prompt_tokens, completion_tokens,
                                                 request_count, cost, cached_prompt_tokens,
                                                 cache_write_tokens, reasoning_tokens)
            SELECT s.day, v_shard, s.prompt_tokens, s.completion_tokens, s.request_count,
                   coalesce(usage.usd(s.cost_micros), 0), s.cached_prompt_tokens,
                   s.cache_write_tokens, s.reasoning_tokens
            FROM s WHERE s.kind = 14
            ORDER BY s.day
            ON CONFLICT (day, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost,
                cached_prompt_tokens = x.cached_prompt_tokens + excluded.cached_prompt_tokens,
                cache_write_tokens = x.cache_write_tokens + excluded.cache_write_tokens,
                reasoning_tokens = x.reasoning_tokens + excluded.reasoning_tokens)
        SELECT coalesce(sum(s.request_count), 0) + 0 * (SELECT count(*) FROM ev)
        INTO v_n
        FROM s WHERE s.kind = 14;
        v_folded := v_folded + v_n;
    END LOOP;
    RETURN v_folded;
END
$$;

-- Folds the oldest waiting batches, up to about `p_max_records` records
-- (NULL: all), and takes them out of usage.unfolded; returns how many
-- records. The caller holds the fold lock, so nobody else takes them between
-- the pick and the delete (which comes last: see usage._fold on xids).
CREATE OR REPLACE FUNCTION usage._fold_waiting(p_max_records integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_first bigint[];
    v_n integer;
BEGIN
    SELECT array_agg(p.first_id ORDER BY p.first_id)
    INTO v_first
    FROM (SELECT u.first_id,
                 sum(u.last_id - u.first_id + 1) OVER (ORDER BY u.first_id)
                     - (u.last_id - u.first_id + 1) AS before
          FROM usage.unfolded u) p
    WHERE p_max_records IS NULL OR p.before < greatest(p_max_records, 1);
    IF v_first IS NULL THEN
        RETURN 0;
    END IF;
    v_n := usage._fold(v_first);
    DELETE FROM usage.unfolded WHERE first_id = ANY (v_first);
    RETURN v_n;
END
$$;

-- Whether a fold is due: at least `p_min_records` records wait, or the
-- newest waiting batch is older than `p_quiet` (the stream of batches has
-- paused), or the oldest is older than `p_max_age`. A fold costs about as much
-- per thread it updates as per record it adds (a budget row update, its
-- groups), so under a steady stream folding fewer, larger steps is cheaper;
-- once the stream pauses, nothing is gained by waiting. (No row waits: not
-- due.)
CREATE OR REPLACE FUNCTION usage.fold_due(p_min_records integer, p_quiet interval,
                                          p_max_age interval)
RETURNS boolean LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_n      numeric;
    v_newest bigint;
    v_oldest bigint;
BEGIN
    -- The queue first, then its newest and oldest batch by key: Citus runs
    -- neither an aggregate's correlated subquery nor a join off the key.
    SELECT sum(u.last_id - u.first_id + 1), max(u.first_id), min(u.first_id)
    INTO v_n, v_newest, v_oldest
    FROM usage.unfolded u;
    IF v_n IS NULL THEN
        RETURN false;
    END IF;
    RETURN v_n >= p_min_records
        OR (SELECT b.recorded_at FROM usage.batches b WHERE b.first_id = v_newest)
           < now() - p_quiet
        OR (SELECT b.recorded_at FROM usage.batches b WHERE b.first_id = v_oldest)
           < now() - p_max_age;
END
$$;

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS usage.fold(integer, integer, interval, interval);
-- Folds the oldest written-behind batches, up to about `p_max_records`
-- records, in one transaction; returns how many records it folded (0 when
-- none waited or another fold is running). With `p_min_records`, only when
-- usage.fold_due(p_min_records, p_quiet, p_max_age) says so (the server's
-- folder: src/db/usage_folder.rs); without, whatever waits. Anyone may call
-- it at any time.
CREATE FUNCTION usage.fold(p_max_records integer DEFAULT 100000,
                           p_min_records integer DEFAULT NULL,
                           p_quiet interval DEFAULT NULL, p_max_age interval DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM usage.unfolded) THEN
        RETURN 0;
    END IF;
    IF p_min_records IS NOT NULL AND NOT usage.fold_due(p_min_records, p_quiet, p_max_age) THEN
        RETURN 0;
    END IF;
    IF NOT pg_try_advisory_xact_lock(usage.fold_lock_key()) THEN
        RETURN 0;  -- the running fold takes what waits
    END IF;
    RETURN usage._fold_waiting(coalesce(p_max_records, 100000));
END
$$;

-- Records written but not folded yet (the `agentplane_usage_unfolded_records`
-- gauge): how far the fold is behind.
CREATE OR REPLACE FUNCTION usage.unfolded_records()
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(b.n), 0)::bigint
      FROM usage.unfolded u
      JOIN usage.batches b ON b.first_id = u.first_id
$$;
