-- Usage ingest: the API's writers. One record, folded at once; or a batch,
-- written behind and folded later by usage.fold() (fold.sql).

-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS usage.record(text, text, text, text, bigint, bigint, bigint,
                                     text, text, jsonb, timestamptz, bigint, bigint, bigint);
-- POST /usage/records → {id, totalTokens, cost, budget}; one `usage` event.
-- Folded at once: the budget in the answer includes the record, and a
-- threshold the folded total reaches fires in this transaction.
CREATE FUNCTION usage.record(
    p_thread_id text, p_agent_id text, p_model text, p_provider text,
    p_prompt_tokens bigint, p_completion_tokens bigint, p_latency_ms bigint,
    p_user_id text, p_variant_id text, p_metadata jsonb, p_at timestamptz,
    p_cached_prompt_tokens bigint DEFAULT NULL, p_cache_write_tokens bigint DEFAULT NULL,
    p_reasoning_tokens bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql SET jit = off AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM usage._insert(
        ARRAY[p_thread_id], ARRAY[p_agent_id], ARRAY[p_model], ARRAY[p_provider],
        ARRAY[p_prompt_tokens], ARRAY[p_completion_tokens], ARRAY[p_latency_ms],
        ARRAY[p_user_id], ARRAY[p_variant_id], ARRAY[p_metadata], ARRAY[p_at],
        ARRAY[p_cached_prompt_tokens], ARRAY[p_cache_write_tokens], ARRAY[p_reasoning_tokens]);
    PERFORM usage._fold(ARRAY[r.first_id]);
    PERFORM feed.emit_data('usage',
        jsonb_build_object('id', r.first_id, 'threadId', p_thread_id, 'agentId', p_agent_id,
                           'model', p_model, 'promptTokens', p_prompt_tokens,
                           'completionTokens', p_completion_tokens,
                           'cachedPromptTokens', coalesce(p_cached_prompt_tokens, 0),
                           'cacheWriteTokens', coalesce(p_cache_write_tokens, 0),
                           'reasoningTokens', coalesce(p_reasoning_tokens, 0),
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
                                           text[], text[], jsonb[], timestamptz[], bigint[],
                                           bigint[], bigint[]);
-- POST /usage/records/batch → {inserted, totalCost}; all or nothing. One
-- `usage` event per batch, with the summary (data.batch = true). Written
-- behind: usage.unfolded names the batch until usage.fold() takes it.
CREATE FUNCTION usage.record_batch(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[], p_at timestamptz[],
    p_cached_prompt_tokens bigint[] DEFAULT NULL, p_cache_write_tokens bigint[] DEFAULT NULL,
    p_reasoning_tokens bigint[] DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_cost numeric;
BEGIN
    SELECT * INTO r FROM usage._insert(
        p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens, p_completion_tokens,
        p_latency_ms, p_user_ids, p_variant_ids, p_metadata, p_at, p_cached_prompt_tokens,
        p_cache_write_tokens, p_reasoning_tokens);
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
