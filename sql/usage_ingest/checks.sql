-- Usage ingest: checking a batch. The whole-array checks of the identifier
-- fields, and the record-by-record check that names the first bad record
-- (run only when a whole-array check of usage._insert failed).

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

-- Raises 400 invalid_record naming the first bad record of a batch (its
-- index and field), or 400 invalid_token_breakdown when that record's counts
-- are each fine but its breakdown is more than its totals (cached + cache
-- write > prompt, or reasoning > completion); the rules of usage._insert,
-- record by record. Called only when a whole-array check of the batch failed.
CREATE OR REPLACE FUNCTION usage._refuse_first_bad_record(
    p_thread_ids text[], p_agent_ids text[], p_models text[], p_providers text[],
    p_prompt_tokens bigint[], p_completion_tokens bigint[], p_latency_ms bigint[],
    p_user_ids text[], p_variant_ids text[], p_metadata jsonb[],
    p_cached bigint[], p_cache_write bigint[], p_reasoning bigint[])
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_bad record;
BEGIN
    SELECT x.i - 1 AS idx, x.field, x.pt, x.ct, x.c, x.w, x.r INTO v_bad
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
            WHEN c NOT BETWEEN 0 AND usage.max_count() THEN 'cachedPromptTokens'
            WHEN w NOT BETWEEN 0 AND usage.max_count() THEN 'cacheWriteTokens'
            WHEN rs NOT BETWEEN 0 AND usage.max_count() THEN 'reasoningTokens'
            WHEN coalesce(c, 0) + coalesce(w, 0) > pt OR coalesce(rs, 0) > ct THEN 'breakdown'
          END AS field, pt, ct, coalesce(c, 0) AS c, coalesce(w, 0) AS w, coalesce(rs, 0) AS r
          FROM unnest(p_thread_ids, p_agent_ids, p_models, p_providers, p_prompt_tokens,
                      p_completion_tokens, p_latency_ms, p_user_ids, p_variant_ids, p_metadata,
                      p_cached, p_cache_write, p_reasoning)
               WITH ORDINALITY AS r(t, a, m, pv, pt, ct, l, u, v, md, c, w, rs, i)) x
    WHERE x.field IS NOT NULL
    ORDER BY x.i
    LIMIT 1;
    IF FOUND AND v_bad.field = 'breakdown' THEN
        PERFORM ap.raise(400, 'invalid_token_breakdown',
            format('record %s: cachedPromptTokens + cacheWriteTokens must not exceed promptTokens, nor reasoningTokens completionTokens',
                   v_bad.idx),
            jsonb_build_object('index', v_bad.idx, 'promptTokens', v_bad.pt,
                               'cachedPromptTokens', v_bad.c, 'cacheWriteTokens', v_bad.w,
                               'completionTokens', v_bad.ct, 'reasoningTokens', v_bad.r));
    ELSIF FOUND THEN
        PERFORM ap.raise(400, 'invalid_record',
            format('record %s: %s is missing or invalid', v_bad.idx, v_bad.field),
            jsonb_build_object('index', v_bad.idx, 'field', v_bad.field));
    END IF;
END
$$;
