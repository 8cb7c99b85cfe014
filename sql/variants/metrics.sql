-- Agent variants: the performance log and the metrics read from it (one
-- variant, a time series, every variant side by side).

-- POST /agents/{name}/performance. Attributed to p_variant_slug when given,
-- else to the variant active at p_at (now when p_at is NULL), else none.
CREATE OR REPLACE FUNCTION variants.log_performance(
    p_agent text, p_success boolean, p_latency_ms double precision,
    p_prompt_tokens bigint, p_completion_tokens bigint, p_cost double precision,
    p_quality_score double precision, p_error text, p_variant_slug text, p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_variant uuid;
    v_slug text;
    r variants.performance;
    v_out jsonb;
BEGIN
    PERFORM agents.must_get(p_agent);
    IF p_success IS NULL THEN
        PERFORM ap.raise(400, 'invalid_field', 'success is required', '{"field":"success"}');
    END IF;
    IF p_latency_ms IS NULL OR p_latency_ms < 0 OR p_latency_ms = 'Infinity' OR p_latency_ms = 'NaN' THEN
        PERFORM ap.raise(400, 'invalid_field', 'latencyMs must be a number >= 0', '{"field":"latencyMs"}');
    END IF;
    IF p_prompt_tokens < 0 THEN
        PERFORM ap.raise(400, 'invalid_field', 'promptTokens must be >= 0', '{"field":"promptTokens"}');
    END IF;
    IF p_completion_tokens < 0 THEN
        PERFORM ap.raise(400, 'invalid_field', 'completionTokens must be >= 0', '{"field":"completionTokens"}');
    END IF;
    IF p_cost < 0 OR p_cost = 'Infinity' OR p_cost = 'NaN' OR p_cost >= 1e14 THEN
        PERFORM ap.raise(400, 'invalid_field', 'cost must be a number from 0 to 1e14', '{"field":"cost"}');
    END IF;
    IF p_quality_score IN ('Infinity', '-Infinity', 'NaN') THEN
        PERFORM ap.raise(400, 'invalid_field', 'qualityScore must be a finite number', '{"field":"qualityScore"}');
    END IF;
    IF length(p_error) > 100000 THEN
        PERFORM ap.raise(400, 'invalid_field', 'error must be at most 100000 characters', '{"field":"error"}');
    END IF;
    IF p_variant_slug IS NOT NULL THEN
        SELECT id, slug INTO v_variant, v_slug FROM variants.variant(p_agent, p_variant_slug);
    ELSIF p_at IS NULL THEN
        SELECT id, slug INTO v_variant, v_slug FROM variants.variants
        WHERE agent_name = p_agent AND is_active;
    ELSE
        v_variant := variants.active_at(p_agent, p_at);
        SELECT slug INTO v_slug FROM variants.variants WHERE id = v_variant;
    END IF;
    INSERT INTO variants.performance (agent_name, variant_id, success, latency_ms,
        prompt_tokens, completion_tokens, cost, quality_score, error, at)
    VALUES (p_agent, v_variant, p_success, p_latency_ms, p_prompt_tokens, p_completion_tokens,
            round(p_cost::numeric, 6), p_quality_score, p_error, coalesce(p_at, now()))
    RETURNING * INTO r;
    v_out := jsonb_build_object(
        'id', r.id, 'agentName', r.agent_name, 'variantId', r.variant_id, 'variantSlug', v_slug,
        'success', r.success, 'latencyMs', r.latency_ms, 'promptTokens', r.prompt_tokens,
        'completionTokens', r.completion_tokens, 'cost', r.cost,
        'qualityScore', r.quality_score, 'error', r.error, 'at', ap.ts(r.at));
    PERFORM feed.emit_data('variant.performance', v_out, p_agent => p_agent);
    RETURN v_out;
END
$$;

CREATE OR REPLACE FUNCTION variants.check_range(p_start timestamptz, p_end timestamptz)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_start IS NOT NULL AND p_end IS NOT NULL AND p_start > p_end THEN
        PERFORM ap.raise(400, 'invalid_range', 'start must not be after end',
                         jsonb_build_object('start', p_start, 'end', p_end));
    END IF;
END
$$;

-- The metrics of a set of runs: the aggregate shared by metrics, history,
-- compare and reporting.variant_performance.
CREATE OR REPLACE FUNCTION variants.metrics_json(p_runs bigint, p_successes bigint,
    p_avg_latency double precision, p_p50 double precision, p_p95 double precision,
    p_tokens numeric, p_cost numeric, p_quality double precision)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'runs', p_runs,
        'successRate', CASE WHEN p_runs > 0 THEN p_successes::double precision / p_runs END,
        'avgLatencyMs', p_avg_latency,
        'p50LatencyMs', p_p50,
        'p95LatencyMs', p_p95,
        'totalTokens', coalesce(p_tokens, 0),
        'totalCost', round(coalesce(p_cost, 0), 4),
        'avgQualityScore', p_quality)
$$;

-- Metrics of one variant's runs in [p_start, p_end) (either bound optional).
CREATE OR REPLACE FUNCTION variants.metrics_of(p_agent text, p_variant uuid,
                                               p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT variants.metrics_json(
        count(*), count(*) FILTER (WHERE p.success),
        avg(p.latency_ms),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_ms),
        percentile_cont(0.95) WITHIN GROUP (ORDER BY p.latency_ms),
        sum(coalesce(p.prompt_tokens, 0) + coalesce(p.completion_tokens, 0)),
        sum(p.cost), avg(p.quality_score))
    FROM variants.performance p
    WHERE p.agent_name = p_agent AND p.variant_id = p_variant
      AND (p_start IS NULL OR p.at >= p_start)
      AND (p_end IS NULL OR p.at < p_end));
END
$$;

CREATE OR REPLACE FUNCTION variants.metrics(p_agent text, p_slug text,
                                            p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
BEGIN
    PERFORM agents.must_get(p_agent);
    v := variants.variant(p_agent, p_slug);
    PERFORM variants.check_range(p_start, p_end);
    RETURN jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug,
                              'variantName', v.name, 'isActive', v.is_active,
                              'start', ap.ts(p_start), 'end', ap.ts(p_end))
        || variants.metrics_of(p_agent, v.id, p_start, p_end);
END
$$;

-- Time series: one point per hour or day (UTC) that has runs, oldest first.
CREATE OR REPLACE FUNCTION variants.history(p_agent text, p_slug text, p_bucket text,
                                            p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
    v_points jsonb;
BEGIN
    PERFORM agents.must_get(p_agent);
    v := variants.variant(p_agent, p_slug);
    IF p_bucket IS NULL OR p_bucket NOT IN ('hour', 'day') THEN
        PERFORM ap.raise(400, 'invalid_bucket', 'bucket must be hour or day',
                         jsonb_build_object('bucket', p_bucket));
    END IF;
    PERFORM variants.check_range(p_start, p_end);
    SELECT coalesce(jsonb_agg(jsonb_build_object('bucketStart', ap.ts(b.bucket)) || b.m
                              ORDER BY b.bucket), '[]')
    INTO v_points
    FROM (
        SELECT date_trunc(p_bucket, p.at, 'UTC') AS bucket,
               variants.metrics_json(
                   count(*), count(*) FILTER (WHERE p.success),
                   avg(p.latency_ms),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_ms),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY p.latency_ms),
                   sum(coalesce(p.prompt_tokens, 0) + coalesce(p.completion_tokens, 0)),
                   sum(p.cost), avg(p.quality_score)) AS m
        FROM variants.performance p
        WHERE p.agent_name = p_agent AND p.variant_id = v.id
          AND (p_start IS NULL OR p.at >= p_start)
          AND (p_end IS NULL OR p.at < p_end)
        GROUP BY 1
    ) b;
    RETURN jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug,
                              'bucket', p_bucket, 'points', v_points,
                              'count', jsonb_array_length(v_points));
END
$$;

-- Every variant's metrics side by side (same order as the list). The
-- variants are read first and each one's metrics after: on Citus, a
-- statement sent to a shard cannot call a function that reads another table.
CREATE OR REPLACE FUNCTION variants.compare(p_agent text, p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_variants variants.variants[];
    v variants.variants;
    v_items jsonb := '[]';
BEGIN
    PERFORM agents.must_get(p_agent);
    PERFORM variants.check_range(p_start, p_end);
    SELECT array_agg(x ORDER BY x.created_at, x.slug) INTO v_variants
    FROM variants.variants x WHERE x.agent_name = p_agent;
    FOREACH v IN ARRAY coalesce(v_variants, '{}') LOOP
        v_items := v_items || jsonb_build_array(
            jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug,
                               'variantName', v.name, 'isActive', v.is_active,
                               'start', ap.ts(p_start), 'end', ap.ts(p_end))
            || variants.metrics_of(p_agent, v.id, p_start, p_end));
    END LOOP;
    RETURN jsonb_build_object('agentName', p_agent, 'variants', v_items,
                              'count', jsonb_array_length(v_items));
END
$$;
