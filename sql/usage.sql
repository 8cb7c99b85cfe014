-- Usage metering and per-thread token budgets (docs/usage.md).
--
-- This file: constants, prices and thread budgets. Writes are in
-- sql/usage_ingest/ (records are written by usage._insert, write.sql, and
-- added to the budgets and rollups by usage._fold, fold.sql, a batch later
-- than it is written);
-- totals, history and the daily series in sql/usage_reads.sql. Every read of
-- a budget or total adds the records not folded yet (usage.pending_records).

-- Constants -----------------------------------------------------------------

CREATE OR REPLACE FUNCTION usage.default_max_tokens()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 100000::bigint $$;

-- The largest token count (or latency in ms) one record may carry. Far above
-- any real LLM call, and low enough that budget and rollup sums cannot
-- overflow: a record past it would be accepted and then fail every fold.
CREATE OR REPLACE FUNCTION usage.max_count()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1000000000::bigint $$;

CREATE OR REPLACE FUNCTION usage.max_batch()
RETURNS integer LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 10000 $$;

-- Writers hold it shared, a reset holds it exclusive: a record always lands in
-- the epoch that is newest when it commits.
CREATE OR REPLACE FUNCTION usage.epoch_lock_key()
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 7598543208318853733::bigint $$;

-- (PL/pgSQL: a SQL function with a FROM clause is not inlined, so it would
-- be parsed and planned again at every call; PL/pgSQL keeps the plan for the
-- session.)
CREATE OR REPLACE FUNCTION usage.current_epoch()
RETURNS integer LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT max(id) FROM usage.epochs);
END
$$;

-- Records --------------------------------------------------------------------

-- Micro-USD as USD with 6 decimals: how every stored cost and sum of costs
-- (usage.batches.cost_micros, a fold's sums) is read. NULL stays NULL.
-- Inlined where it is called.
CREATE OR REPLACE FUNCTION usage.usd(p_micros numeric)
RETURNS numeric LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_micros * 0.000001
$$;

-- The records of one batch row, in id order: the one place that says how a
-- batch's arrays make records (usage.batches; migrations/V9__usage_batches.sql
-- says why records are stored so). A record's price id and provider are its
-- own, else its model's in the batch's keys (V13__usage_batch_price_keys.sql). Inlined where it is called, so a reader
-- that has the batch row already unnests it without fetching it again.
-- (Its body names no function of ours, so `cost` is usage.usd written out:
-- an inlined body is parsed with the reader's rights, and the reporting role
-- has no USAGE on schema usage.)
CREATE OR REPLACE FUNCTION usage.batch_records(b anyelement)  -- a usage.batches row
RETURNS TABLE (id bigint, thread_id text, agent_id text, model text, provider text,
               prompt_tokens bigint, completion_tokens bigint, latency_ms bigint,
               cost numeric, price_id bigint, user_id text, variant_id text,
               metadata jsonb, epoch integer, created_at timestamptz, batch_id bigint,
               cached_prompt_tokens bigint, cache_write_tokens bigint, reasoning_tokens bigint)
LANGUAGE sql IMMUTABLE AS $$
    SELECT b.first_id + r.i - 1, r.thread_id, r.agent_id, r.model,
           coalesce(r.provider, b.key_providers[array_position(b.key_models, r.model)]),
           r.prompt_tokens, r.completion_tokens, r.latency_ms, r.cost_micros * 0.000001,
           coalesce(r.price_id, b.key_price_ids[array_position(b.key_models, r.model)]),
           r.user_id, r.variant_id, coalesce(r.metadata, '{}'::jsonb),
           b.epoch, coalesce(r.at, b.recorded_at), b.first_id,
           coalesce(r.cached, 0), coalesce(r.cache_write, 0), coalesce(r.reasoning, 0)
    FROM unnest(b.thread_ids, b.agent_ids, b.models, b.providers, b.prompt_tokens,
                b.completion_tokens, b.latency_ms, b.cost_micros, b.price_ids, b.user_ids,
                b.variant_ids, b.metadata, b.at, b.cached_prompt_tokens, b.cache_write_tokens,
                b.reasoning_tokens)
         WITH ORDINALITY AS r(thread_id, agent_id, model, provider, prompt_tokens,
                              completion_tokens, latency_ms, cost_micros, price_id, user_id,
                              variant_id, metadata, at, cached, cache_write, reasoning, i)
$$;

-- One row per usage record, with the columns the record table had (plus
-- `batch_id`, the batch's first_id). Any filter but one on batch_id unnests
-- every batch, so hot readers pick the batches first and call
-- usage.batch_records on them. (Identifiers in the "C" collation, as the
-- table's columns were; a function's result columns have the default one.)
CREATE OR REPLACE VIEW usage.records AS
SELECT r.id, r.thread_id COLLATE "C" AS thread_id, r.agent_id COLLATE "C" AS agent_id,
       r.model COLLATE "C" AS model, r.provider, r.prompt_tokens, r.completion_tokens,
       r.latency_ms, r.cost, r.price_id, r.user_id, r.variant_id, r.metadata, r.epoch,
       r.created_at, r.batch_id, r.cached_prompt_tokens, r.cache_write_tokens,
       r.reasoning_tokens
FROM usage.batches b
CROSS JOIN LATERAL usage.batch_records(b) r;

-- Records written but not yet in the budgets and rollups (usage.unfolded
-- names their batches). Reads add these to what they read from the rollups,
-- in the same snapshot: a fold moves records from here to there in one
-- transaction, so each record is counted exactly once.
-- (LATERAL: one primary-key probe per waiting batch, whatever the statistics
-- say. The functions that read it run with jit off: a plan over a view of
-- unnested arrays can look costly enough to compile, and compiling takes
-- longer than the read.)
CREATE OR REPLACE VIEW usage.pending_records AS
SELECT r.*
FROM usage.unfolded q
CROSS JOIN LATERAL (SELECT * FROM usage.records x WHERE x.batch_id = q.first_id OFFSET 0) r;

-- Prices ----------------------------------------------------------------------

-- The price key of each model of `p_models` (element i for model i): the
-- longest key that is a prefix of the lower-cased model
-- (claude-sonnet-4-20250514 → claude-sonnet-4); NULL when none matches. The
-- keys are read once for all the models, longest first, and each model takes
-- the first that fits (two keys of one length that both fit would be the
-- same key). (A PL/pgSQL loop over the few keys: a query that looked the
-- keys up model by model cost half as much again for a batch's four models.)
CREATE OR REPLACE FUNCTION usage.price_keys(p_models text[])
RETURNS text[] LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_keys text[] := ARRAY(SELECT k.model
                           FROM (SELECT DISTINCT model FROM usage.model_prices) k
                           ORDER BY length(k.model) DESC);
    v_found text[] := '{}';
    v_model text;
    v_key text;
BEGIN
    FOREACH v_model IN ARRAY coalesce(p_models, '{}') LOOP
        v_model := lower(v_model);
        v_key := NULL;
        FOR i IN 1 .. coalesce(cardinality(v_keys), 0) LOOP
            IF starts_with(v_model, v_keys[i]) THEN
                v_key := v_keys[i];
                EXIT;
            END IF;
        END LOOP;
        v_found := v_found || v_key;
    END LOOP;
    RETURN v_found;
END
$$;

-- The price key of one model (usage.price_keys).
CREATE OR REPLACE FUNCTION usage.price_key(p_model text)
RETURNS text LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (usage.price_keys(ARRAY[p_model]))[1];
END
$$;

-- The version of price key `p_key` in effect at `p_at` (newest effective at
-- that time); no row when there is none. PL/pgSQL: Citus cannot plan a
-- SQL-language function with parameters over a reference table where it is
-- not inlined, as in a LATERAL join.
CREATE OR REPLACE FUNCTION usage.price_version(p_key text, p_at timestamptz)
RETURNS SETOF usage.model_prices LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT p.*
    FROM usage.model_prices p
    WHERE p.model = p_key
      AND p.effective_from <= p_at
    ORDER BY p.effective_from DESC, p.id DESC
    LIMIT 1;
END
$$;

-- The price version that applies to `p_model` at `p_at`: its price key's
-- version in effect at that time. NULL (all fields) when no key matches.
CREATE OR REPLACE FUNCTION usage.price_at(p_model text, p_at timestamptz)
RETURNS usage.model_prices LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_key text := usage.price_key(p_model);  -- once (inlined below, once per row)
    v usage.model_prices;
BEGIN
    SELECT * INTO v FROM usage.price_version(v_key, p_at);
    RETURN v;
END
$$;

-- A price version as the API shows it (GET /model-prices, PUT's answer, the
-- model_price.changed event): the parts' prices as set (null: missing, so the
-- prompt price for the cache parts and the completion price for reasoning)
-- and its tiers ([] when none).
CREATE OR REPLACE FUNCTION usage.price_json(p_price_id bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'model', p.model,
        'provider', p.provider,
        'promptPerMillion', p.prompt_per_million,
        'completionPerMillion', p.completion_per_million,
        'cachedPromptPerMillion', p.cached_prompt_per_million,
        'cacheWritePerMillion', p.cache_write_per_million,
        'reasoningPerMillion', p.reasoning_per_million,
        'tiers', coalesce(p.tiers, '[]'::jsonb),
        'effectiveFrom', ap.ts(p.effective_from))
    FROM usage.model_prices p
    WHERE p.id = p_price_id
$$;

-- What a price version charges, in pico-USD per token (usage.pico_per_token),
-- with every missing part's price filled in: element 1 of each price array
-- is the base price, element k + 1 tier k's; `above` holds the tiers'
-- abovePromptTokens, ascending (a record's tier: usage.tier_of); `top` holds
-- each position's greatest price (usage.cost_micros_top). NULL arrays when
-- `p` is no version (all its fields NULL). Read once per price version a
-- batch or a reprice uses, never per record. Tier by tier in PL/pgSQL,
-- without a query: a batch calls it for each of its models, and a query over
-- the tiers cost about three times as much.
CREATE OR REPLACE FUNCTION usage.rates_of(
    p anyelement,  -- a usage.model_prices row
    OUT above bigint[], OUT pp bigint[], OUT cpp bigint[], OUT cwp bigint[],
    OUT cp bigint[], OUT rp bigint[], OUT top bigint[])
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    t jsonb;        -- one tier
    -- one position's prices, pico-USD per token: prompt, cached prompt,
    -- cache write, completion, reasoning
    v_p bigint; v_cached bigint; v_write bigint; v_c bigint; v_r bigint;
BEGIN
    IF p.id IS NULL THEN
        RETURN;
    END IF;
    v_p := usage.pico_per_token(p.prompt_per_million);
    v_c := usage.pico_per_token(p.completion_per_million);
    v_cached := coalesce(usage.pico_per_token(p.cached_prompt_per_million), v_p);
    v_write := coalesce(usage.pico_per_token(p.cache_write_per_million), v_p);
    v_r := coalesce(usage.pico_per_token(p.reasoning_per_million), v_c);
    above := '{}';
    pp := ARRAY[v_p]; cpp := ARRAY[v_cached]; cwp := ARRAY[v_write];
    cp := ARRAY[v_c]; rp := ARRAY[v_r];
    top := ARRAY[greatest(v_p, v_cached, v_write, v_c, v_r)];
    FOR i IN 0 .. coalesce(jsonb_array_length(p.tiers), 0) - 1 LOOP
        t := p.tiers -> i;
        v_p := usage.pico_per_token((t ->> 'promptPerMillion')::numeric);
        v_c := usage.pico_per_token((t ->> 'completionPerMillion')::numeric);
        v_cached := coalesce(usage.pico_per_token((t ->> 'cachedPromptPerMillion')::numeric), v_p);
        v_write := coalesce(usage.pico_per_token((t ->> 'cacheWritePerMillion')::numeric), v_p);
        v_r := coalesce(usage.pico_per_token((t ->> 'reasoningPerMillion')::numeric), v_c);
        above := above || (t ->> 'abovePromptTokens')::bigint;
        pp := pp || v_p; cpp := cpp || v_cached; cwp := cwp || v_write;
        cp := cp || v_c; rp := rp || v_r;
        top := top || greatest(v_p, v_cached, v_write, v_c, v_r);
    END LOOP;
END
$$;

-- usage.rates_of the price version `p_price_id` (NULL arrays for NULL).
-- Dropped and created again: CREATE OR REPLACE cannot change the result type
-- an earlier version's definition may have.
DROP FUNCTION IF EXISTS usage.version_rates(bigint);
CREATE FUNCTION usage.version_rates(
    p_price_id bigint,
    OUT above bigint[], OUT pp bigint[], OUT cpp bigint[], OUT cwp bigint[],
    OUT cp bigint[], OUT rp bigint[], OUT top bigint[])
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v usage.model_prices;
BEGIN
    SELECT m.* INTO v FROM usage.model_prices m WHERE m.id = p_price_id;
    SELECT r.above, r.pp, r.cpp, r.cwp, r.cp, r.rp, r.top INTO above, pp, cpp, cwp, cp, rp, top
    FROM usage.rates_of(v) r;
END
$$;

-- GET /model-prices: the version of every model in effect now.
CREATE OR REPLACE FUNCTION usage.list_prices()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('modelPrices',
        coalesce(jsonb_agg(usage.price_json(p.id) ORDER BY p.model), '[]'::jsonb))
    FROM (SELECT DISTINCT ON (model) id, model
          FROM usage.model_prices
          WHERE effective_from <= now()
          ORDER BY model, effective_from DESC, id DESC) p
$$;

-- Whether `p` is a price: a number from 0 to 1e9 USD per million tokens (so
-- that every cost fits in usage.batches' micro-USD:
-- migrations/V12__usage_cost_micros.sql).
CREATE OR REPLACE FUNCTION usage.price_ok(p numeric)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p IS NOT NULL AND p BETWEEN 0 AND 1e9
$$;

-- `p_tiers` as stored: each tier with its six fields (null: missing
-- optional price), prices rounded to 6 decimals, sorted by
-- abovePromptTokens. 400 invalid_price when it is not a list of at most 16
-- tiers with distinct abovePromptTokens (integers from 0 to 1e9) and prices
-- from 0 to 1e9 (prompt and completion required). NULL for NULL or [].
CREATE OR REPLACE FUNCTION usage.normalize_tiers(p_tiers jsonb)
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v jsonb;
    v_bad boolean;
BEGIN
    IF p_tiers IS NULL OR p_tiers = '[]'::jsonb THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p_tiers) <> 'array' OR jsonb_array_length(p_tiers) > 16
       OR EXISTS (SELECT 1 FROM jsonb_array_elements(p_tiers) t WHERE jsonb_typeof(t) <> 'object') THEN
        v_bad := true;
    ELSE
        SELECT bool_or(NOT (jsonb_typeof(t->'abovePromptTokens') = 'number'
                            AND (t->>'abovePromptTokens')::numeric BETWEEN 0 AND usage.max_count()
                            AND (t->>'abovePromptTokens')::numeric
                                = trunc((t->>'abovePromptTokens')::numeric)
                            AND jsonb_typeof(t->'promptPerMillion') = 'number'
                            AND usage.price_ok((t->>'promptPerMillion')::numeric)
                            AND jsonb_typeof(t->'completionPerMillion') = 'number'
                            AND usage.price_ok((t->>'completionPerMillion')::numeric)
                            AND coalesce(jsonb_typeof(t->'cachedPromptPerMillion'), 'null') IN ('null', 'number')
                            AND coalesce(jsonb_typeof(t->'cacheWritePerMillion'), 'null') IN ('null', 'number')
                            AND coalesce(jsonb_typeof(t->'reasoningPerMillion'), 'null') IN ('null', 'number')
                            AND (t->>'cachedPromptPerMillion' IS NULL
                                 OR usage.price_ok((t->>'cachedPromptPerMillion')::numeric))
                            AND (t->>'cacheWritePerMillion' IS NULL
                                 OR usage.price_ok((t->>'cacheWritePerMillion')::numeric))
                            AND (t->>'reasoningPerMillion' IS NULL
                                 OR usage.price_ok((t->>'reasoningPerMillion')::numeric))))
               OR count(DISTINCT (t->>'abovePromptTokens')::numeric) <> count(*)
        INTO v_bad
        FROM jsonb_array_elements(p_tiers) t;
    END IF;
    IF v_bad THEN
        PERFORM ap.raise(400, 'invalid_price',
            'tiers must be at most 16 of {abovePromptTokens (distinct integers 0 to 1e9), promptPerMillion, completionPerMillion, cachedPromptPerMillion?, cacheWritePerMillion?, reasoningPerMillion?} with prices from 0 to 1e9',
            jsonb_build_object('field', 'tiers'));
    END IF;
    SELECT jsonb_agg(jsonb_build_object(
               'abovePromptTokens', (t->>'abovePromptTokens')::bigint,
               'promptPerMillion', round((t->>'promptPerMillion')::numeric, 6),
               'completionPerMillion', round((t->>'completionPerMillion')::numeric, 6),
               'cachedPromptPerMillion', round((t->>'cachedPromptPerMillion')::numeric, 6),
               'cacheWritePerMillion', round((t->>'cacheWritePerMillion')::numeric, 6),
               'reasoningPerMillion', round((t->>'reasoningPerMillion')::numeric, 6))
               ORDER BY (t->>'abovePromptTokens')::bigint)
    INTO v
    FROM jsonb_array_elements(p_tiers) t;
    RETURN v;
END
$$;

-- PUT /model-prices/{model}: a new version, effective from `p_effective_from`
-- (default now; may lie in the past: records already written keep their
-- version until a reprice of their range).
CREATE OR REPLACE FUNCTION usage.set_price(p_model text, p_provider text,
                                           p_prompt_per_million numeric,
                                           p_completion_per_million numeric,
                                           p_cached_prompt_per_million numeric DEFAULT NULL,
                                           p_cache_write_per_million numeric DEFAULT NULL,
                                           p_reasoning_per_million numeric DEFAULT NULL,
                                           p_tiers jsonb DEFAULT NULL,
                                           p_effective_from timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v jsonb;
BEGIN
    PERFORM ap.check_ident('model', p_model);
    IF p_provider IS NULL OR length(p_provider) NOT BETWEEN 1 AND 128 THEN
        PERFORM ap.raise(400, 'invalid_provider', 'provider must be 1-128 characters',
                         jsonb_build_object('field', 'provider'));
    END IF;
    IF NOT (usage.price_ok(p_prompt_per_million) AND usage.price_ok(p_completion_per_million)
            AND (p_cached_prompt_per_million IS NULL OR usage.price_ok(p_cached_prompt_per_million))
            AND (p_cache_write_per_million IS NULL OR usage.price_ok(p_cache_write_per_million))
            AND (p_reasoning_per_million IS NULL OR usage.price_ok(p_reasoning_per_million))) THEN
        PERFORM ap.raise(400, 'invalid_price', 'prices must be numbers from 0 to 1e9',
                         jsonb_build_object('promptPerMillion', p_prompt_per_million,
                                            'completionPerMillion', p_completion_per_million,
                                            'cachedPromptPerMillion', p_cached_prompt_per_million,
                                            'cacheWritePerMillion', p_cache_write_per_million,
                                            'reasoningPerMillion', p_reasoning_per_million));
    END IF;
    INSERT INTO usage.model_prices (model, provider, prompt_per_million, completion_per_million,
                                    cached_prompt_per_million, cache_write_per_million,
                                    reasoning_per_million, tiers, effective_from)
    VALUES (lower(p_model), p_provider, round(p_prompt_per_million, 6),
            round(p_completion_per_million, 6), round(p_cached_prompt_per_million, 6),
            round(p_cache_write_per_million, 6), round(p_reasoning_per_million, 6),
            usage.normalize_tiers(p_tiers), coalesce(p_effective_from, now()))
    RETURNING id INTO v_id;
    v := usage.price_json(v_id);
    PERFORM feed.emit_data('model_price.changed', v);
    RETURN v;
END
$$;

-- Budgets ---------------------------------------------------------------------

-- The thresholds (percent) reached at `p_total` of `p_max` that are not in `p_fired`.
CREATE OR REPLACE FUNCTION usage.crossed(p_total bigint, p_max bigint, p_fired smallint[])
RETURNS smallint[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    -- one expression, no subquery: inlined into the callers' upserts;
    -- numeric arithmetic, exact whatever maxTokens a client sets. First two
    -- bigint tests that settle most calls (a fold upserts thousands of
    -- threads): every threshold fired already, or the total below 3/4 of
    -- the budget rounded down (3 * (max / 4) cannot overflow).
    SELECT CASE WHEN p_fired @> '{75,90,95,100}'::smallint[] OR p_total < 3 * (p_max / 4)
                THEN '{}'::smallint[]
           ELSE array_remove(ARRAY[
        CASE WHEN p_total::numeric * 100 >= 75 * p_max::numeric AND NOT (75 = ANY (p_fired)) THEN 75 END,
        CASE WHEN p_total::numeric * 100 >= 90 * p_max::numeric AND NOT (90 = ANY (p_fired)) THEN 90 END,
        CASE WHEN p_total::numeric * 100 >= 95 * p_max::numeric AND NOT (95 = ANY (p_fired)) THEN 95 END,
        CASE WHEN p_total >= p_max AND NOT (100 = ANY (p_fired)) THEN 100 END
    ]::smallint[], NULL) END
$$;

-- A ThreadBudget. The breakdown is shown; the budget counts prompt and
-- completion tokens (the breakdown is part of them).
CREATE OR REPLACE FUNCTION usage.budget_json(p_thread_id text, p_max bigint,
                                             p_prompt bigint, p_completion bigint,
                                             p_cached bigint, p_cache_write bigint,
                                             p_reasoning bigint)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'threadId', p_thread_id,
        'maxTokens', p_max,
        'promptTokens', p_prompt,
        'completionTokens', p_completion,
        'cachedPromptTokens', p_cached,
        'cacheWriteTokens', p_cache_write,
        'reasoningTokens', p_reasoning,
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

-- A thread's budget figures: its row plus its records not folded yet (one
-- primary-key probe per unfolded batch). No row when the thread has neither. One
-- query, so one snapshot.
CREATE OR REPLACE FUNCTION usage.thread_usage(p_thread_id text)
RETURNS TABLE (max_tokens bigint, prompt_tokens bigint, completion_tokens bigint,
               cached_prompt_tokens bigint, cache_write_tokens bigint, reasoning_tokens bigint)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT coalesce(b.max_tokens, usage.default_max_tokens()),
           coalesce(b.prompt_tokens, 0) + coalesce(t.sp, 0),
           coalesce(b.completion_tokens, 0) + coalesce(t.sc, 0),
           coalesce(b.cached_prompt_tokens, 0) + coalesce(t.scp, 0),
           coalesce(b.cache_write_tokens, 0) + coalesce(t.scw, 0),
           coalesce(b.reasoning_tokens, 0) + coalesce(t.sr, 0)
    FROM (SELECT sum(r.pt)::bigint AS sp, sum(r.ct)::bigint AS sc, sum(r.cpt)::bigint AS scp,
                 sum(r.cwt)::bigint AS scw, sum(r.rt)::bigint AS sr, count(*) AS n
          FROM usage.unfolded q
          JOIN usage.batches x ON x.first_id = q.first_id
          -- only batches holding the thread are unnested (a C loop over
          -- the array first)
          CROSS JOIN LATERAL unnest(x.thread_ids, x.prompt_tokens, x.completion_tokens,
                                    x.cached_prompt_tokens, x.cache_write_tokens,
                                    x.reasoning_tokens) r(t, pt, ct, cpt, cwt, rt)
          WHERE p_thread_id = ANY (x.thread_ids) AND r.t = p_thread_id) t
    LEFT JOIN usage.thread_budgets b ON b.thread_id = p_thread_id
    WHERE b.thread_id IS NOT NULL OR t.n > 0;
END
$$;

-- The ThreadBudget JSON of a thread; NULL when it has no budget yet.
CREATE OR REPLACE FUNCTION usage.thread_budget_json(p_thread_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT usage.budget_json(p_thread_id, u.max_tokens, u.prompt_tokens, u.completion_tokens,
                                     u.cached_prompt_tokens, u.cache_write_tokens, u.reasoning_tokens)
            FROM usage.thread_usage(p_thread_id) u);
END
$$;

-- GET /usage/threads/{threadId}
CREATE OR REPLACE FUNCTION usage.get_budget(p_thread_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v jsonb;
BEGIN
    PERFORM ap.check_ident('threadId', p_thread_id);
    v := usage.thread_budget_json(p_thread_id);
    IF v IS NULL THEN
        PERFORM ap.raise(404, 'budget_not_found', 'this thread has no budget yet',
                         jsonb_build_object('threadId', p_thread_id));
    END IF;
    RETURN v;
END
$$;

-- PUT /usage/threads/{threadId}: sets maxTokens (creating the budget). A lower
-- limit that puts the thread past a threshold fires that threshold's event
-- (still once per thread).
CREATE OR REPLACE FUNCTION usage.set_budget(p_thread_id text, p_max_tokens bigint)
RETURNS jsonb LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    b usage.thread_budgets;
    v jsonb;
    v_now timestamptz := now();  -- Citus: no now() in ON CONFLICT DO UPDATE
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
        updated_at = v_now
    RETURNING * INTO b;
    -- fired_now: '{}' on a fresh row, else what this update newly reached
    PERFORM usage.emit_thresholds(b.thread_id, b.max_tokens,
                                  b.prompt_tokens + b.completion_tokens, b.fired_now);
    -- (records not folded yet reach thresholds when they are folded)
    v := usage.thread_budget_json(b.thread_id);
    PERFORM feed.emit_data('budget.updated', v, p_thread_id => b.thread_id);
    RETURN v;
END
$$;

-- POST /usage/threads/{threadId}/check: may an LLM call of about
-- `p_estimated_tokens` go ahead? A thread without a budget has the default,
-- unused one. Allowed when the budget is not exhausted and the estimate fits;
-- otherwise 429 budget_exhausted with details.budget. Writes nothing.
CREATE OR REPLACE FUNCTION usage.check_budget(p_thread_id text, p_estimated_tokens bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v_max bigint := usage.default_max_tokens();
    v_prompt bigint := 0;
    v_completion bigint := 0;
    v_cached bigint := 0;
    v_cache_write bigint := 0;
    v_reasoning bigint := 0;
    v_est bigint := coalesce(p_estimated_tokens, 0);
    v_budget jsonb;
BEGIN
    PERFORM ap.check_ident('threadId', p_thread_id);
    IF v_est < 0 THEN
        PERFORM ap.raise(400, 'invalid_estimated_tokens', 'estimatedTokens must be >= 0',
                         jsonb_build_object('estimatedTokens', p_estimated_tokens));
    END IF;
    SELECT u.max_tokens, u.prompt_tokens, u.completion_tokens, u.cached_prompt_tokens,
           u.cache_write_tokens, u.reasoning_tokens
    INTO v_max, v_prompt, v_completion, v_cached, v_cache_write, v_reasoning
    FROM usage.thread_usage(p_thread_id) u;
    IF NOT FOUND THEN
        v_max := usage.default_max_tokens();
        v_prompt := 0;
        v_completion := 0;
        v_cached := 0;
        v_cache_write := 0;
        v_reasoning := 0;
    END IF;
    v_budget := usage.budget_json(p_thread_id, v_max, v_prompt, v_completion,
                                  v_cached, v_cache_write, v_reasoning);
    IF v_prompt + v_completion >= v_max OR v_prompt + v_completion + v_est > v_max THEN
        PERFORM ap.raise(429, 'budget_exhausted',
            format('thread %s has %s of %s tokens left; %s estimated',
                   p_thread_id, greatest(v_max - v_prompt - v_completion, 0), v_max, v_est),
            jsonb_build_object('budget', v_budget, 'estimatedTokens', v_est));
    END IF;
    RETURN jsonb_build_object('allowed', true, 'budget', v_budget);
END
$$;

-- GET /usage/threads: budgets by percentUsed descending (then threadId),
-- each with its records not folded yet.
CREATE OR REPLACE FUNCTION usage.list_budgets(p_limit integer, p_offset integer)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v_limit integer := coalesce(p_limit, 50);
    v_offset integer := coalesce(p_offset, 0);
BEGIN
    IF v_limit NOT BETWEEN 1 AND 100 OR v_offset < 0 THEN
        PERFORM ap.raise(400, 'invalid_paging', 'limit must be 1-100 and offset >= 0');
    END IF;
    RETURN (
        WITH pending AS (
            SELECT p.thread_id, sum(p.prompt_tokens)::bigint AS sp,
                   sum(p.completion_tokens)::bigint AS sc,
                   sum(p.cached_prompt_tokens)::bigint AS scp,
                   sum(p.cache_write_tokens)::bigint AS scw,
                   sum(p.reasoning_tokens)::bigint AS sr
            FROM usage.pending_records p
            GROUP BY p.thread_id),
        budgets AS (
            SELECT coalesce(b.thread_id, t.thread_id) AS thread_id,
                   coalesce(b.max_tokens, usage.default_max_tokens()) AS max_tokens,
                   coalesce(b.prompt_tokens, 0) + coalesce(t.sp, 0) AS prompt_tokens,
                   coalesce(b.completion_tokens, 0) + coalesce(t.sc, 0) AS completion_tokens,
                   coalesce(b.cached_prompt_tokens, 0) + coalesce(t.scp, 0) AS cached_prompt_tokens,
                   coalesce(b.cache_write_tokens, 0) + coalesce(t.scw, 0) AS cache_write_tokens,
                   coalesce(b.reasoning_tokens, 0) + coalesce(t.sr, 0) AS reasoning_tokens
            FROM usage.thread_budgets b
            FULL JOIN pending t ON t.thread_id = b.thread_id)
        SELECT jsonb_build_object(
            'threads', coalesce(jsonb_agg(usage.budget_json(s.thread_id, s.max_tokens,
                                                              s.prompt_tokens, s.completion_tokens,
                                                              s.cached_prompt_tokens,
                                                              s.cache_write_tokens,
                                                              s.reasoning_tokens)
                                          ORDER BY s.ratio DESC, s.thread_id), '[]'::jsonb),
            'count', count(*),
            'total', (SELECT count(*) FROM budgets),
            'offset', v_offset,
            'limit', v_limit,
            'defaultMaxTokens', usage.default_max_tokens())
        FROM (SELECT b.*, (b.prompt_tokens + b.completion_tokens)::numeric / b.max_tokens AS ratio
              FROM budgets b
              ORDER BY ratio DESC, b.thread_id
              LIMIT v_limit OFFSET v_offset) s);
END
$$;
