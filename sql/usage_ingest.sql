-- Usage ingest (docs/usage.md): writing records, and folding them into the
-- thread budgets and rollups.
--
-- Records are written at once; the budgets and rollups they add to are
-- written by usage._fold. A single record is folded in its own transaction
-- (its answer and its threshold events are immediate). A batch is folded
-- later, together with the batches around it, by usage.fold(), which the
-- server calls every AGENTPLANE_USAGE_FOLD_MS: one row update per thread per
-- fold instead of one per batch, the largest cost of ingest. Until then
-- usage.unfolded names the batch, and every read adds its records
-- (usage.pending_records), so no answer depends on when the fold runs.

-- A sum of bigints that stays a bigint: int8pl as the transition, so each
-- group's state is one by-value integer (sum(bigint) keeps a 128-bit state per
-- group and returns numeric). Errors on overflow, as int8pl does; a fold's
-- sums are far below it (at most usage.max_count() per record).
CREATE OR REPLACE AGGREGATE usage.total(bigint) (
    SFUNC = int8pl, STYPE = bigint, COMBINEFUNC = int8pl, PARALLEL = SAFE);

-- A price as an integer: pico-USD per token (USD per million tokens, which
-- has 6 decimals, times 10^6). At most 10^15 (usage.model_prices' check).
CREATE OR REPLACE FUNCTION usage.pico_per_token(p_per_million numeric)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (p_per_million * 1000000)::bigint
$$;

-- The largest price (pico-USD per token) whose costs integer arithmetic
-- computes exactly: tokens are at most 10^9, so pt * pp + ct * cp stays
-- below 2^63 up to 4,000 USD per million tokens.
CREATE OR REPLACE FUNCTION usage.int_price_max()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 4000000000::bigint $$;

-- usage.cost_micros by integer arithmetic alone: for prices at most
-- usage.int_price_max(). Inlined where it is called.
CREATE OR REPLACE FUNCTION usage.cost_micros_int(pt bigint, ct bigint, pp bigint, cp bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT (pt * pp + ct * cp + 500000) / 1000000
$$;

-- The cost of one record in micro-USD (a record's cost has at most 6
-- decimals, rounded half up), at prices `pp` / `cp` in pico-USD per prompt /
-- completion token (usage.pico_per_token); NULL when unpriced. Integer
-- arithmetic when it cannot overflow (usage.int_price_max), else numeric;
-- both exact. Inlined where it is called.
CREATE OR REPLACE FUNCTION usage.cost_micros(pt bigint, ct bigint, pp bigint, cp bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN pp <= usage.int_price_max() AND cp <= usage.int_price_max()
                THEN usage.cost_micros_int(pt, ct, pp, cp)
                ELSE round((pt::numeric * pp + ct::numeric * cp) / 1000000)::bigint END
$$;

-- Whether every element of `p` is NULL or an identifier by ap.is_ident's
-- rule (ap.ident_class, ap.ident_max_len), tested on the whole array in C:
-- the array's text form (array_out) has no character outside that class
-- and the punctuation of the form (`,{}`, put first in the class so that the
-- class's closing `-` stays literal), and no run longer than the maximum
-- between the commas.
-- array_out prints a NULL element as NULL and double-quotes every element
-- that is empty or holds a space, a comma, a brace, a quote or a backslash,
-- so each of those fails on its quote. (It also quotes an element spelled
-- "null", a valid identifier: a false alarm, which the caller's record by
-- record check then clears.) One pass that prints the array and one regex:
-- joining it with array_to_string cost as much again, as its printf does.
-- The "C" collation makes the regex byte-wise, about 4x faster.
-- (PL/pgSQL: a SQL function that cannot be inlined is planned again at
-- every call.)
CREATE OR REPLACE FUNCTION usage.idents_ok(p text[])
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF p[1] IS NULL AND cardinality(array_remove(p, NULL)) = 0 THEN
        RETURN true;  -- all NULL (an optional field no record gives): nothing to print
    END IF;
    RETURN NOT p::text COLLATE "C"
               ~ ('[^,{}' || ap.ident_class() || ']|[^,{}]{' || ap.ident_max_len() + 1 || '}');
END
$$;

-- The distinct elements of `p` (no NULLs). A batch names a few models: taking out one model at a time (array_remove,
-- a C loop) is about a third of what hashing every record's model costs.
-- Past 16 distinct, the rest are hashed, so a batch of many models does not
-- take a pass per model.
CREATE OR REPLACE FUNCTION usage.distinct_models(p text[])
RETURNS text[] LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    v_rest text[] := p;
    v_seen text[] := '{}';
BEGIN
    WHILE cardinality(v_rest) > 0 AND cardinality(v_seen) < 16 LOOP
        IF v_rest[1] IS NOT NULL THEN
            v_seen := v_seen || v_rest[1];
        END IF;
        v_rest := array_remove(v_rest, v_rest[1]);
    END LOOP;
    IF cardinality(v_rest) > 0 THEN
        v_seen := v_seen || ARRAY(SELECT DISTINCT m FROM unnest(v_rest) AS m
                                  WHERE m IS NOT NULL);
    END IF;
    RETURN v_seen;
END
$$;

-- Raises 400 invalid_record naming the first bad record of a batch (its
-- index and field), when one is; the rules of usage._insert, record by record.
-- Called only when a whole-array check of the batch failed.
CREATE OR REPLACE FUNCTION usage._refuse_first_bad_record(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_bad record;
BEGIN
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
END
$$;

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
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
    v_now timestamptz := now();
    v_costs bigint[];
    v_price_ids bigint[];
    v_providers text[];
    v_min_at timestamptz;
    v_max_at timestamptz;
    v_km text[];
    v_k1 text; v_k2 text; v_k3 text; v_k4 text; v_k5 text; v_k6 text; v_k7 text; v_k8 text;
    v_providers_given boolean;
    v_dated boolean;            -- some record gives `at`
    v_found bigint;             -- records whose model is in v_km
    v_pass integer;
    v_int_prices boolean;       -- every price at most usage.int_price_max()
    v_keyed boolean := false;  -- priced at one instant: price ids and providers by model
    v_kid bigint[];
    v_kprov text[];
    v_kpp bigint[];
    v_kcp bigint[];
    v_total_micros numeric;  -- (a sum of costs at the highest prices passes 2^63)
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

    -- Fast path: whole-array checks (C loops; identifiers one regex over
    -- each array, usage.idents_ok, which also finds empty ones). Only when
    -- one fails is every record looked at, to name the first bad one.
    -- The batch's distinct models (its few models are checked, not every
    -- record's). A batch priced at one instant starts from those of its
    -- first 64 records; its pricing pass finds whether a later record names
    -- another, and only then are all taken (a pass per model) and checked.
    v_dated := cardinality(array_remove(p_at, NULL)) > 0;
    v_km := usage.distinct_models(CASE WHEN v_dated THEN p_models ELSE p_models[1:64] END);
    v_providers_given := array_to_string(p_providers, '') <> '';  -- (a NULL element prints nothing)
    IF NOT (usage.idents_ok(p_thread_ids) AND usage.idents_ok(p_agent_ids)
            AND usage.idents_ok(v_km) AND usage.idents_ok(p_user_ids)
            AND usage.idents_ok(p_variant_ids))
       OR array_position(p_thread_ids, NULL) IS NOT NULL
       OR array_position(p_models, NULL) IS NOT NULL
       OR '' = ANY (p_providers)
       OR (v_providers_given
           AND EXISTS (SELECT 1 FROM unnest(p_providers) pv WHERE length(pv) > 128))
       OR array_position(p_prompt_tokens, NULL) IS NOT NULL OR 0 > ANY (p_prompt_tokens)
       OR usage.max_count() < ANY (p_prompt_tokens)
       OR array_position(p_completion_tokens, NULL) IS NOT NULL OR 0 > ANY (p_completion_tokens)
       OR usage.max_count() < ANY (p_completion_tokens)
       OR coalesce(0 > ANY (p_latency_ms), false)
       OR coalesce(usage.max_count() < ANY (p_latency_ms), false)
       OR cardinality(array_remove(p_metadata, NULL)) > 0 THEN
        PERFORM usage._refuse_first_bad_record(
            p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
            p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids, p_metadata);
    END IF;

    PERFORM pg_advisory_xact_lock_shared(usage.epoch_lock_key());
    v_epoch := usage.current_epoch();

    -- One block of ids for the whole batch (usage.record_blocks steps by
    -- usage.max_batch()).
    first_id := nextval('usage.record_blocks');
    last_id := first_id + n - 1;
    -- Pricing: every record's cost, price version and provider, as arrays in
    -- the batch's order (element i is record i).
    IF NOT v_dated THEN
        -- No record says when it happened (the usual batch): all are priced
        -- now, so each distinct model has one price, looked up once. At most
        -- two passes: the second when a record names a model the first 64
        -- did not (v_km is then every model, checked first).
        FOR v_pass IN 1..2 LOOP
            IF v_pass = 2 THEN
                v_km := usage.distinct_models(p_models);
                IF NOT usage.idents_ok(v_km) THEN
                    PERFORM usage._refuse_first_bad_record(
                        p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
                        p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids, p_metadata);
                END IF;
            END IF;
            -- (The aggregates read the same rows in the same order, so
            -- element k of each belongs to model k.)
            SELECT array_agg(p.id), array_agg(p.provider),
                   array_agg(usage.pico_per_token(p.prompt_per_million)),
                   array_agg(usage.pico_per_token(p.completion_per_million))
            INTO v_kid, v_kprov, v_kpp, v_kcp
            FROM unnest(v_km, usage.price_keys(v_km)) AS x(m, key)
            LEFT JOIN LATERAL usage.price_version(x.key, v_now) p ON true;
            -- (the first eight, for the CASE below)
            v_k1 := v_km[1]; v_k2 := v_km[2]; v_k3 := v_km[3]; v_k4 := v_km[4];
            v_k5 := v_km[5]; v_k6 := v_km[6]; v_k7 := v_km[7]; v_k8 := v_km[8];
            -- Each record finds its model's price by position in those few:
            -- compared in line with the first eight (array_position, a
            -- function call that sets up an iterator, cost three times as
            -- much); j is NULL for a model not among them. The select list
            -- unnests the arrays side by side and nothing joins or sorts
            -- them, so the aggregates see the records in array order. The
            -- fences (OFFSET 0) keep each record's j and cost computed once:
            -- pulled up, they would be computed again wherever they are read.
            -- When every price is small enough (the usual case), a cost is
            -- integer arithmetic alone: usage.cost_micros would test both
            -- prices per record, and read each from its array twice.
            v_int_prices := coalesce(usage.int_price_max() >= ALL (v_kpp || v_kcp), true);
            SELECT array_agg(c.cost), usage.total(c.pt + c.ct), sum(c.cost), count(c.j)
            INTO v_costs, total_tokens, v_total_micros, v_found
            FROM (SELECT CASE WHEN v_int_prices
                              THEN usage.cost_micros_int(y.pt, y.ct, v_kpp[y.j], v_kcp[y.j])
                              ELSE usage.cost_micros(y.pt, y.ct, v_kpp[y.j], v_kcp[y.j]) END AS cost,
                         y.pt, y.ct, y.j
                  FROM (SELECT CASE x.m WHEN v_k1 THEN 1 WHEN v_k2 THEN 2 WHEN v_k3 THEN 3
                                        WHEN v_k4 THEN 4 WHEN v_k5 THEN 5 WHEN v_k6 THEN 6
                                        WHEN v_k7 THEN 7 WHEN v_k8 THEN 8
                                        ELSE array_position(v_km, x.m) END AS j,
                               x.pt, x.ct
                        FROM (SELECT unnest(p_models) AS m, unnest(p_prompt_tokens) AS pt,
                                     unnest(p_completion_tokens) AS ct) x
                        OFFSET 0) y
                  OFFSET 0) c;
            EXIT WHEN v_found = n;
        END LOOP;
        IF v_found <> n THEN
            RAISE EXCEPTION 'usage._insert: % of % records found no model', n - v_found, n;
        END IF;
        IF cardinality(v_km) <= 8 THEN
            -- Price ids and providers stay with the models (usage.batches'
            -- keys; usage.batch_records reads a record's from its model's):
            -- the records keep only the providers they give.
            v_providers := CASE WHEN v_providers_given THEN p_providers END;
            v_keyed := true;
        ELSE
            -- Many models: a reader would search them for every record, so
            -- each record keeps its own (in array order, as above).
            SELECT array_agg(v_kid[x.j]), array_agg(coalesce(x.pv, v_kprov[x.j]))
            INTO v_price_ids, v_providers
            FROM (SELECT array_position(v_km, unnest(p_models)) AS j,
                         unnest(p_providers) AS pv
                  OFFSET 0) x;
        END IF;
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
            SELECT d.lm, d.ts, p.id, p.provider, usage.pico_per_token(p.prompt_per_million) AS pp,
                   usage.pico_per_token(p.completion_per_million) AS cp
            FROM d JOIN k USING (lm)
            LEFT JOIN LATERAL usage.price_version(k.pk, d.ts) p ON true),
        priced AS (
            SELECT usage.cost_micros(x.pt, x.ct, pr.pp, pr.cp) AS cost, pr.id AS price_id,
                   coalesce(x.pv, pr.provider) AS provider, x.pt + x.ct AS tokens, x.ts
            FROM (SELECT y.i, y.lm, y.pv, y.pt, y.ct, coalesce(y.at, v_now) AS ts
                  FROM (SELECT generate_series(1, n) AS i, lower(unnest(p_models) COLLATE "C") AS lm,
                               unnest(p_providers) AS pv, unnest(p_prompt_tokens) AS pt,
                               unnest(p_completion_tokens) AS ct, unnest(p_at) AS at) y) x
            LEFT JOIN pr ON pr.lm = x.lm AND pr.ts = x.ts
            ORDER BY x.i)
        SELECT array_agg(cost), array_agg(price_id), array_agg(provider), usage.total(tokens),
               sum(cost), min(ts), max(ts)
        INTO v_costs, v_price_ids, v_providers, total_tokens, v_total_micros, v_min_at, v_max_at
        FROM priced;
    END IF;
    total_cost := usage.usd(v_total_micros);  -- NULL: none priced
    INSERT INTO usage.batches (first_id, n, epoch, recorded_at, min_at, max_at, thread_ids,
                               agent_ids, models, providers, prompt_tokens, completion_tokens,
                               latency_ms, cost_micros, price_ids, user_ids, variant_ids, metadata, at,
                               key_models, key_price_ids, key_providers)
    VALUES (first_id, n, v_epoch, v_now, v_min_at, v_max_at, p_thread_ids, p_agent_ids, p_models,
            v_providers, p_prompt_tokens, p_completion_tokens, p_latency_ms, v_costs, v_price_ids,
            p_user_ids, p_variant_ids, p_metadata, p_at,
            CASE WHEN v_keyed THEN v_km END, CASE WHEN v_keyed THEN v_kid END,
            CASE WHEN v_keyed THEN v_kprov END);
    inserted := n;
END
$$;

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
                   sum(y.cost) AS cost, usage.total(y.l) AS ls, count(y.l) AS lc
            FROM (SELECT b.day,
                         unnest(b.thread_ids) AS t, unnest(b.agent_ids) AS a,
                         unnest(b.models) AS m, unnest(b.prompt_tokens) AS pt,
                         unnest(b.completion_tokens) AS ct, unnest(b.latency_ms) AS l,
                         unnest(b.cost_micros) AS cost, unnest(b.ats) AS at
                  FROM (SELECT b.thread_ids, b.agent_ids, b.models, b.prompt_tokens,
                               b.completion_tokens, b.latency_ms, b.cost_micros,
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
                   usage.total(c.lc) AS lc
            FROM c
            GROUP BY GROUPING SETS ((c.t), (coalesce(c.a, '')), (lower(c.m)), (c.day)))
        SELECT array_agg(ROW(g.kind, CASE g.kind WHEN 7 THEN g.t WHEN 11 THEN g.a WHEN 13 THEN g.lm END,
                             g.day, g.sp, g.sc, g.n, g.cost, coalesce(g.ls, 0), g.lc)::usage.fold_sum)
        INTO v_sums
        FROM g;

        WITH s AS MATERIALIZED (
            SELECT * FROM unnest(v_sums)),
        up AS (
            INSERT INTO usage.thread_budgets AS b (thread_id, max_tokens, prompt_tokens,
                                                   completion_tokens, fired, fired_now,
                                                   last_epoch, joined_epoch)
            SELECT s.key, usage.default_max_tokens(), s.prompt_tokens, s.completion_tokens,
                   usage.crossed(s.prompt_tokens + s.completion_tokens,
                                 usage.default_max_tokens(), '{}'),
                   usage.crossed(s.prompt_tokens + s.completion_tokens,
                                 usage.default_max_tokens(), '{}'),
                   e, true
            FROM s
            WHERE s.kind = 7
            ORDER BY s.key COLLATE "C"
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
            SELECT e, s.key, v_shard, s.prompt_tokens, s.completion_tokens, s.request_count,
                   coalesce(usage.usd(s.cost_micros), 0), s.latency_sum, s.latency_count
            FROM s WHERE s.kind = 11
            ORDER BY s.key COLLATE "C"
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
            SELECT e, s.key, v_shard, s.prompt_tokens, s.completion_tokens, s.request_count,
                   coalesce(usage.usd(s.cost_micros), 0), s.latency_sum, s.latency_count
            FROM s WHERE s.kind = 13
            ORDER BY s.key COLLATE "C"
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
            SELECT s.day, v_shard, s.prompt_tokens, s.completion_tokens, s.request_count,
                   coalesce(usage.usd(s.cost_micros), 0)
            FROM s WHERE s.kind = 14
            ORDER BY s.day
            ON CONFLICT (day, shard) DO UPDATE SET
                prompt_tokens = x.prompt_tokens + excluded.prompt_tokens,
                completion_tokens = x.completion_tokens + excluded.completion_tokens,
                request_count = x.request_count + excluded.request_count,
                cost = x.cost + excluded.cost)
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
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(u.last_id - u.first_id + 1) >= p_min_records
                    OR (SELECT b.recorded_at FROM usage.batches b
                        WHERE b.first_id = max(u.first_id)) < now() - p_quiet
                    OR (SELECT b.recorded_at FROM usage.batches b
                        WHERE b.first_id = min(u.first_id)) < now() - p_max_age,
                    false)
    FROM usage.unfolded u
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

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
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

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
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
        -- No NOTIFY (a hot path, as for single records): its commit-time
        -- lock would serialise every batch's commit, and each hint would wake
        -- the feed relay. The relay's tick finds it.
        PERFORM feed.emit_data('usage',
            jsonb_build_object('batch', true, 'inserted', r.inserted,
                               'totalTokens', r.total_tokens, 'totalCost', v_cost),
            p_notify => false);
    END IF;
    RETURN jsonb_build_object('inserted', r.inserted, 'totalCost', v_cost);
END
$$;
