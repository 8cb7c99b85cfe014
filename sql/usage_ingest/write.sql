-- Usage ingest: writing records. usage._insert, the one writer of records,
-- and the batch's distinct models it prices by (its checks are in
-- checks.sql).

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

-- Where usage._insert keeps the rates of a batch's models (v_km), flat:
-- model k's base rate at p_off[k] + 1 and its tier t at p_off[k] + 1 + t;
-- its tiers' thresholds at p_above[p_aoff[k] + 1 .. p_aoff[k] + p_nt[k]].

-- The position of the rates a record of model `p_model` with `p_pt` prompt
-- tokens is priced at (usage.tier_of); NULL when its model is not among
-- `p_models`.
CREATE OR REPLACE FUNCTION usage._rate_position(p_models text[], p_off integer[],
                                                p_aoff integer[], p_nt integer[],
                                                p_above bigint[], p_model text, p_pt bigint)
RETURNS integer LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    j integer := array_position(p_models, p_model);
BEGIN
    RETURN p_off[j] + usage.tier_of(p_above[p_aoff[j] + 1 : p_aoff[j] + p_nt[j]], p_pt);
END
$$;

-- The prompt tokens above which a model's one tier applies (`p_nt` tiers,
-- the first at p_above[p_aoff + 1]); the largest bigint when it has none, so
-- that no count is above it.
CREATE OR REPLACE FUNCTION usage._tier_above(p_nt integer, p_above bigint[], p_aoff integer)
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN p_nt = 1 THEN p_above[p_aoff + 1] ELSE 9223372036854775807 END
$$;

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS usage._insert(text[], text[], text[], text[], bigint[], bigint[], bigint[],
                                      text[], text[], jsonb[], timestamptz[], bigint[], bigint[],
                                      bigint[]);
-- The one writer of records. Parallel arrays, one element per record; all
-- validated first (400 naming the first bad record, nothing written). The
-- records get the consecutive ids first_id..last_id, in array order. The
-- breakdown arrays (cached prompt, cache write, reasoning tokens) may be NULL
-- (no record gives that count) or hold NULL elements (0).
-- (Generic plans: its statements read the batch's arrays, and a plan made
-- for the arrays at hand looks cheaper to the planner than the kept one, so
-- it would plan them again at every call; planned once, the batch function
-- runs about a tenth fewer instructions.)
CREATE FUNCTION usage._insert(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[], p_at timestamptz[],
    p_cached bigint[], p_cache_write bigint[], p_reasoning bigint[],
    OUT inserted integer, OUT total_tokens bigint, OUT total_cost numeric,  -- NULL: none priced
    OUT first_id bigint, OUT last_id bigint)
LANGUAGE plpgsql SET enable_mergejoin = off SET plan_cache_mode = force_generic_plan AS $$
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
    v_keyed boolean := false;  -- priced at one instant: price ids and providers by model
    v_keys text[];              -- v_km's price keys (usage.price_keys)
    v_kid bigint[];
    v_kprov text[];
    -- The rates of v_km's price versions (usage.rates_of), laid out as
    -- usage._rate_position reads them.
    v_off integer[];
    v_aoff integer[];
    v_nt integer[];
    v_above bigint[];
    v_pp bigint[]; v_cpp bigint[]; v_cwp bigint[]; v_cp bigint[]; v_rp bigint[]; v_top bigint[];
    v_one_tier boolean;  -- at most 8 models, none with more than one tier
    -- Model k's (k = 1-8) base rate position and the prompt tokens above
    -- which its one tier applies (the largest bigint: no tier).
    v_b1 integer; v_b2 integer; v_b3 integer; v_b4 integer;
    v_b5 integer; v_b6 integer; v_b7 integer; v_b8 integer;
    v_a1 bigint; v_a2 bigint; v_a3 bigint; v_a4 bigint;
    v_a5 bigint; v_a6 bigint; v_a7 bigint; v_a8 bigint;
    v_price usage.model_prices;  -- model k's price version
    v_rates record;              -- its rates (usage.rates_of)
    k integer;
    -- The breakdown as stored: NULL when no record gives the count (or all
    -- give 0), else one element per record. (`0 <> ANY` is true when some
    -- element is neither NULL nor 0: one pass, where taking the NULLs and
    -- the zeros out builds two arrays.)
    v_c bigint[] := CASE WHEN 0 <> ANY (p_cached)
                         THEN array_replace(p_cached, NULL, 0) END;
    v_w bigint[] := CASE WHEN 0 <> ANY (p_cache_write)
                         THEN array_replace(p_cache_write, NULL, 0) END;
    v_r bigint[] := CASE WHEN 0 <> ANY (p_reasoning)
                         THEN array_replace(p_reasoning, NULL, 0) END;
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
       OR n <> coalesce(cardinality(p_metadata), 0) OR n <> coalesce(cardinality(p_at), 0)
       OR n <> coalesce(cardinality(p_cached), n) OR n <> coalesce(cardinality(p_cache_write), n)
       OR n <> coalesce(cardinality(p_reasoning), n) THEN
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
       OR cardinality(array_remove(p_metadata, NULL)) > 0
       OR coalesce(0 > ANY (v_c) OR usage.max_count() < ANY (v_c), false)
       OR coalesce(0 > ANY (v_w) OR usage.max_count() < ANY (v_w), false)
       OR coalesce(0 > ANY (v_r) OR usage.max_count() < ANY (v_r), false)
       -- (after the range checks, so the sum stays far below 2^63; the
       -- arrays unnested side by side in the select list, record by record,
       -- where unnest in FROM would store them all first)
       OR ((v_c IS NOT NULL OR v_w IS NOT NULL OR v_r IS NOT NULL)
           AND EXISTS (SELECT 1
                       FROM (SELECT unnest(p_prompt_tokens) AS pt,
                                    unnest(p_completion_tokens) AS ct, unnest(v_c) AS c,
                                    unnest(v_w) AS w, unnest(v_r) AS r) x
                       WHERE coalesce(x.c, 0) + coalesce(x.w, 0) > x.pt
                          OR coalesce(x.r, 0) > x.ct)) THEN
        PERFORM usage._refuse_first_bad_record(
            p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
            p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids, p_metadata,
            v_c, v_w, v_r);
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
        -- now, so each distinct model has one price version, looked up once
        -- with its rates. At most two passes: the second when a record names
        -- a model the first 64 did not (v_km is then every model, checked
        -- first).
        FOR v_pass IN 1..2 LOOP
            IF v_pass = 2 THEN
                v_km := usage.distinct_models(p_models);
                IF NOT usage.idents_ok(v_km) THEN
                    PERFORM usage._refuse_first_bad_record(
                        p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
                        p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids, p_metadata,
                        v_c, v_w, v_r);
                END IF;
            END IF;
            -- Model by model, in statements whose plans are kept: a query
            -- over unnest(v_km) would be planned again at every call (the
            -- planner sizes an unnest by the array it is given, so a plan
            -- made for the array at hand always looks cheaper than the kept
            -- one).
            v_keys := usage.price_keys(v_km);
            v_kid := '{}'; v_kprov := '{}';
            v_off := '{}'; v_aoff := '{}'; v_nt := '{}'; v_above := '{}';
            v_pp := '{}'; v_cpp := '{}'; v_cwp := '{}'; v_cp := '{}'; v_rp := '{}'; v_top := '{}';
            FOR k IN 1..cardinality(v_km) LOOP
                -- usage.price_version's query, written out (no row: NULLs):
                -- calling it, a set-returning function, made the batch
                -- function about 5% slower (1,000-record batches, 4 models).
                SELECT p.* INTO v_price
                FROM usage.model_prices p
                WHERE p.model = v_keys[k] AND p.effective_from <= v_now
                ORDER BY p.effective_from DESC, p.id DESC
                LIMIT 1;
                v_kid[k] := v_price.id;
                v_kprov[k] := v_price.provider;
                v_rates := usage.rates_of(v_price);
                v_off[k] := cardinality(v_pp);
                v_aoff[k] := cardinality(v_above);
                v_nt[k] := coalesce(cardinality(v_rates.above), 0);
                v_above := v_above || coalesce(v_rates.above, '{}');
                -- (an unpriced model: one NULL rate, so its costs are NULL)
                v_pp := v_pp || coalesce(v_rates.pp, ARRAY[NULL::bigint]);
                v_cpp := v_cpp || coalesce(v_rates.cpp, ARRAY[NULL::bigint]);
                v_cwp := v_cwp || coalesce(v_rates.cwp, ARRAY[NULL::bigint]);
                v_cp := v_cp || coalesce(v_rates.cp, ARRAY[NULL::bigint]);
                v_rp := v_rp || coalesce(v_rates.rp, ARRAY[NULL::bigint]);
                v_top := v_top || coalesce(v_rates.top, ARRAY[NULL::bigint]);
            END LOOP;
            -- (the first eight, for the CASE below)
            v_k1 := v_km[1]; v_k2 := v_km[2]; v_k3 := v_km[3]; v_k4 := v_km[4];
            v_k5 := v_km[5]; v_k6 := v_km[6]; v_k7 := v_km[7]; v_k8 := v_km[8];
            v_one_tier := cardinality(v_km) <= 8 AND 1 >= ALL (v_nt);
            v_b1 := v_off[1] + 1; v_a1 := usage._tier_above(v_nt[1], v_above, v_aoff[1]);
            v_b2 := v_off[2] + 1; v_a2 := usage._tier_above(v_nt[2], v_above, v_aoff[2]);
            v_b3 := v_off[3] + 1; v_a3 := usage._tier_above(v_nt[3], v_above, v_aoff[3]);
            v_b4 := v_off[4] + 1; v_a4 := usage._tier_above(v_nt[4], v_above, v_aoff[4]);
            v_b5 := v_off[5] + 1; v_a5 := usage._tier_above(v_nt[5], v_above, v_aoff[5]);
            v_b6 := v_off[6] + 1; v_a6 := usage._tier_above(v_nt[6], v_above, v_aoff[6]);
            v_b7 := v_off[7] + 1; v_a7 := usage._tier_above(v_nt[7], v_above, v_aoff[7]);
            v_b8 := v_off[8] + 1; v_a8 := usage._tier_above(v_nt[8], v_above, v_aoff[8]);
            -- Each record finds its rates' position (its model's base rate,
            -- or its tier's) in line: its model compared with the first
            -- eight (array_position, a function call that sets up an
            -- iterator, cost three times as much), plus one when its prompt
            -- tokens are above the model's one tier. With more models or
            -- tiers, usage._rate_position finds it. NULL: a model not among
            -- v_km. Its rates are read by subscript (an 8-way CASE with the
            -- formula inlined in each branch ran about 3% more instructions:
            -- its expression is built again at every call). The select list unnests the
            -- arrays side by side (a NULL breakdown array gives NULL
            -- elements, read as 0) and nothing joins or sorts them, so the
            -- aggregates see the records in array order. The fences (OFFSET
            -- 0) keep each record's rate position and cost computed once:
            -- pulled up, they would be computed again wherever they are read.
            SELECT array_agg(c.cost), usage.total(c.pt + c.ct), sum(c.cost), count(c.pos)
            INTO v_costs, total_tokens, v_total_micros, v_found
            FROM (SELECT usage.cost_micros_top(y.pt, y.c, y.w, y.ct, y.r, v_pp[y.pos],
                                               v_cpp[y.pos], v_cwp[y.pos], v_cp[y.pos],
                                               v_rp[y.pos], v_top[y.pos]) AS cost,
                         y.pt, y.ct, y.pos
                  FROM (SELECT CASE WHEN v_one_tier THEN
                                   CASE x.m WHEN v_k1 THEN v_b1 + (x.pt > v_a1)::int
                                            WHEN v_k2 THEN v_b2 + (x.pt > v_a2)::int
                                            WHEN v_k3 THEN v_b3 + (x.pt > v_a3)::int
                                            WHEN v_k4 THEN v_b4 + (x.pt > v_a4)::int
                                            WHEN v_k5 THEN v_b5 + (x.pt > v_a5)::int
                                            WHEN v_k6 THEN v_b6 + (x.pt > v_a6)::int
                                            WHEN v_k7 THEN v_b7 + (x.pt > v_a7)::int
                                            WHEN v_k8 THEN v_b8 + (x.pt > v_a8)::int END
                               ELSE usage._rate_position(v_km, v_off, v_aoff, v_nt, v_above,
                                                         x.m, x.pt) END AS pos,
                               x.pt, x.ct, x.c, x.w, x.r
                        FROM (SELECT unnest(p_models) AS m, unnest(p_prompt_tokens) AS pt,
                                     unnest(p_completion_tokens) AS ct, unnest(v_c) AS c,
                                     unnest(v_w) AS w, unnest(v_r) AS r) x
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
        -- probe) and its rates. The records, unnested side by side in the select
        -- list, find their version in a hash of those few rows (merge joins are
        -- off for this function: the planner would sort the whole batch instead),
        -- and the aggregates collect them in the batch's order (the sorted
        -- subquery).
        WITH d AS MATERIALIZED (
            SELECT DISTINCT lower(r.m COLLATE "C") AS lm, coalesce(r.at, v_now) AS ts
            FROM unnest(p_models, p_at) AS r(m, at)),
        k AS MATERIALIZED (
            SELECT m.lm, usage.price_key(m.lm) AS pk FROM (SELECT DISTINCT lm FROM d) m),
        pr AS MATERIALIZED (
            SELECT d.lm, d.ts, p.id, p.provider, q.above, q.pp, q.cpp, q.cwp, q.cp, q.rp, q.top
            FROM d JOIN k USING (lm)
            -- usage.price_version's query, written out: one probe per
            -- (model, time), without a function call each
            LEFT JOIN LATERAL (SELECT v.id, v.provider FROM usage.model_prices v
                               WHERE v.model = k.pk AND v.effective_from <= d.ts
                               ORDER BY v.effective_from DESC, v.id DESC
                               LIMIT 1) p ON true
            LEFT JOIN LATERAL usage.version_rates(p.id) q ON true),
        priced AS (
            SELECT usage.cost_micros_top(x.pt, x.c, x.w, x.ct, x.r, pr.pp[t.pos], pr.cpp[t.pos],
                                         pr.cwp[t.pos], pr.cp[t.pos], pr.rp[t.pos],
                                         pr.top[t.pos]) AS cost,
                   pr.id AS price_id, coalesce(x.pv, pr.provider) AS provider,
                   x.pt + x.ct AS tokens, x.ts
            FROM (SELECT y.i, y.lm, y.pv, y.pt, y.ct, y.c, y.w, y.r, coalesce(y.at, v_now) AS ts
                  FROM (SELECT generate_series(1, n) AS i, lower(unnest(p_models) COLLATE "C") AS lm,
                               unnest(p_providers) AS pv, unnest(p_prompt_tokens) AS pt,
                               unnest(p_completion_tokens) AS ct, unnest(p_at) AS at,
                               unnest(v_c) AS c, unnest(v_w) AS w, unnest(v_r) AS r) y) x
            LEFT JOIN pr ON pr.lm = x.lm AND pr.ts = x.ts
            CROSS JOIN LATERAL (SELECT usage.tier_of(pr.above, x.pt) AS pos) t
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
                               key_models, key_price_ids, key_providers, cached_prompt_tokens,
                               cache_write_tokens, reasoning_tokens)
    VALUES (first_id, n, v_epoch, v_now, v_min_at, v_max_at, p_thread_ids, p_agent_ids, p_models,
            v_providers, p_prompt_tokens, p_completion_tokens, p_latency_ms, v_costs, v_price_ids,
            p_user_ids, p_variant_ids, p_metadata, p_at,
            CASE WHEN v_keyed THEN v_km END, CASE WHEN v_keyed THEN v_kid END,
            CASE WHEN v_keyed THEN v_kprov END, v_c, v_w, v_r);
    inserted := n;
END
$$;
