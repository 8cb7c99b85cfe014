-- Usage metering and per-thread token budgets (CONTRACT §3).
--
-- Writes go through usage._ingest, which is set-based: one call takes a whole
-- batch as parallel arrays, prices each distinct (model, time) once, inserts
-- the records with one INSERT, and updates budgets and rollups with one
-- aggregated upsert each (rows locked in key order, so concurrent batches
-- never deadlock).
-- Reads of totals come from the rollups, never from a scan of the records.

-- Constants -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION usage.default_max_tokens()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 100000::bigint $$;

CREATE OR REPLACE FUNCTION usage.max_batch()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 10000 $$;

-- Writers hold it shared, a reset holds it exclusive: a record always lands in
-- the epoch that is newest when it commits.
CREATE OR REPLACE FUNCTION usage.epoch_lock_key()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7598543208318853733::bigint $$;

CREATE OR REPLACE FUNCTION usage.current_epoch()
RETURNS integer LANGUAGE sql STABLE AS $$ SELECT max(id) FROM usage.epochs $$;

-- Prices ----------------------------------------------------------------------

-- The price key of a model: the longest key that is a prefix of the
-- lower-cased model (claude-sonnet-4-20250514 → claude-sonnet-4). NULL when
-- none matches.
CREATE OR REPLACE FUNCTION usage.price_key(p_model text)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT k.model
    FROM (SELECT DISTINCT model FROM usage.model_prices) k
    WHERE starts_with(lower(p_model), k.model)
    ORDER BY length(k.model) DESC
    LIMIT 1
$$;

-- The version of price key `p_key` in effect at `p_at` (newest effective at
-- that time); no row when there is none. A set-returning SQL function, so it
-- is inlined where it is joined: one index probe per row.
CREATE OR REPLACE FUNCTION usage.price_version(p_key text, p_at timestamptz)
RETURNS SETOF usage.model_prices LANGUAGE sql STABLE AS $$
    SELECT p.*
    FROM usage.model_prices p
    WHERE p.model = p_key
      AND p.effective_from <= p_at
    ORDER BY p.effective_from DESC, p.id DESC
    LIMIT 1
$$;

-- The price version that applies to `p_model` at `p_at`: its price key's
-- version in effect at that time. NULL (all fields) when no key matches.
CREATE OR REPLACE FUNCTION usage.price_at(p_model text, p_at timestamptz)
RETURNS usage.model_prices LANGUAGE sql STABLE AS $$
    SELECT * FROM usage.price_version(usage.price_key(p_model), p_at)
$$;

CREATE OR REPLACE FUNCTION usage.price_json(p usage.model_prices)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'model', p.model,
        'provider', p.provider,
        'promptPerMillion', p.prompt_per_million,
        'completionPerMillion', p.completion_per_million,
        'effectiveFrom', ap.ts(p.effective_from))
$$;

-- GET /model-prices: the version of every model in effect now.
CREATE OR REPLACE FUNCTION usage.list_prices()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('modelPrices',
        coalesce(jsonb_agg(usage.price_json(p) ORDER BY p.model), '[]'::jsonb))
    FROM (SELECT DISTINCT ON (model) *
          FROM usage.model_prices
          WHERE effective_from <= now()
          ORDER BY model, effective_from DESC, id DESC) p
$$;

-- PUT /model-prices/{model}: a new version, effective from now.
CREATE OR REPLACE FUNCTION usage.set_price(p_model text, p_provider text,
                                           p_prompt_per_million numeric,
                                           p_completion_per_million numeric)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v usage.model_prices;
BEGIN
    PERFORM ap.check_ident('model', p_model);
    IF p_provider IS NULL OR length(p_provider) NOT BETWEEN 1 AND 128 THEN
        PERFORM ap.raise(400, 'invalid_provider', 'provider must be 1-128 characters',
                         jsonb_build_object('field', 'provider'));
    END IF;
    IF p_prompt_per_million IS NULL OR p_prompt_per_million < 0
       OR p_completion_per_million IS NULL OR p_completion_per_million < 0 THEN
        PERFORM ap.raise(400, 'invalid_price', 'prices must be numbers >= 0',
                         jsonb_build_object('promptPerMillion', p_prompt_per_million,
                                            'completionPerMillion', p_completion_per_million));
    END IF;
    INSERT INTO usage.model_prices (model, provider, prompt_per_million, completion_per_million, effective_from)
    VALUES (lower(p_model), p_provider, round(p_prompt_per_million, 6),
            round(p_completion_per_million, 6), now())
    RETURNING * INTO v;
    PERFORM feed.emit_data('model_price.changed', usage.price_json(v));
    RETURN usage.price_json(v);
END
$$;

-- Budgets ---------------------------------------------------------------------

-- The thresholds (percent) reached at `p_total` of `p_max` that are not in `p_fired`.
CREATE OR REPLACE FUNCTION usage.crossed(p_total bigint, p_max bigint, p_fired smallint[])
RETURNS smallint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- one expression, no subquery: inlined into the callers' upserts; bigint
    -- arithmetic (exact; token counts are far below 2^63 / 100)
    SELECT array_remove(ARRAY[
        CASE WHEN p_total * 100 >= 75 * p_max AND NOT (75 = ANY (p_fired)) THEN 75 END,
        CASE WHEN p_total * 100 >= 90 * p_max AND NOT (90 = ANY (p_fired)) THEN 90 END,
        CASE WHEN p_total * 100 >= 95 * p_max AND NOT (95 = ANY (p_fired)) THEN 95 END,
        CASE WHEN p_total >= p_max AND NOT (100 = ANY (p_fired)) THEN 100 END
    ]::smallint[], NULL)
$$;

CREATE OR REPLACE FUNCTION usage.budget_json(p_thread_id text, p_max bigint,
                                             p_prompt bigint, p_completion bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'threadId', p_thread_id,
        'maxTokens', p_max,
        'promptTokens', p_prompt,
        'completionTokens', p_completion,
        'totalTokens', p_prompt + p_completion,
        'remaining', greatest(p_max - (p_prompt + p_completion), 0),
        'percentUsed', round((p_prompt + p_completion)::numeric * 100 / p_max, 1),
        'isExhausted', p_prompt + p_completion >= p_max)
$$;

CREATE OR REPLACE FUNCTION usage.emit_thresholds(p_thread_id text, p_max bigint,
                                                 p_total bigint, p_fired smallint[])
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    t smallint;
BEGIN
    FOREACH t IN ARRAY coalesce(p_fired, '{}') LOOP
        PERFORM feed.emit_data('budget.threshold',
            jsonb_build_object('threadId', p_thread_id, 'threshold', t,
                               'totalTokens', p_total, 'maxTokens', p_max,
                               'percentUsed', round(p_total::numeric * 100 / p_max, 1)),
            p_thread_id => p_thread_id);
    END LOOP;
    RETURN coalesce(cardinality(p_fired), 0);
END
$$;

-- GET /usage/threads/{threadId}
CREATE OR REPLACE FUNCTION usage.get_budget(p_thread_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    b usage.thread_budgets;
BEGIN
    PERFORM ap.check_ident('threadId', p_thread_id);
    SELECT * INTO b FROM usage.thread_budgets WHERE thread_id = p_thread_id;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'budget_not_found', 'this thread has no budget yet',
                         jsonb_build_object('threadId', p_thread_id));
    END IF;
    RETURN usage.budget_json(b.thread_id, b.max_tokens, b.prompt_tokens, b.completion_tokens);
END
$$;

-- PUT /usage/threads/{threadId}: sets maxTokens (creating the budget). A lower
-- limit that puts the thread past a threshold fires that threshold's event
-- (still once per thread).
CREATE OR REPLACE FUNCTION usage.set_budget(p_thread_id text, p_max_tokens bigint)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    b usage.thread_budgets;
BEGIN
    PERFORM ap.check_ident('threadId', p_thread_id);
    IF p_max_tokens IS NULL OR p_max_tokens < 1 THEN
        PERFORM ap.raise(400, 'invalid_max_tokens', 'maxTokens must be an integer >= 1',
                         jsonb_build_object('maxTokens', p_max_tokens));
    END IF;
    INSERT INTO usage.thread_budgets AS t (thread_id, max_tokens)
    VALUES (p_thread_id, p_max_tokens)
    ON CONFLICT (thread_id) DO UPDATE SET
        max_tokens = excluded.max_tokens,
        fired_now = usage.crossed(t.prompt_tokens + t.completion_tokens, excluded.max_tokens, t.fired),
        fired = t.fired || usage.crossed(t.prompt_tokens + t.completion_tokens, excluded.max_tokens, t.fired),
        joined_epoch = false,
        updated_at = now()
    RETURNING * INTO b;
    -- fired_now: '{}' on a fresh row, else what this update newly reached
    PERFORM usage.emit_thresholds(b.thread_id, b.max_tokens,
                                  b.prompt_tokens + b.completion_tokens, b.fired_now);
    PERFORM feed.emit_data('budget.updated',
        usage.budget_json(b.thread_id, b.max_tokens, b.prompt_tokens, b.completion_tokens),
        p_thread_id => b.thread_id);
    RETURN usage.budget_json(b.thread_id, b.max_tokens, b.prompt_tokens, b.completion_tokens);
END
$$;

-- POST /usage/threads/{threadId}/check: may an LLM call of about
-- `p_estimated_tokens` go ahead? A thread without a budget has the default,
-- unused one. Allowed when the budget is not exhausted and the estimate fits;
-- otherwise 429 budget_exhausted with details.budget. Writes nothing.
CREATE OR REPLACE FUNCTION usage.check_budget(p_thread_id text, p_estimated_tokens bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_max bigint := usage.default_max_tokens();
    v_prompt bigint := 0;
    v_completion bigint := 0;
    v_est bigint := coalesce(p_estimated_tokens, 0);
    v_budget jsonb;
BEGIN
    PERFORM ap.check_ident('threadId', p_thread_id);
    IF v_est < 0 THEN
        PERFORM ap.raise(400, 'invalid_estimated_tokens', 'estimatedTokens must be >= 0',
                         jsonb_build_object('estimatedTokens', p_estimated_tokens));
    END IF;
    SELECT b.max_tokens, b.prompt_tokens, b.completion_tokens
    INTO v_max, v_prompt, v_completion
    FROM usage.thread_budgets b WHERE b.thread_id = p_thread_id;
    IF NOT FOUND THEN
        v_max := usage.default_max_tokens();
        v_prompt := 0;
        v_completion := 0;
    END IF;
    v_budget := usage.budget_json(p_thread_id, v_max, v_prompt, v_completion);
    IF v_prompt + v_completion >= v_max OR v_prompt + v_completion + v_est > v_max THEN
        PERFORM ap.raise(429, 'budget_exhausted',
            format('thread %s has %s of %s tokens left; %s estimated',
                   p_thread_id, greatest(v_max - v_prompt - v_completion, 0), v_max, v_est),
            jsonb_build_object('budget', v_budget, 'estimatedTokens', v_est));
    END IF;
    RETURN jsonb_build_object('allowed', true, 'budget', v_budget);
END
$$;

-- GET /usage/threads: budgets by percentUsed descending (then threadId).
CREATE OR REPLACE FUNCTION usage.list_budgets(p_limit integer, p_offset integer)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit integer := coalesce(p_limit, 50);
    v_offset integer := coalesce(p_offset, 0);
BEGIN
    IF v_limit NOT BETWEEN 1 AND 100 OR v_offset < 0 THEN
        PERFORM ap.raise(400, 'invalid_paging', 'limit must be 1-100 and offset >= 0');
    END IF;
    RETURN (
        SELECT jsonb_build_object(
            'threads', coalesce(jsonb_agg(usage.budget_json(s.thread_id, s.max_tokens,
                                                              s.prompt_tokens, s.completion_tokens)
                                          ORDER BY s.ratio DESC, s.thread_id), '[]'::jsonb),
            'count', count(*),
            'total', (SELECT count(*) FROM usage.thread_budgets),
            'offset', v_offset,
            'limit', v_limit,
            'defaultMaxTokens', usage.default_max_tokens())
        FROM (SELECT b.*, (b.prompt_tokens + b.completion_tokens)::numeric / b.max_tokens AS ratio
              FROM usage.thread_budgets b
              ORDER BY ratio DESC, b.thread_id
              LIMIT v_limit OFFSET v_offset) s);
END
$$;

-- Ingest ------------------------------------------------------------------------

DROP FUNCTION IF EXISTS usage._ingest(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                      text[], text[], jsonb[], timestamptz[]);
-- The one writer of records. Parallel arrays, one element per record; all
-- validated first (400 naming the first bad record, nothing written).
CREATE FUNCTION usage._ingest(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[], p_at timestamptz[],
    OUT inserted integer, OUT total_tokens bigint, OUT total_cost numeric,
    OUT last_id bigint, OUT last_cost numeric)
LANGUAGE plpgsql AS $$
DECLARE
    n integer := coalesce(cardinality(p_thread_ids), 0);
    v_epoch integer;
    v_shard smallint := (pg_backend_pid() % 16)::smallint;
    v_bad record;
    v_chars_bad boolean;
    v_all_now boolean;
    v_price jsonb;
    v_events bigint;
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
    inserted := 0; total_tokens := 0; total_cost := 0;
    IF n = 0 THEN
        RETURN;
    END IF;

    -- One regex over all identifiers at once; per-row regexes only when it
    -- found a bad character (to name the first bad record).
    v_chars_bad := array_to_string(p_thread_ids, '') COLLATE "C" ~ '[^A-Za-z0-9._:@/-]'
                OR array_to_string(p_agent_ids, '') COLLATE "C" ~ '[^A-Za-z0-9._:@/-]'
                OR array_to_string(p_models, '') COLLATE "C" ~ '[^A-Za-z0-9._:@/-]'
                OR array_to_string(p_user_ids, '') COLLATE "C" ~ '[^A-Za-z0-9._:@/-]'
                OR array_to_string(p_variant_ids, '') COLLATE "C" ~ '[^A-Za-z0-9._:@/-]';
    -- Fast path: whole-array checks (C loops; the "C" collation makes the
    -- regex byte-wise, ~4x faster). Only when one fails is every record
    -- looked at, to name the first bad one. Lengths over 128 are caught by the
    -- table's CHECK constraints.
    IF v_chars_bad
       OR array_position(p_thread_ids, NULL) IS NOT NULL OR '' = ANY (p_thread_ids)
       OR '' = ANY (p_agent_ids)
       OR array_position(p_models, NULL) IS NOT NULL OR '' = ANY (p_models)
       OR '' = ANY (p_providers) OR '' = ANY (p_user_ids) OR '' = ANY (p_variant_ids)
       OR array_position(p_prompt_tokens, NULL) IS NOT NULL OR 0 > ANY (p_prompt_tokens)
       OR array_position(p_completion_tokens, NULL) IS NOT NULL OR 0 > ANY (p_completion_tokens)
       OR coalesce(0 > ANY (p_latency_ms), false)
       OR cardinality(array_remove(p_metadata, NULL)) > 0 THEN
        SELECT x.i - 1 AS idx, x.field INTO v_bad
        FROM (SELECT i, CASE
                WHEN t IS NULL OR length(t) NOT BETWEEN 1 AND 128
                     OR (v_chars_bad AND t ~ '[^A-Za-z0-9._:@/-]') THEN 'threadId'
                WHEN a IS NOT NULL AND (length(a) NOT BETWEEN 1 AND 128
                     OR (v_chars_bad AND a ~ '[^A-Za-z0-9._:@/-]')) THEN 'agentId'
                WHEN m IS NULL OR length(m) NOT BETWEEN 1 AND 128
                     OR (v_chars_bad AND m ~ '[^A-Za-z0-9._:@/-]') THEN 'model'
                WHEN pv IS NOT NULL AND length(pv) NOT BETWEEN 1 AND 128 THEN 'provider'
                WHEN pt IS NULL OR pt < 0 THEN 'promptTokens'
                WHEN ct IS NULL OR ct < 0 THEN 'completionTokens'
                WHEN l IS NOT NULL AND l < 0 THEN 'latencyMs'
                WHEN u IS NOT NULL AND (length(u) NOT BETWEEN 1 AND 128
                     OR (v_chars_bad AND u ~ '[^A-Za-z0-9._:@/-]')) THEN 'userId'
                WHEN v IS NOT NULL AND (length(v) NOT BETWEEN 1 AND 128
                     OR (v_chars_bad AND v ~ '[^A-Za-z0-9._:@/-]')) THEN 'variantId'
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

    -- Price: each distinct model's price key is found once, then each
    -- distinct (model, time) the key's version in effect (one index probe).
    -- `v_price` maps a (model, time) key to that version (JSON null when the
    -- model has none); a jsonb object finds a key by binary search, so every
    -- record looks its price up in O(log keys), with no join and no sort: the
    -- records keep the batch's order. (Not arrays indexed by position: in a
    -- query, subscripting an array of variable-width values walks it from the
    -- start.) When no record has `at` (the usual case) the key is the model
    -- alone.
    v_all_now := cardinality(array_remove(p_at, NULL)) = 0;
    WITH d AS (
        SELECT DISTINCT lower(r.m COLLATE "C") AS lm, coalesce(r.at, now()) AS ts
        FROM unnest(p_models, p_at) AS r(m, at)),
    k AS MATERIALIZED (
        SELECT m.lm, usage.price_key(m.lm) AS pk FROM (SELECT DISTINCT lm FROM d) m)
    SELECT jsonb_object_agg(
               d.lm || CASE WHEN v_all_now THEN '' ELSE '|' || d.ts::text END,
               CASE WHEN p.id IS NOT NULL THEN
                   jsonb_build_object('id', p.id, 'provider', p.provider,
                                      'ppm', p.prompt_per_million, 'cpm', p.completion_per_million)
               END)
    INTO v_price
    FROM d JOIN k USING (lm)
    LEFT JOIN LATERAL usage.price_version(k.pk, d.ts) p ON true;

    -- One statement: insert, then one aggregated upsert per budget/rollup
    -- table. The upserts lock rows in key order and take the tables in the
    -- same order in every call, so concurrent batches queue but never deadlock.
    WITH src AS MATERIALIZED (
        SELECT r.t, r.a, r.m, r.lm, coalesce(r.pv, r.p ->> 'provider') AS pv, r.pt, r.ct, r.l,
               round((r.pt * (r.p -> 'ppm')::numeric + r.ct * (r.p -> 'cpm')::numeric) / 1000000, 6) AS c,
               (r.p -> 'id')::bigint AS pid,
               r.u, r.v, coalesce(r.md, '{}'::jsonb) AS md, coalesce(r.at, now()) AS at
        FROM (SELECT x.*, lower(x.m COLLATE "C") AS lm,
                     v_price -> (lower(x.m COLLATE "C") || CASE WHEN v_all_now THEN ''
                                 ELSE '|' || coalesce(x.at, now())::text END) AS p
              FROM unnest(p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
                          p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids,
                          p_metadata, p_at) AS x(t, a, m, pv, pt, ct, l, u, v, md, at)
              OFFSET 0) r),
    ins AS (
        INSERT INTO usage.records (thread_id, agent_id, model, provider, prompt_tokens,
                                   completion_tokens, latency_ms, cost, price_id, user_id,
                                   variant_id, metadata, epoch, created_at)
        -- ids follow the order of the batch (src is read in array order)
        SELECT t, a, m, pv, pt, ct, l, c, pid, u, v, md, v_epoch, at FROM src),
    -- Budgets: thresholds newly reached are recorded in the same row update,
    -- under the row lock, so each fires once per thread.
    up AS (
        INSERT INTO usage.thread_budgets AS b (thread_id, max_tokens, prompt_tokens,
                                               completion_tokens, fired, fired_now,
                                               last_epoch, joined_epoch)
        SELECT g.t, usage.default_max_tokens(), g.sp, g.sc,
               usage.crossed(g.sp + g.sc, usage.default_max_tokens(), '{}'),
               usage.crossed(g.sp + g.sc, usage.default_max_tokens(), '{}'),
               v_epoch, true
        FROM (SELECT t, sum(pt)::bigint AS sp, sum(ct)::bigint AS sc FROM src GROUP BY t) g
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
        INSERT INTO usage.epoch_rollup AS e (epoch, shard, active_threads)
        SELECT v_epoch, v_shard, count(*) FROM up WHERE up.joined_epoch HAVING count(*) > 0
        ON CONFLICT (epoch, shard) DO UPDATE SET active_threads = e.active_threads + excluded.active_threads),
    ua AS (
        INSERT INTO usage.agent_rollup AS g (epoch, agent_id, shard, prompt_tokens, completion_tokens,
                                             request_count, cost, latency_sum, latency_count)
        SELECT v_epoch, coalesce(a, ''), v_shard, sum(pt), sum(ct), count(*),
               coalesce(sum(c), 0), coalesce(sum(l), 0), count(l)
        FROM src
        GROUP BY coalesce(a, '')
        ORDER BY coalesce(a, '')
        ON CONFLICT (epoch, agent_id, shard) DO UPDATE SET
            prompt_tokens = g.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = g.completion_tokens + excluded.completion_tokens,
            request_count = g.request_count + excluded.request_count,
            cost = g.cost + excluded.cost,
            latency_sum = g.latency_sum + excluded.latency_sum,
            latency_count = g.latency_count + excluded.latency_count),
    um AS (
        INSERT INTO usage.model_rollup AS g (epoch, model, shard, prompt_tokens, completion_tokens,
                                             request_count, cost, latency_sum, latency_count)
        SELECT v_epoch, lm, v_shard, sum(pt), sum(ct), count(*),
               coalesce(sum(c), 0), coalesce(sum(l), 0), count(l)
        FROM src
        GROUP BY lm
        ORDER BY lm
        ON CONFLICT (epoch, model, shard) DO UPDATE SET
            prompt_tokens = g.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = g.completion_tokens + excluded.completion_tokens,
            request_count = g.request_count + excluded.request_count,
            cost = g.cost + excluded.cost,
            latency_sum = g.latency_sum + excluded.latency_sum,
            latency_count = g.latency_count + excluded.latency_count),
    ud AS (
        INSERT INTO usage.daily_rollup AS g (day, shard, prompt_tokens, completion_tokens,
                                             request_count, cost)
        SELECT (at AT TIME ZONE 'UTC')::date, v_shard, sum(pt), sum(ct), count(*),
               coalesce(sum(c), 0)
        FROM src
        GROUP BY 1
        ORDER BY 1
        ON CONFLICT (day, shard) DO UPDATE SET
            prompt_tokens = g.prompt_tokens + excluded.prompt_tokens,
            completion_tokens = g.completion_tokens + excluded.completion_tokens,
            request_count = g.request_count + excluded.request_count,
            cost = g.cost + excluded.cost)
    SELECT count(*), coalesce(sum(pt + ct), 0), coalesce(sum(c), 0), max(c),
           (SELECT coalesce(sum(k), 0) FROM ev)
    INTO inserted, total_tokens, total_cost, last_cost, v_events
    FROM src;
    last_id := currval(pg_get_serial_sequence('usage.records', 'id'));
END
$$;

DROP FUNCTION IF EXISTS usage.record(text, text, text, text, bigint, bigint, bigint,
                                     text, text, jsonb, timestamptz);
-- POST /usage/records → {id, totalTokens, cost, budget}; one `usage` event.
CREATE FUNCTION usage.record(
    p_thread_id text, p_agent_id text, p_model text, p_provider text,
    p_prompt_tokens bigint, p_completion_tokens bigint, p_latency_ms bigint,
    p_user_id text, p_variant_id text, p_metadata jsonb, p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
    b usage.thread_budgets;
BEGIN
    SELECT * INTO r FROM usage._ingest(
        ARRAY[p_thread_id], ARRAY[p_agent_id], ARRAY[p_model], ARRAY[p_provider],
        ARRAY[p_prompt_tokens], ARRAY[p_completion_tokens], ARRAY[p_latency_ms],
        ARRAY[p_user_id], ARRAY[p_variant_id], ARRAY[p_metadata], ARRAY[p_at]);
    SELECT * INTO b FROM usage.thread_budgets WHERE thread_id = p_thread_id;
    PERFORM feed.emit_data('usage',
        jsonb_build_object('id', r.last_id, 'threadId', p_thread_id, 'agentId', p_agent_id,
                           'model', p_model, 'promptTokens', p_prompt_tokens,
                           'completionTokens', p_completion_tokens,
                           'totalTokens', r.total_tokens, 'cost', r.last_cost),
        p_user_id => p_user_id, p_agent => p_agent_id, p_thread_id => p_thread_id,
        p_notify => false);
    RETURN jsonb_build_object(
        'id', r.last_id,
        'totalTokens', r.total_tokens,
        'cost', r.last_cost,
        'budget', usage.budget_json(b.thread_id, b.max_tokens, b.prompt_tokens, b.completion_tokens));
END
$$;

DROP FUNCTION IF EXISTS usage.record_batch(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                           text[], text[], jsonb[], timestamptz[]);
-- POST /usage/records/batch → {inserted, totalCost}; all or nothing. One
-- `usage` event per batch, with the summary (data.batch = true).
CREATE FUNCTION usage.record_batch(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[], p_at timestamptz[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM usage._ingest(
        p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens, p_completion_tokens,
        p_latency_ms, p_user_ids, p_variant_ids, p_metadata, p_at);
    IF r.inserted > 0 THEN
        PERFORM feed.emit_data('usage',
            jsonb_build_object('batch', true, 'inserted', r.inserted,
                               'totalTokens', r.total_tokens, 'totalCost', round(r.total_cost, 6)));
    END IF;
    RETURN jsonb_build_object('inserted', r.inserted, 'totalCost', round(r.total_cost, 6));
END
$$;

-- Totals ------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION usage.totals_json(p_prompt numeric, p_completion numeric,
                                             p_count numeric, p_cost numeric,
                                             p_latency_sum numeric, p_latency_count numeric)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'totalTokens', coalesce(p_prompt, 0) + coalesce(p_completion, 0),
        'promptTokens', coalesce(p_prompt, 0),
        'completionTokens', coalesce(p_completion, 0),
        'requestCount', coalesce(p_count, 0),
        'totalCost', round(coalesce(p_cost, 0), 4),
        'avgLatencyMs', CASE WHEN coalesce(p_latency_count, 0) > 0
                             THEN round(p_latency_sum / p_latency_count, 1) ELSE 0 END)
$$;

-- GET /usage: the newest epoch's totals, by agent and by model, from the
-- rollups. activeThreads = threads with at least one record in the newest epoch.
CREATE OR REPLACE FUNCTION usage.overview()
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_epoch integer := usage.current_epoch();
    v_agents jsonb;
    v_models jsonb;
    v_totals jsonb;
BEGIN
    WITH a AS (
        SELECT agent_id, sum(prompt_tokens) p, sum(completion_tokens) c, sum(request_count) n,
               sum(cost) cost, sum(latency_sum) ls, sum(latency_count) lc
        FROM usage.agent_rollup WHERE epoch = v_epoch GROUP BY agent_id)
    SELECT coalesce(jsonb_agg(jsonb_build_object('agentId', nullif(a.agent_id, ''))
                              || usage.totals_json(a.p, a.c, a.n, a.cost, a.ls, a.lc)
                              ORDER BY a.p + a.c DESC, a.agent_id), '[]'::jsonb),
           usage.totals_json(sum(a.p), sum(a.c), sum(a.n), sum(a.cost), sum(a.ls), sum(a.lc))
    INTO v_agents, v_totals
    FROM a;
    WITH m AS (
        SELECT model, sum(prompt_tokens) p, sum(completion_tokens) c, sum(request_count) n,
               sum(cost) cost, sum(latency_sum) ls, sum(latency_count) lc
        FROM usage.model_rollup WHERE epoch = v_epoch GROUP BY model)
    SELECT coalesce(jsonb_agg(jsonb_build_object('model', m.model)
                              || usage.totals_json(m.p, m.c, m.n, m.cost, m.ls, m.lc)
                              ORDER BY m.p + m.c DESC, m.model), '[]'::jsonb)
    INTO v_models
    FROM m;
    RETURN jsonb_build_object('usage', jsonb_build_object(
        'totals', v_totals,
        'byAgent', v_agents,
        'byModel', v_models,
        'activeThreads', (SELECT coalesce(sum(active_threads), 0)
                          FROM usage.epoch_rollup WHERE epoch = v_epoch)));
END
$$;

-- GET /usage/agents/{agentId}: zeros when the agent has no usage.
CREATE OR REPLACE FUNCTION usage.agent_totals(p_agent_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM ap.check_ident('agentId', p_agent_id);
    RETURN (SELECT jsonb_build_object('agentId', p_agent_id)
                   || usage.totals_json(sum(prompt_tokens), sum(completion_tokens),
                                        sum(request_count), sum(cost), sum(latency_sum),
                                        sum(latency_count))
            FROM usage.agent_rollup
            WHERE epoch = usage.current_epoch() AND agent_id = p_agent_id);
END
$$;

-- GET /usage/models/{model}: the model as recorded (case-insensitive), zeros
-- when it has no usage.
CREATE OR REPLACE FUNCTION usage.model_totals(p_model text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM ap.check_ident('model', p_model);
    RETURN (SELECT jsonb_build_object('model', lower(p_model))
                   || usage.totals_json(sum(prompt_tokens), sum(completion_tokens),
                                        sum(request_count), sum(cost), sum(latency_sum),
                                        sum(latency_count))
            FROM usage.model_rollup
            WHERE epoch = usage.current_epoch() AND model = lower(p_model));
END
$$;

-- POST /usage/reset: a new epoch. Nothing is deleted.
CREATE OR REPLACE FUNCTION usage.reset()
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_epoch integer;
BEGIN
    PERFORM pg_advisory_xact_lock(usage.epoch_lock_key());
    INSERT INTO usage.epochs (id, started_at)
    SELECT max(id) + 1, now() FROM usage.epochs
    RETURNING id INTO v_epoch;
    PERFORM feed.emit_data('usage.reset',
        jsonb_build_object('epoch', v_epoch, 'startedAt', ap.ts(now())));
    RETURN jsonb_build_object('success', true,
        'message', format('usage totals reset: epoch %s started at %s', v_epoch, ap.ts(now())),
        'epoch', v_epoch);
END
$$;

-- History and daily series --------------------------------------------------------

CREATE OR REPLACE FUNCTION usage.record_json(r usage.records)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', r.id, 'threadId', r.thread_id, 'agentId', r.agent_id, 'model', r.model,
        'provider', r.provider, 'promptTokens', r.prompt_tokens,
        'completionTokens', r.completion_tokens,
        'totalTokens', r.prompt_tokens + r.completion_tokens, 'latencyMs', r.latency_ms,
        'cost', r.cost, 'userId', r.user_id, 'variantId', r.variant_id,
        'metadata', r.metadata, 'createdAt', ap.ts(r.created_at))
$$;

-- GET /usage/history: newest first, i.e. most recently recorded first (id
-- order; a record back-dated with `at` sorts where it was recorded); keyset
-- cursor `after` = the last id seen. Every epoch.
CREATE OR REPLACE FUNCTION usage.history(p_start timestamptz, p_end timestamptz,
                                         p_agent_id text, p_model text, p_thread_id text,
                                         p_limit integer, p_after bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_limit integer := coalesce(p_limit, 50);
    v_rows jsonb;
    v_count integer;
    v_last bigint;
BEGIN
    IF v_limit NOT BETWEEN 1 AND 100 THEN
        PERFORM ap.raise(400, 'invalid_paging', 'limit must be 1-100');
    END IF;
    IF p_agent_id IS NOT NULL THEN PERFORM ap.check_ident('agentId', p_agent_id); END IF;
    IF p_model IS NOT NULL THEN PERFORM ap.check_ident('model', p_model); END IF;
    IF p_thread_id IS NOT NULL THEN PERFORM ap.check_ident('threadId', p_thread_id); END IF;
    SELECT coalesce(jsonb_agg(usage.record_json(s) ORDER BY s.id DESC), '[]'::jsonb),
           count(*),
           min(s.id)
    INTO v_rows, v_count, v_last
    FROM (SELECT r.*
          FROM usage.records r
          WHERE (p_start IS NULL OR r.created_at >= p_start)
            AND (p_end IS NULL OR r.created_at < p_end)
            AND (p_agent_id IS NULL OR r.agent_id = p_agent_id)
            AND (p_model IS NULL OR lower(r.model) = lower(p_model))
            AND (p_thread_id IS NULL OR r.thread_id = p_thread_id)
            AND (p_after IS NULL OR r.id < p_after)
          ORDER BY r.id DESC
          LIMIT v_limit) s;
    RETURN jsonb_build_object('records', v_rows, 'count', v_count,
                              'nextAfter', CASE WHEN v_count = v_limit THEN v_last END);
END
$$;

-- GET /usage/daily: per UTC day, start inclusive, end exclusive, every epoch.
-- Whole days come from the daily rollup; a partial first or last day is
-- summed from the records of its covered part.
CREATE OR REPLACE FUNCTION usage.daily(p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    -- first whole day at or after start; first day not wholly before end
    v_from date := CASE WHEN p_start IS NULL THEN NULL
                        ELSE ((p_start AT TIME ZONE 'UTC') + interval '1 day' - interval '1 microsecond')::date END;
    v_to date := CASE WHEN p_end IS NULL THEN NULL ELSE (p_end AT TIME ZONE 'UTC')::date END;
    v_from_ts timestamptz := (v_from::timestamp AT TIME ZONE 'UTC');
    v_to_ts timestamptz := (v_to::timestamp AT TIME ZONE 'UTC');
    v_same boolean;
BEGIN
    IF p_start IS NOT NULL AND p_end IS NOT NULL AND p_end < p_start THEN
        PERFORM ap.raise(400, 'invalid_range', 'end must not be before start');
    END IF;
    v_same := p_start IS NOT NULL AND p_end IS NOT NULL AND v_from >= v_to;
    RETURN (
        WITH parts AS (
            SELECT day, sum(prompt_tokens + completion_tokens) AS tokens,
                   sum(request_count) AS n, sum(cost) AS cost
            FROM usage.daily_rollup
            WHERE NOT v_same
              AND (v_from IS NULL OR day >= v_from)
              AND (v_to IS NULL OR day < v_to)
            GROUP BY day
            UNION ALL
            SELECT (r.created_at AT TIME ZONE 'UTC')::date, sum(r.prompt_tokens + r.completion_tokens),
                   count(*), coalesce(sum(r.cost), 0)
            FROM usage.records r
            WHERE (v_same AND r.created_at >= p_start AND r.created_at < p_end)
               OR (NOT v_same AND p_start IS NOT NULL AND r.created_at >= p_start
                   AND r.created_at < v_from_ts AND (p_end IS NULL OR r.created_at < p_end))
               OR (NOT v_same AND p_end IS NOT NULL AND r.created_at >= v_to_ts
                   AND r.created_at < p_end AND (p_start IS NULL OR r.created_at >= p_start))
            GROUP BY 1),
        days AS (
            SELECT day, sum(tokens) AS tokens, sum(n) AS n, sum(cost) AS cost
            FROM parts GROUP BY day)
        SELECT jsonb_build_object(
            'days', coalesce(jsonb_agg(jsonb_build_object(
                        'date', to_char(day, 'YYYY-MM-DD'), 'totalTokens', tokens,
                        'requestCount', n, 'totalCost', round(cost, 4)) ORDER BY day), '[]'::jsonb),
            'count', count(*))
        FROM days);
END
$$;
