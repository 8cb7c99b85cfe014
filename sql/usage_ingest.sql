-- Usage ingest (CONTRACT §3): writing records, and folding them into the
-- thread budgets and rollups.
--
-- Records are written at once; the budgets and rollups they add to are
-- written by usage._fold. A single record is folded in its own transaction
-- (its answer and its threshold events are immediate). A batch is folded
-- later, together with the batches around it, by usage.fold(), which the
-- server calls every AGENTPLANE_USAGE_FOLD_MS: one row update per thread per
-- fold instead of one per batch (README "Benchmarks", figure 5). Until then
-- usage.unfolded names the batch, and every read adds its records
-- (usage.pending_records), so no answer depends on when the fold runs.

-- The cost of one record (USD, 6 decimals; CONTRACT: at most 6 decimals per
-- record) at a price of `ppm` / `cpm` USD per million prompt / completion
-- tokens; NULL when unpriced. Inlined where it is called.
CREATE OR REPLACE FUNCTION usage.cost_of(pt bigint, ct bigint, ppm numeric, cpm numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round((pt * ppm + ct * cpm) / 1000000, 6)
$$;

-- Whether every element of `p` is NULL or an identifier by ap.is_ident's
-- rule (the set [A-Za-z0-9._:@/-], at most 128 long; '' is checked by the
-- caller), tested on the whole array in C: no character outside the set in
-- the elements run together, and no run of 129 between the spaces that
-- separate them. The "C" collation makes the regexes byte-wise, about 4x
-- faster. (PL/pgSQL: a SQL function that cannot be inlined is planned again
-- at every call.)
CREATE OR REPLACE FUNCTION usage.idents_ok(p text[])
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN NOT (array_to_string(p, '') COLLATE "C" ~ '[^A-Za-z0-9._:@/-]'
                OR array_to_string(p, ' ') COLLATE "C" ~ '[^ ]{129}');
END
$$;

DROP FUNCTION IF EXISTS usage._ingest(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                      text[], text[], jsonb[], timestamptz[]);
DROP FUNCTION IF EXISTS usage._insert(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                      text[], text[], jsonb[], timestamptz[]);
-- The one writer of records. Parallel arrays, one element per record; all
-- validated first (400 naming the first bad record, nothing written). The
-- records get the consecutive ids first_id..last_id, in array order.
CREATE FUNCTION usage._insert(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[], p_at timestamptz[],
    OUT inserted integer, OUT total_tokens bigint, OUT total_cost numeric,  -- NULL: none priced
    OUT first_id bigint, OUT last_id bigint)
LANGUAGE plpgsql SET enable_mergejoin = off AS $$
DECLARE
    n integer := coalesce(cardinality(p_thread_ids), 0);
    v_epoch integer;
    v_bad record;
    v_idents_bad boolean;
    v_now timestamptz := now();
    v_costs numeric[];
    v_price_ids bigint[];
    v_providers text[];
    v_min_at timestamptz;
    v_max_at timestamptz;
    v_km text[];
    v_kid bigint[];
    v_kprov text[];
    v_kppm numeric[];
    v_kcpm numeric[];
BEGIN
    IF n > usage.max_batch() THEN
        PERFORM ap.raise(400, 'batch_too_large',
            format('a batch holds at most %s records; got %s', usage.max_batch(), n),
            jsonb_build_object('max', usage.max_batch(), 'count', n));
    END IF;
    IF n <> coalesce(cardinality(p_agent_ids), 0) OR n <> coalesce(cardinality(p_models), 0)
       OR n <> coalesce(cardinality(p_providers), 0) OR n <> coalesce(cardinality(p_prompt_tokens), 0)
       OR n <> coalesce(cardinality(p_completion_tokens), 0) OR n <> coalesce(cardinality(p_latency_ms), 0)
       OR n <> coalesce(cardinality(p_user_ids), 0) OR n <> coalesce(cardinality(p_variant_ids), 0)
       OR n <> coalesce(cardinality(p_metadata), 0) OR n <> coalesce(cardinality(p_at), 0) THEN
        PERFORM ap.raise(400, 'invalid_batch', 'every field array must have one element per record');
    END IF;
    inserted := 0; total_tokens := 0;
    IF n = 0 THEN
        RETURN;
    END IF;

    -- Identifier arrays: one regex over each whole array (ap.is_ident's
    -- rule, usage.idents_ok).
    v_idents_bad := NOT (usage.idents_ok(p_thread_ids) AND usage.idents_ok(p_agent_ids)
                         AND usage.idents_ok(p_models) AND usage.idents_ok(p_user_ids)
                         AND usage.idents_ok(p_variant_ids));
    -- Fast path: whole-array checks (C loops). Only when one fails is every
    -- record looked at, to name the first bad one.
    IF v_idents_bad
       OR array_position(p_thread_ids, NULL) IS NOT NULL OR '' = ANY (p_thread_ids)
       OR '' = ANY (p_agent_ids)
       OR array_position(p_models, NULL) IS NOT NULL OR '' = ANY (p_models)
       OR '' = ANY (p_providers) OR '' = ANY (p_user_ids) OR '' = ANY (p_variant_ids)
       OR (cardinality(array_remove(p_providers, NULL)) > 0
           AND EXISTS (SELECT 1 FROM unnest(p_providers) pv WHERE length(pv) > 128))
       OR array_position(p_prompt_tokens, NULL) IS NOT NULL OR 0 > ANY (p_prompt_tokens)
       OR usage.max_count() < ANY (p_prompt_tokens)
       OR array_position(p_completion_tokens, NULL) IS NOT NULL OR 0 > ANY (p_completion_tokens)
       OR usage.max_count() < ANY (p_completion_tokens)
       OR coalesce(0 > ANY (p_latency_ms), false)
       OR coalesce(usage.max_count() < ANY (p_latency_ms), false)
       OR cardinality(array_remove(p_metadata, NULL)) > 0 THEN
        SELECT x.i - 1 AS idx, x.field INTO v_bad
        FROM (SELECT i, CASE
                WHEN NOT ap.is_ident(t) THEN 'threadId'
                WHEN a IS NOT NULL AND NOT ap.is_ident(a) THEN 'agentId'
                WHEN NOT ap.is_ident(m) THEN 'model'
                WHEN pv IS NOT NULL AND length(pv) NOT BETWEEN 1 AND 128 THEN 'provider'
                WHEN pt IS NULL OR pt NOT BETWEEN 0 AND usage.max_count() THEN 'promptTokens'
                WHEN ct IS NULL OR ct NOT BETWEEN 0 AND usage.max_count() THEN 'completionTokens'
                WHEN l IS NOT NULL AND l NOT BETWEEN 0 AND usage.max_count() THEN 'latencyMs'
                WHEN u IS NOT NULL AND NOT ap.is_ident(u) THEN 'userId'
                WHEN v IS NOT NULL AND NOT ap.is_ident(v) THEN 'variantId'
                WHEN md IS NOT NULL AND jsonb_typeof(md) <> 'object' THEN 'metadata'
              END AS field
              FROM unnest(p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
                          p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids, p_metadata)
                   WITH ORDINALITY AS r(t, a, m, pv, pt, ct, l, u, v, md, i)) x
        WHERE x.field IS NOT NULL
        ORDER BY x.i
        LIMIT 1;
        IF FOUND THEN
            PERFORM ap.raise(400, 'invalid_record',
                format('record %s: %s is missing or invalid', v_bad.idx, v_bad.field),
                jsonb_build_object('index', v_bad.idx, 'field', v_bad.field));
        END IF;
    END IF;

    PERFORM pg_advisory_xact_lock_shared(usage.epoch_lock_key());
    v_epoch := usage.current_epoch();

    -- One block of ids for the whole batch (usage.record_blocks steps by
    -- usage.max_batch()).
    first_id := nextval('usage.record_blocks');
    last_id := first_id + n - 1;
    -- Pricing: every record's cost, price version and provider, as arrays in
    -- the batch's order (element i is record i).
    IF cardinality(array_remove(p_at, NULL)) = 0 THEN
        -- No record says when it happened (the usual batch): all are priced
        -- now, so each distinct model has one price, looked up once; each
        -- record finds its model's by position in those few. The select
        -- list unnests the arrays side by side and nothing joins or sorts
        -- them, so the aggregates see the records in array order.
        SELECT array_agg(x.m), array_agg(p.id), array_agg(p.provider),
               array_agg(p.prompt_per_million), array_agg(p.completion_per_million)
        INTO v_km, v_kid, v_kprov, v_kppm, v_kcpm
        FROM (SELECT DISTINCT m FROM unnest(p_models) AS m) x
        LEFT JOIN LATERAL usage.price_at(x.m, v_now) p ON true;
        SELECT array_agg(c.cost), array_agg(v_kid[c.j]), array_agg(coalesce(c.pv, v_kprov[c.j])),
               sum(c.pt + c.ct), sum(c.cost)
        INTO v_costs, v_price_ids, v_providers, total_tokens, total_cost
        FROM (SELECT y.j, y.pv, y.pt, y.ct,
                     usage.cost_of(y.pt, y.ct, v_kppm[y.j], v_kcpm[y.j]) AS cost
              FROM (SELECT array_position(v_km, unnest(p_models)) AS j,
                           unnest(p_providers) AS pv, unnest(p_prompt_tokens) AS pt,
                           unnest(p_completion_tokens) AS ct) y) c;
        v_min_at := v_now;
        v_max_at := v_now;
    ELSE
        -- Back-dated records: `pr` finds each distinct model's price key once,
        -- then each distinct (model, time) the key's version in effect (one index
        -- probe). The records, unnested side by side in the select list, find
        -- their version in a hash of those few rows (merge joins are off for this
        -- function: the planner would sort the whole batch instead), and the
        -- aggregates collect them in the batch's order (the sorted subquery).
        WITH d AS MATERIALIZED (
            SELECT DISTINCT lower(r.m COLLATE "C") AS lm, coalesce(r.at, v_now) AS ts
            FROM unnest(p_models, p_at) AS r(m, at)),
        k AS MATERIALIZED (
            SELECT m.lm, usage.price_key(m.lm) AS pk FROM (SELECT DISTINCT lm FROM d) m),
        pr AS MATERIALIZED (
            SELECT d.lm, d.ts, p.id, p.provider, p.prompt_per_million AS ppm,
                   p.completion_per_million AS cpm
            FROM d JOIN k USING (lm)
            LEFT JOIN LATERAL usage.price_version(k.pk, d.ts) p ON true),
        priced AS (
            SELECT usage.cost_of(x.pt, x.ct, pr.ppm, pr.cpm) AS cost, pr.id AS price_id,
                   coalesce(x.pv, pr.provider) AS provider, x.pt + x.ct AS tokens, x.ts
            FROM (SELECT y.i, y.lm, y.pv, y.pt, y.ct, coalesce(y.at, v_now) AS ts
                  FROM (SELECT generate_series(1, n) AS i, lower(unnest(p_models) COLLATE "C") AS lm,
                               unnest(p_providers) AS pv, unnest(p_prompt_tokens) AS pt,
                               unnest(p_completion_tokens) AS ct, unnest(p_at) AS at) y) x
            LEFT JOIN pr ON pr.lm = x.lm AND pr.ts = x.ts
            ORDER BY x.i)
        SELECT array_agg(cost), array_agg(price_id), array_agg(provider), sum(tokens), sum(cost),
               min(ts), max(ts)
        INTO v_costs, v_price_ids, v_providers, total_tokens, total_cost, v_min_at, v_max_at
        FROM priced;
    END IF;
    INSERT INTO usage.batches (first_id, n, epoch, recorded_at, min_at, max_at, thread_ids,
                               agent_ids, models, providers, prompt_tokens, completion_tokens,
                               latency_ms, costs, price_ids, user_ids, variant_ids, metadata, at)
    VALUES (first_id, n, v_epoch, v_now, v_min_at, v_max_at, p_thread_ids, p_agent_ids, p_models,
            v_providers, p_prompt_tokens, p_completion_tokens, p_latency_ms, v_costs, v_price_ids,
            p_user_ids, p_variant_ids, p_metadata, p_at);
    inserted := n;
END
$$;

CREATE OR REPLACE FUNCTION usage.fold_lock_key()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7598543208318853734::bigint $$;

DROP FUNCTION IF EXISTS usage._fold(bigint[], bigint[]);
DROP FUNCTION IF EXISTS usage._fold(bigint[]);
-- Adds the records of the batches `p_batches` (their first_ids) to the
-- thread budgets and the rollups: the one writer of both. Thresholds newly
-- reached are recorded in the same row update, under the row lock, so each
-- fires once per thread. Rows are locked in key order and the tables taken in
-- the same order in every call, so concurrent folds queue but never
-- deadlock. Returns the number of records folded.
-- (jit off: a fold's plan looks big enough to the planner to compile, and
-- compiling costs more than the fold. The planner takes each batch's arrays
-- for 10 records, so it would sort 20,000 records to group them and size the
-- hash tables for a few dozen groups: hashing (enable_sort off) with room for
-- the groups (work_mem) halved a fold of 20 batches over 5,000 threads.)
CREATE FUNCTION usage._fold(p_batches bigint[])
RETURNS integer LANGUAGE plpgsql SET jit = off SET enable_sort = off SET work_mem = '64MB' AS $$
DECLARE
    v_shard smallint := (pg_backend_pid() % 16)::smallint;
    v_folded integer := 0;
    v_n integer;
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
        -- by each key separately cost twice as much.
        WITH c AS MATERIALIZED (
            -- (bigint sums: summing them again below stays in 128-bit
            -- integers instead of numeric)
            SELECT y.t, y.a, y.m, y.at, y.rec, sum(y.pt)::bigint AS sp, sum(y.ct)::bigint AS sc,
                   count(*) AS n, sum(y.cost) AS cost, sum(y.l)::bigint AS ls, count(y.l) AS lc
            FROM (SELECT b.recorded_at AS rec, unnest(b.thread_ids) AS t,
                         unnest(b.agent_ids) AS a, unnest(b.models) AS m,
                         unnest(b.prompt_tokens) AS pt, unnest(b.completion_tokens) AS ct,
                         unnest(b.latency_ms) AS l, unnest(b.costs) AS cost, unnest(b.at) AS at
                  FROM usage.batches b
                  WHERE b.first_id = ANY (p_batches) AND b.epoch = e) y
            GROUP BY y.t, y.a, y.m, y.at, y.rec),
        g AS MATERIALIZED (
            SELECT GROUPING(c.t, coalesce(c.a, ''), lower(c.m), r.day) AS kind,
                   c.t, coalesce(c.a, '') AS a, lower(c.m) AS lm, r.day,
                   sum(c.sp)::bigint AS sp, sum(c.sc)::bigint AS sc, sum(c.n)::bigint AS n,
                   coalesce(sum(c.cost), 0) AS cost, coalesce(sum(c.ls), 0) AS ls,
                   sum(c.lc)::bigint AS lc
            FROM c
            CROSS JOIN LATERAL (SELECT (coalesce(c.at, c.rec) AT TIME ZONE 'UTC')::date AS day) r
            GROUP BY GROUPING SETS ((c.t), (coalesce(c.a, '')), (lower(c.m)), (r.day))),
        up AS (
            INSERT INTO usage.thread_budgets AS b (thread_id, max_tokens, prompt_tokens,
                                                   completion_tokens, fired, fired_now,
                                                   last_epoch, joined_epoch)
            SELECT g.t, usage.default_max_tokens(), g.sp, g.sc,
                   usage.crossed(g.sp + g.sc, usage.default_max_tokens(), '{}'),
                   usage.crossed(g.sp + g.sc, usage.default_max_tokens(), '{}'),
                   e, true
            FROM g
            WHERE g.kind = 7
            ORDER BY g.t
            ON CONFLICT (thread_id) DO UPDATE SET
                prompt_tokens = b.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = b.completion_tokens + excluded.completion_tokens,
                fired_now = usage.crossed(b.prompt_tokens + b.completion_tokens
                                          + excluded.prompt_tokens + excluded.completion_tokens,
                                          b.max_tokens, b.fired),
                fired = b.fired || usage.crossed(b.prompt_tokens + b.completion_tokens
                                                 + excluded.prompt_tokens + excluded.completion_tokens,
                                                 b.max_tokens, b.fired),
                joined_epoch = b.last_epoch IS DISTINCT FROM excluded.last_epoch,
                last_epoch = excluded.last_epoch,
                updated_at = now()
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
                                                 request_count, cost, latency_sum, latency_count)
            SELECT e, g.a, v_shard, g.sp, g.sc, g.n, g.cost, g.ls, g.lc
            FROM g WHERE g.kind = 11
            ORDER BY g.a
            ON CONFLICT (epoch, agent_id, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost,
                latency_sum = x.latency_sum + excluded.latency_sum,
                latency_count = x.latency_count + excluded.latency_count),
        um AS (
            INSERT INTO usage.model_rollup AS x (epoch, model, shard, prompt_tokens, completion_tokens,
                                                 request_count, cost, latency_sum, latency_count)
            SELECT e, g.lm, v_shard, g.sp, g.sc, g.n, g.cost, g.ls, g.lc
            FROM g WHERE g.kind = 13
            ORDER BY g.lm
            ON CONFLICT (epoch, model, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost,
                latency_sum = x.latency_sum + excluded.latency_sum,
                latency_count = x.latency_count + excluded.latency_count),
        ud AS (
            INSERT INTO usage.daily_rollup AS x (day, shard, prompt_tokens, completion_tokens,
                                                 request_count, cost)
            SELECT g.day, v_shard, g.sp, g.sc, g.n, g.cost
            FROM g WHERE g.kind = 14
            ORDER BY g.day
            ON CONFLICT (day, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost)
        SELECT coalesce(sum(g.n), 0) + 0 * (SELECT count(*) FROM ev)
        INTO v_n
        FROM g WHERE g.kind = 14;
        v_folded := v_folded + v_n;
    END LOOP;
    RETURN v_folded;
END
$$;

-- Takes the oldest waiting batches, up to about `p_max_records` records
-- (NULL: all), out of usage.unfolded and folds them; returns how many records.
-- The caller holds the fold lock.
CREATE OR REPLACE FUNCTION usage._fold_waiting(p_max_records integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    v_first bigint[];
BEGIN
    WITH pick AS (
        SELECT u.first_id,
               sum(u.last_id - u.first_id + 1) OVER (ORDER BY u.first_id)
                   - (u.last_id - u.first_id + 1) AS before
        FROM usage.unfolded u),
    taken AS (
        DELETE FROM usage.unfolded u
        USING pick p
        WHERE u.first_id = p.first_id
          AND (p_max_records IS NULL OR p.before < greatest(p_max_records, 1))
        RETURNING u.first_id, u.last_id)
    SELECT array_agg(first_id ORDER BY first_id)
    INTO v_first
    FROM taken;
    IF v_first IS NULL THEN
        RETURN 0;
    END IF;
    RETURN usage._fold(v_first);
END
$$;

DROP FUNCTION IF EXISTS usage.fold(integer);
-- Folds the oldest written-behind batches, up to about `p_max_records`
-- records, in one transaction; returns how many records it folded (0 when
-- none waited or another fold is running). The server calls it on a timer;
-- anyone may call it at any time.
CREATE FUNCTION usage.fold(p_max_records integer DEFAULT 20000)
RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM usage.unfolded) THEN
        RETURN 0;
    END IF;
    IF NOT pg_try_advisory_xact_lock(usage.fold_lock_key()) THEN
        RETURN 0;  -- the running fold takes what waits
    END IF;
    RETURN usage._fold_waiting(coalesce(p_max_records, 20000));
END
$$;

DROP FUNCTION IF EXISTS usage.record(text, text, text, text, bigint, bigint, bigint,
                                     text, text, jsonb, timestamptz);
-- POST /usage/records → {id, totalTokens, cost, budget}; one `usage` event.
-- Folded at once: the budget in the answer includes the record, and a
-- threshold the folded total reaches fires in this transaction.
CREATE FUNCTION usage.record(
    p_thread_id text, p_agent_id text, p_model text, p_provider text,
    p_prompt_tokens bigint, p_completion_tokens bigint, p_latency_ms bigint,
    p_user_id text, p_variant_id text, p_metadata jsonb, p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM usage._insert(
        ARRAY[p_thread_id], ARRAY[p_agent_id], ARRAY[p_model], ARRAY[p_provider],
        ARRAY[p_prompt_tokens], ARRAY[p_completion_tokens], ARRAY[p_latency_ms],
        ARRAY[p_user_id], ARRAY[p_variant_id], ARRAY[p_metadata], ARRAY[p_at]);
    PERFORM usage._fold(ARRAY[r.first_id]);
    PERFORM feed.emit_data('usage',
        jsonb_build_object('id', r.first_id, 'threadId', p_thread_id, 'agentId', p_agent_id,
                           'model', p_model, 'promptTokens', p_prompt_tokens,
                           'completionTokens', p_completion_tokens,
                           'totalTokens', r.total_tokens, 'cost', r.total_cost),
        p_user_id => p_user_id, p_agent => p_agent_id, p_thread_id => p_thread_id,
        p_notify => false);
    RETURN jsonb_build_object(
        'id', r.first_id,
        'totalTokens', r.total_tokens,
        'cost', r.total_cost,
        'budget', usage.thread_budget_json(p_thread_id));
END
$$;

DROP FUNCTION IF EXISTS usage.record_batch(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                           text[], text[], jsonb[], timestamptz[]);
-- POST /usage/records/batch → {inserted, totalCost}; all or nothing. One
-- `usage` event per batch, with the summary (data.batch = true). Written
-- behind: usage.unfolded names the batch until usage.fold() takes it.
CREATE FUNCTION usage.record_batch(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[], p_at timestamptz[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_cost numeric;
BEGIN
    SELECT * INTO r FROM usage._insert(
        p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens, p_completion_tokens,
        p_latency_ms, p_user_ids, p_variant_ids, p_metadata, p_at);
    v_cost := round(coalesce(r.total_cost, 0), 6);
    IF r.inserted > 0 THEN
        INSERT INTO usage.unfolded (first_id, last_id) VALUES (r.first_id, r.last_id);
        PERFORM feed.emit_data('usage',
            jsonb_build_object('batch', true, 'inserted', r.inserted,
                               'totalTokens', r.total_tokens, 'totalCost', v_cost));
    END IF;
    RETURN jsonb_build_object('inserted', r.inserted, 'totalCost', v_cost);
END
$$;
