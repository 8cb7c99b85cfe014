-- Usage totals, resets, history and the daily series (docs/usage.md).
--
-- Totals come from the rollups plus the records not folded into them yet
-- (usage.pending_records), never from a scan of all records.

-- Live totals: the rollups plus the records not folded yet -------------------------
-- (A filter on the grouping columns is pushed into both branches, so a read
-- of one agent probes the rollup's key and scans only the pending records.)

CREATE OR REPLACE VIEW usage.agent_usage AS
SELECT epoch, agent_id, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(request_count) AS request_count,
       sum(cost) AS cost, sum(latency_sum) AS latency_sum, sum(latency_count) AS latency_count,
       sum(cached_prompt_tokens) AS cached_prompt_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens
FROM (SELECT epoch, agent_id, prompt_tokens, completion_tokens, request_count, cost,
             latency_sum, latency_count, cached_prompt_tokens, cache_write_tokens,
             reasoning_tokens
      FROM usage.agent_rollup
      UNION ALL
      SELECT epoch, coalesce(agent_id, ''), prompt_tokens, completion_tokens, 1,
             coalesce(cost, 0), coalesce(latency_ms, 0), (latency_ms IS NOT NULL)::int,
             cached_prompt_tokens, cache_write_tokens, reasoning_tokens
      FROM usage.pending_records) x
GROUP BY epoch, agent_id;

CREATE OR REPLACE VIEW usage.model_usage AS
SELECT epoch, model, sum(prompt_tokens) AS prompt_tokens,
       sum(completion_tokens) AS completion_tokens, sum(request_count) AS request_count,
       sum(cost) AS cost, sum(latency_sum) AS latency_sum, sum(latency_count) AS latency_count,
       sum(cached_prompt_tokens) AS cached_prompt_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens
FROM (SELECT epoch, model, prompt_tokens, completion_tokens, request_count, cost,
             latency_sum, latency_count, cached_prompt_tokens, cache_write_tokens,
             reasoning_tokens
      FROM usage.model_rollup
      UNION ALL
      SELECT epoch, lower(model), prompt_tokens, completion_tokens, 1,
             coalesce(cost, 0), coalesce(latency_ms, 0), (latency_ms IS NOT NULL)::int,
             cached_prompt_tokens, cache_write_tokens, reasoning_tokens
      FROM usage.pending_records) x
GROUP BY epoch, model;

CREATE OR REPLACE VIEW usage.daily_usage AS
SELECT day, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(request_count) AS request_count, sum(cost) AS cost,
       sum(cached_prompt_tokens) AS cached_prompt_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens
FROM (SELECT day, prompt_tokens, completion_tokens, request_count, cost,
             cached_prompt_tokens, cache_write_tokens, reasoning_tokens
      FROM usage.daily_rollup
      UNION ALL
      SELECT (created_at AT TIME ZONE 'UTC')::date, prompt_tokens, completion_tokens, 1,
             coalesce(cost, 0), cached_prompt_tokens, cache_write_tokens, reasoning_tokens
      FROM usage.pending_records) x
GROUP BY day;

-- Threads with at least one record in epoch `p_epoch`: the folded count plus
-- the threads of pending records that the fold will count (no record of the
-- epoch folded yet).
CREATE OR REPLACE FUNCTION usage.active_threads(p_epoch integer)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT (SELECT coalesce(sum(active_threads), 0)::bigint
            FROM usage.epoch_rollup WHERE epoch = p_epoch)
         + (SELECT count(DISTINCT p.thread_id)
            FROM usage.pending_records p
            LEFT JOIN usage.thread_budgets b ON b.thread_id = p.thread_id
            WHERE p.epoch = p_epoch AND b.last_epoch IS DISTINCT FROM p_epoch));
END
$$;

-- Totals ------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION usage.totals_json(p_prompt numeric, p_completion numeric,
                                             p_count numeric, p_cost numeric,
                                             p_latency_sum numeric, p_latency_count numeric,
                                             p_cached numeric, p_cache_write numeric,
                                             p_reasoning numeric)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'totalTokens', coalesce(p_prompt, 0) + coalesce(p_completion, 0),
        'promptTokens', coalesce(p_prompt, 0),
        'completionTokens', coalesce(p_completion, 0),
        'cachedPromptTokens', coalesce(p_cached, 0),
        'cacheWriteTokens', coalesce(p_cache_write, 0),
        'reasoningTokens', coalesce(p_reasoning, 0),
        'requestCount', coalesce(p_count, 0),
        'totalCost', round(coalesce(p_cost, 0), 4),
        'avgLatencyMs', CASE WHEN coalesce(p_latency_count, 0) > 0
                             THEN round(p_latency_sum / p_latency_count, 1) ELSE 0 END)
$$;

-- GET /usage: the newest epoch's totals, by agent and by model, from the
-- live rollups. activeThreads = threads with at least one record in the newest epoch.
CREATE OR REPLACE FUNCTION usage.overview()
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v_epoch integer := usage.current_epoch();
    v_agents jsonb;
    v_models jsonb;
    v_totals jsonb;
BEGIN
    WITH a AS (
        SELECT agent_id, prompt_tokens p, completion_tokens c, request_count n,
               cost, latency_sum ls, latency_count lc, cached_prompt_tokens cpt,
               cache_write_tokens cwt, reasoning_tokens rt
        FROM usage.agent_usage WHERE epoch = v_epoch)
    SELECT coalesce(jsonb_agg(jsonb_build_object('agentId', nullif(a.agent_id, ''))
                              || usage.totals_json(a.p, a.c, a.n, a.cost, a.ls, a.lc, a.cpt,
                                                   a.cwt, a.rt)
                              ORDER BY a.p + a.c DESC, a.agent_id), '[]'::jsonb),
           usage.totals_json(sum(a.p), sum(a.c), sum(a.n), sum(a.cost), sum(a.ls), sum(a.lc),
                             sum(a.cpt), sum(a.cwt), sum(a.rt))
    INTO v_agents, v_totals
    FROM a;
    WITH m AS (
        SELECT model, prompt_tokens p, completion_tokens c, request_count n,
               cost, latency_sum ls, latency_count lc, cached_prompt_tokens cpt,
               cache_write_tokens cwt, reasoning_tokens rt
        FROM usage.model_usage WHERE epoch = v_epoch)
    SELECT coalesce(jsonb_agg(jsonb_build_object('model', m.model)
                              || usage.totals_json(m.p, m.c, m.n, m.cost, m.ls, m.lc, m.cpt,
                                                   m.cwt, m.rt)
                              ORDER BY m.p + m.c DESC, m.model), '[]'::jsonb)
    INTO v_models
    FROM m;
    RETURN jsonb_build_object('usage', jsonb_build_object(
        'totals', v_totals,
        'byAgent', v_agents,
        'byModel', v_models,
        'activeThreads', usage.active_threads(v_epoch)));
END
$$;

-- GET /usage/agents/{agentId}: zeros when the agent has no usage.
CREATE OR REPLACE FUNCTION usage.agent_totals(p_agent_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    -- Read before the query: on Citus, a statement sent to the shards cannot
    -- call a function that reads another table.
    v_epoch integer := usage.current_epoch();
BEGIN
    PERFORM ap.check_ident('agentId', p_agent_id);
    RETURN (SELECT jsonb_build_object('agentId', p_agent_id)
                   || usage.totals_json(sum(prompt_tokens), sum(completion_tokens),
                                        sum(request_count), sum(cost), sum(latency_sum),
                                        sum(latency_count), sum(cached_prompt_tokens),
                                        sum(cache_write_tokens), sum(reasoning_tokens))
            FROM usage.agent_usage
            WHERE epoch = v_epoch AND agent_id = p_agent_id);
END
$$;

-- GET /usage/models/{model}: the model as recorded (case-insensitive), zeros
-- when it has no usage.
CREATE OR REPLACE FUNCTION usage.model_totals(p_model text)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    v_epoch integer := usage.current_epoch();
BEGIN
    PERFORM ap.check_ident('model', p_model);
    RETURN (SELECT jsonb_build_object('model', lower(p_model))
                   || usage.totals_json(sum(prompt_tokens), sum(completion_tokens),
                                        sum(request_count), sum(cost), sum(latency_sum),
                                        sum(latency_count), sum(cached_prompt_tokens),
                                        sum(cache_write_tokens), sum(reasoning_tokens))
            FROM usage.model_usage
            WHERE epoch = v_epoch AND model = lower(p_model));
END
$$;

-- POST /usage/reset: a new epoch. Nothing is deleted.
CREATE OR REPLACE FUNCTION usage.reset()
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_epoch integer;
BEGIN
    -- Every batch of the closing epoch is folded before the new one starts,
    -- so a thread joins epochs in order: its budget row's last_epoch only
    -- grows, and activeThreads counts each thread once per epoch. What waits
    -- is folded first, while writers go on; then, under the epoch lock (no
    -- writer holds it, so none can add to the epoch), only what they
    -- committed meanwhile. Lock order: fold, then epoch (nobody takes them
    -- the other way round).
    PERFORM pg_advisory_xact_lock(usage.fold_lock_key());
    PERFORM usage._fold_waiting(NULL);
    PERFORM pg_advisory_xact_lock(usage.epoch_lock_key());
    PERFORM usage._fold_waiting(NULL);
    -- (Numbered first, then inserted: Citus cannot insert into a reference
    -- table from a select on it.)
    v_epoch := usage.current_epoch() + 1;
    INSERT INTO usage.epochs (id, started_at) VALUES (v_epoch, now());
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
        'totalTokens', r.prompt_tokens + r.completion_tokens,
        'cachedPromptTokens', r.cached_prompt_tokens, 'cacheWriteTokens', r.cache_write_tokens,
        'reasoningTokens', r.reasoning_tokens, 'latencyMs', r.latency_ms,
        'cost', r.cost, 'userId', r.user_id, 'variantId', r.variant_id,
        'metadata', r.metadata, 'createdAt', ap.ts(r.created_at))
$$;

-- GET /usage/history: newest first, i.e. most recently recorded first (id
-- order; a record back-dated with `at` sorts where it was recorded); keyset
-- cursor `after` = the last id seen. Every epoch.
-- p_user_id limits the page to one user's records (a key bound to a user
-- sees only those).
CREATE OR REPLACE FUNCTION usage.history(p_start timestamptz, p_end timestamptz,
                                         p_agent_id text, p_model text, p_thread_id text,
                                         p_limit integer, p_after bigint,
                                         p_user_id text DEFAULT NULL)
-- (enable_sort off: the planner takes each batch for 10 records, so for a
-- thread or agent filter it would unnest every matching batch and sort them
-- all; walking the batches newest first stops after the page: 1.3 s became
-- 17 ms for a thread in 1,600 of 2,000 batches.)
RETURNS jsonb LANGUAGE plpgsql STABLE SET enable_sort = off AS $$
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
    -- Batches newest first (primary key backwards), each read only when its
    -- time range and arrays can hold a match; then its records newest first.
    SELECT coalesce(jsonb_agg(usage.record_json(s) ORDER BY s.id DESC), '[]'::jsonb),
           count(*),
           min(s.id)
    INTO v_rows, v_count, v_last
    FROM (SELECT r.*
          FROM usage.batches b
          CROSS JOIN LATERAL usage.batch_records(b) r
          WHERE (p_after IS NULL OR b.first_id < p_after)
            AND (p_start IS NULL OR b.max_at >= p_start)
            AND (p_end IS NULL OR b.min_at < p_end)
            AND (p_agent_id IS NULL OR p_agent_id = ANY (b.agent_ids))
            AND (p_thread_id IS NULL OR p_thread_id = ANY (b.thread_ids))
            AND (p_user_id IS NULL OR p_user_id = ANY (b.user_ids))
            AND (p_start IS NULL OR r.created_at >= p_start)
            AND (p_end IS NULL OR r.created_at < p_end)
            AND (p_agent_id IS NULL OR r.agent_id = p_agent_id)
            AND (p_model IS NULL OR lower(r.model) = lower(p_model))
            AND (p_thread_id IS NULL OR r.thread_id = p_thread_id)
            AND (p_user_id IS NULL OR r.user_id = p_user_id)
            AND (p_after IS NULL OR r.id < p_after)
          ORDER BY b.first_id DESC, r.id DESC
          LIMIT v_limit) s;
    RETURN jsonb_build_object('records', v_rows, 'count', v_count,
                              'nextAfter', CASE WHEN v_count = v_limit THEN v_last END);
END
$$;

-- One day of GET /usage/daily.
CREATE OR REPLACE FUNCTION usage.day_json(p_day date, p_tokens numeric, p_requests numeric,
                                          p_cost numeric, p_cached numeric,
                                          p_cache_write numeric, p_reasoning numeric)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('date', to_char(p_day, 'YYYY-MM-DD'), 'totalTokens', p_tokens,
                              'cachedPromptTokens', coalesce(p_cached, 0),
                              'cacheWriteTokens', coalesce(p_cache_write, 0),
                              'reasoningTokens', coalesce(p_reasoning, 0),
                              'requestCount', p_requests, 'totalCost', round(p_cost, 4))
$$;

-- The records created in [p_from, p_to) (a NULL bound: open), of user
-- `p_user_id` only when given, summed per UTC day: the days GET /usage/daily
-- reads from the records rather than the daily rollup. Only batches whose
-- time range meets the range are unnested.
CREATE OR REPLACE FUNCTION usage.record_days(p_from timestamptz, p_to timestamptz,
                                             p_user_id text)
RETURNS TABLE (day date, tokens numeric, n bigint, cost numeric, cpt numeric, cwt numeric,
               rt numeric)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN QUERY
    SELECT (r.created_at AT TIME ZONE 'UTC')::date,
           sum(r.prompt_tokens + r.completion_tokens), count(*), coalesce(sum(r.cost), 0),
           sum(r.cached_prompt_tokens), sum(r.cache_write_tokens), sum(r.reasoning_tokens)
    FROM usage.batches b
    CROSS JOIN LATERAL usage.batch_records(b) r
    WHERE (p_user_id IS NULL OR p_user_id = ANY (b.user_ids))
      AND (p_from IS NULL OR b.max_at >= p_from)
      AND (p_to IS NULL OR b.min_at < p_to)
      AND (p_user_id IS NULL OR r.user_id = p_user_id)
      AND (p_from IS NULL OR r.created_at >= p_from)
      AND (p_to IS NULL OR r.created_at < p_to)
    GROUP BY 1;
END
$$;

-- GET /usage/daily: per UTC day, start inclusive, end exclusive, every epoch.
-- Whole days come from the live daily rollup (usage.daily_usage); a partial
-- first or last day is summed from the records of its covered part.
CREATE OR REPLACE FUNCTION usage.daily(p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql STABLE SET jit = off AS $$
DECLARE
    -- first whole day at or after start; first day not wholly before end
    v_from date := CASE WHEN p_start IS NULL THEN NULL
                        ELSE ((p_start AT TIME ZONE 'UTC') + interval '1 day' - interval '1 microsecond')::date END;
    v_to date := CASE WHEN p_end IS NULL THEN NULL ELSE (p_end AT TIME ZONE 'UTC')::date END;
    v_from_ts timestamptz := (v_from::timestamp AT TIME ZONE 'UTC');
    v_to_ts timestamptz := (v_to::timestamp AT TIME ZONE 'UTC');
    v_same boolean;
    v_partial jsonb;  -- the partial days' sums
BEGIN
    IF p_start IS NOT NULL AND p_end IS NOT NULL AND p_end < p_start THEN
        PERFORM ap.raise(400, 'invalid_range', 'end must not be before start');
    END IF;
    v_same := p_start IS NOT NULL AND p_end IS NOT NULL AND v_from >= v_to;
    -- The partial days from the records: the first and the last day's
    -- covered parts, or the part of the one day start and end fall in. (Read
    -- into a value first: on Citus, a statement sent to the shards cannot call
    -- a function that reads another table.)
    SELECT coalesce(jsonb_agg(x), '[]') INTO v_partial
    FROM (SELECT * FROM usage.record_days(p_start, p_end, NULL) WHERE v_same
          UNION ALL
          SELECT * FROM usage.record_days(p_start, least(v_from_ts, p_end), NULL)
          WHERE NOT v_same AND p_start IS NOT NULL
          UNION ALL
          SELECT * FROM usage.record_days(greatest(v_to_ts, p_start), p_end, NULL)
          WHERE NOT v_same AND p_end IS NOT NULL) x;
    RETURN (
        WITH parts AS (
            SELECT day, sum(prompt_tokens + completion_tokens) AS tokens,
                   sum(request_count) AS n, sum(cost) AS cost,
                   sum(cached_prompt_tokens) AS cpt, sum(cache_write_tokens) AS cwt,
                   sum(reasoning_tokens) AS rt
            FROM usage.daily_usage
            WHERE NOT v_same
              AND (v_from IS NULL OR day >= v_from)
              AND (v_to IS NULL OR day < v_to)
            GROUP BY day
            UNION ALL
            SELECT * FROM jsonb_to_recordset(v_partial)
                AS p(day date, tokens numeric, n numeric, cost numeric, cpt numeric,
                     cwt numeric, rt numeric)),
        days AS (
            SELECT day, sum(tokens) AS tokens, sum(n) AS n, sum(cost) AS cost,
                   sum(cpt) AS cpt, sum(cwt) AS cwt, sum(rt) AS rt
            FROM parts GROUP BY day)
        SELECT jsonb_build_object(
            'days', coalesce(jsonb_agg(usage.day_json(day, tokens, n, cost, cpt, cwt, rt) ORDER BY day), '[]'::jsonb),
            'count', count(*))
        FROM days);
END
$$;

-- GET /usage/daily for a key bound to one user: the same figures from that
-- user's records alone. The daily rollup is not kept per user, so this sums
-- the records of the batches that hold any of the user's.
CREATE OR REPLACE FUNCTION usage.daily_for_user(p_start timestamptz, p_end timestamptz,
                                                p_user_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF p_start IS NOT NULL AND p_end IS NOT NULL AND p_end < p_start THEN
        PERFORM ap.raise(400, 'invalid_range', 'end must not be before start');
    END IF;
    PERFORM ap.check_ident('userId', p_user_id);
    RETURN (
        WITH days AS (SELECT * FROM usage.record_days(p_start, p_end, p_user_id))
        SELECT jsonb_build_object(
            'days', coalesce(jsonb_agg(usage.day_json(day, tokens, n, cost, cpt, cwt, rt) ORDER BY day), '[]'::jsonb),
            'count', count(*))
        FROM days);
END
$$;
