-- Agent variants (docs/variants.md): CRUD, clone, the single-active rule,
-- resolved config, performance log and metrics. Every function returns jsonb
-- already in the API's camelCase shape.

-- Slug of a name: ASCII letters lowercased, ASCII digits kept, every other
-- run of characters becomes one '-', no leading/trailing '-', at most 128
-- characters. NULL when the name has no ASCII letter or digit.
-- (Not STRICT: a STRICT SQL function is inlined only when its body provably
-- is, and nullif is not; NULL in still gives NULL out.)
CREATE OR REPLACE FUNCTION variants.slugify(p_name text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT nullif(
        rtrim(left(
            btrim(regexp_replace(
                translate(p_name, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'),
                '[^0123456789abcdefghijklmnopqrstuvwxyz]+', '-', 'g'), '-'),
            128), '-'),
        '')
$$;

CREATE OR REPLACE FUNCTION variants.is_slug(p text)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p IS NOT NULL AND length(p) <= 128
       AND p ~ '^[0123456789abcdefghijklmnopqrstuvwxyz]+(-[0123456789abcdefghijklmnopqrstuvwxyz]+)*$'
$$;

-- The variant row, or 404 variant_not_found.
CREATE OR REPLACE FUNCTION variants.variant(p_agent text, p_slug text)
RETURNS variants.variants LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
BEGIN
    PERFORM ap.check_ident('slug', p_slug);
    SELECT * INTO v FROM variants.variants WHERE agent_name = p_agent AND slug = p_slug;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'variant_not_found',
                         format('agent %s has no variant %s', p_agent, p_slug),
                         jsonb_build_object('name', p_agent, 'slug', p_slug));
    END IF;
    RETURN v;
END
$$;

-- The Variant object of the API.
CREATE OR REPLACE FUNCTION variants.to_json(v variants.variants)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', v.id, 'agentName', v.agent_name, 'name', v.name, 'slug', v.slug,
        'isActive', v.is_active, 'createdAt', ap.ts(v.created_at),
        'updatedAt', ap.ts(v.updated_at))
        || agents.config_json(to_jsonb(v))
$$;

CREATE OR REPLACE FUNCTION variants.check_name(p_name jsonb)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_name IS NULL OR jsonb_typeof(p_name) <> 'string'
       OR length(p_name #>> '{}') NOT BETWEEN 1 AND 200 THEN
        PERFORM ap.raise(400, 'invalid_name', 'name must be a string of 1-200 characters',
                         jsonb_build_object('field', 'name'));
    END IF;
    RETURN p_name #>> '{}';
END
$$;

-- The slug for a new variant: the given one (which must already be a slug)
-- or the slugified name. Reserved slugs are refused.
CREATE OR REPLACE FUNCTION variants.choose_slug(p_name text, p_slug jsonb)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text;
BEGIN
    IF p_slug IS NULL OR jsonb_typeof(p_slug) = 'null' THEN
        v := variants.slugify(p_name);
        IF v IS NULL THEN
            PERFORM ap.raise(400, 'slug_required',
                'the name has no ASCII letter or digit to make a slug from; give a slug',
                jsonb_build_object('name', p_name));
        END IF;
    ELSE
        v := CASE WHEN jsonb_typeof(p_slug) = 'string' THEN p_slug #>> '{}' END;
        IF NOT variants.is_slug(v) THEN
            PERFORM ap.raise(400, 'invalid_slug',
                'slug must be 1-128 lowercase ASCII letters and digits in runs joined by single hyphens',
                jsonb_build_object('slug', p_slug));
        END IF;
    END IF;
    IF v IN ('clone', 'compare', 'deactivate') THEN
        PERFORM ap.raise(400, 'reserved_slug', format('the slug %s is reserved', v),
                         jsonb_build_object('slug', v));
    END IF;
    RETURN v;
END
$$;

-- Inserts a new variant (config already merged); 409 when the slug is taken.
CREATE OR REPLACE FUNCTION variants.insert_variant(p_agent text, p_name text, p_slug text, p_config jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
BEGIN
    v := jsonb_populate_record(NULL::variants.variants, p_config);
    v.id := gen_random_uuid();
    v.agent_name := p_agent;
    v.name := p_name;
    v.slug := p_slug;
    v.is_active := false;
    v.created_at := now();
    v.updated_at := now();
    INSERT INTO variants.variants SELECT v.*
    ON CONFLICT (agent_name, slug) DO NOTHING
    RETURNING * INTO v;
    IF NOT FOUND THEN
        PERFORM ap.raise(409, 'slug_taken',
                         format('agent %s already has a variant %s', p_agent, p_slug),
                         jsonb_build_object('name', p_agent, 'slug', p_slug));
    END IF;
    PERFORM feed.emit_data('variant.created', variants.to_json(v), p_agent => p_agent);
    RETURN variants.to_json(v);
END
$$;

-- POST /agents/{name}/variants: {name, slug?, ...config}. Config fields not
-- given (or null) are copied from the agent.
CREATE OR REPLACE FUNCTION variants.create(p_agent text, p_body jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
    v_name text;
    v_slug text;
    v_cfg jsonb;
BEGIN
    a := agents.must_get(p_agent);
    IF p_body IS NULL OR jsonb_typeof(p_body) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_body', 'the body must be a JSON object');
    END IF;
    v_name := variants.check_name(p_body -> 'name');
    v_slug := variants.choose_slug(v_name, p_body -> 'slug');
    v_cfg := jsonb_strip_nulls(agents.normalize_config(p_body, ARRAY['name', 'slug']));
    RETURN variants.insert_variant(p_agent, v_name, v_slug, agents.config_of(to_jsonb(a)) || v_cfg);
END
$$;

-- POST /agents/{name}/variants/clone: from the agent (p_source NULL) or a
-- variant; every field not in p_overrides is the source's (an override of
-- null sets the field to null, i.e. "fall back to the agent").
CREATE OR REPLACE FUNCTION variants.clone(p_agent text, p_source text, p_name text,
                                          p_slug text, p_overrides jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
    v_base jsonb;
    v_name text;
    v_slug text;
BEGIN
    a := agents.must_get(p_agent);
    v_name := variants.check_name(to_jsonb(p_name));
    v_slug := variants.choose_slug(v_name, to_jsonb(p_slug));
    IF p_source IS NULL THEN
        v_base := agents.config_of(to_jsonb(a));
    ELSE
        v_base := agents.config_of(to_jsonb(variants.variant(p_agent, p_source)));
    END IF;
    RETURN variants.insert_variant(p_agent, v_name, v_slug,
                           v_base || agents.normalize_config(coalesce(p_overrides, '{}')));
END
$$;

CREATE OR REPLACE FUNCTION variants.list(p_agent text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_items jsonb;
BEGIN
    PERFORM agents.must_get(p_agent);
    SELECT coalesce(jsonb_agg(variants.to_json(v) ORDER BY v.created_at, v.slug), '[]')
    INTO v_items
    FROM variants.variants v WHERE v.agent_name = p_agent;
    RETURN jsonb_build_object('variants', v_items, 'count', jsonb_array_length(v_items));
END
$$;

CREATE OR REPLACE FUNCTION variants.get(p_agent text, p_slug text)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM agents.must_get(p_agent);
    RETURN variants.to_json(variants.variant(p_agent, p_slug));
END
$$;

-- PATCH: only the keys present change; an explicit null clears a config
-- field (it then falls back to the agent's value). `name` may change (not to
-- null); the slug, id and the rest are not writable here.
CREATE OR REPLACE FUNCTION variants.patch(p_agent text, p_slug text, p_patch jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
    v_new variants.variants;
    v_cfg jsonb;
BEGIN
    PERFORM agents.must_get(p_agent);
    v := variants.variant(p_agent, p_slug);
    IF p_patch IS NULL OR jsonb_typeof(p_patch) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_body', 'the body must be a JSON object');
    END IF;
    v_cfg := agents.normalize_config(p_patch, ARRAY['name']);
    v_new := jsonb_populate_record(v, v_cfg);
    IF p_patch ? 'name' THEN
        v_new.name := variants.check_name(p_patch -> 'name');
    END IF;
    IF v_new IS DISTINCT FROM v THEN
        UPDATE variants.variants SET
            name = v_new.name,
            model_provider = v_new.model_provider,
            model_name = v_new.model_name,
            system_prompt = v_new.system_prompt,
            user_prompt_template = v_new.user_prompt_template,
            prompt_version = v_new.prompt_version,
            temperature = v_new.temperature,
            max_tokens = v_new.max_tokens,
            context_window = v_new.context_window,
            input_token_limit = v_new.input_token_limit,
            token_budget = v_new.token_budget,
            timeout_seconds = v_new.timeout_seconds,
            max_retries = v_new.max_retries,
            updated_at = now()
        WHERE id = v.id
        RETURNING * INTO v;
        PERFORM feed.emit_data('variant.updated', variants.to_json(v), p_agent => p_agent);
    END IF;
    RETURN variants.to_json(v);
END
$$;

-- DELETE: 409 while the variant is active.
CREATE OR REPLACE FUNCTION variants.delete(p_agent text, p_slug text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
BEGIN
    PERFORM agents.must_get(p_agent, true);
    v := variants.variant(p_agent, p_slug);
    IF v.is_active THEN
        PERFORM ap.raise(409, 'variant_active',
            format('variant %s is active; deactivate it or activate another first', p_slug),
            jsonb_build_object('name', p_agent, 'slug', p_slug));
    END IF;
    DELETE FROM variants.variants WHERE id = v.id;
    PERFORM feed.emit_data('variant.deleted',
        jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug),
        p_agent => p_agent);
    RETURN jsonb_build_object('success', true, 'agentName', p_agent, 'variantId', v.id,
                              'variantSlug', v.slug, 'changed', true);
END
$$;

-- Activation. The agent row is locked first, so concurrent activations of
-- one agent queue; the previous variant is deactivated before the new one is
-- activated (the partial unique index is not deferrable). Activating the
-- active variant is a no-op (no event).
CREATE OR REPLACE FUNCTION variants.activate(p_agent text, p_slug text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
    v_prev variants.variants;
BEGIN
    PERFORM agents.must_get(p_agent, true);
    v := variants.variant(p_agent, p_slug);
    IF v.is_active THEN
        RETURN variants.to_json(v);
    END IF;
    UPDATE variants.variants SET is_active = false, updated_at = now()
    WHERE agent_name = p_agent AND is_active
    RETURNING * INTO v_prev;
    UPDATE variants.variants SET is_active = true, updated_at = now()
    WHERE id = v.id
    RETURNING * INTO v;
    INSERT INTO variants.activations (agent_name, variant_id, at)
    VALUES (p_agent, v.id, clock_timestamp());
    PERFORM feed.emit_data('variant.activated',
        jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug,
                           'variantName', v.name,
                           'previousVariantId', v_prev.id, 'previousVariantSlug', v_prev.slug),
        p_agent => p_agent);
    RETURN variants.to_json(v);
END
$$;

-- Deactivation: none active afterwards; a no-op when none was.
CREATE OR REPLACE FUNCTION variants.deactivate(p_agent text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v variants.variants;
BEGIN
    PERFORM agents.must_get(p_agent, true);
    UPDATE variants.variants SET is_active = false, updated_at = now()
    WHERE agent_name = p_agent AND is_active
    RETURNING * INTO v;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('success', true, 'agentName', p_agent, 'variantId', NULL,
                                  'variantSlug', NULL, 'changed', false);
    END IF;
    INSERT INTO variants.activations (agent_name, variant_id, at)
    VALUES (p_agent, NULL, clock_timestamp());
    PERFORM feed.emit_data('variant.deactivated',
        jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug),
        p_agent => p_agent);
    RETURN jsonb_build_object('success', true, 'agentName', p_agent, 'variantId', v.id,
                              'variantSlug', v.slug, 'changed', true);
END
$$;

-- The config a runtime should use: the active variant's values, each null
-- field falling back to the agent's; the agent's own when none is active.
CREATE OR REPLACE FUNCTION variants.resolved_config(p_agent text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
    v variants.variants;
    v_cfg jsonb;
BEGIN
    a := agents.must_get(p_agent);
    v_cfg := agents.config_of(to_jsonb(a));
    SELECT * INTO v FROM variants.variants WHERE agent_name = p_agent AND is_active;
    IF FOUND THEN
        v_cfg := v_cfg || jsonb_strip_nulls(agents.config_of(to_jsonb(v)));
    END IF;
    RETURN jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug)
        || agents.config_json(v_cfg);
END
$$;

-- The variant active for p_agent at p_at (NULL: none), from the history.
CREATE OR REPLACE FUNCTION variants.active_at(p_agent text, p_at timestamptz)
RETURNS uuid LANGUAGE sql STABLE AS $$
    SELECT (SELECT h.variant_id FROM variants.activations h
            WHERE h.agent_name = p_agent AND h.at <= p_at
            ORDER BY h.at DESC, h.id DESC LIMIT 1)
$$;

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
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT variants.metrics_json(
        count(*), count(*) FILTER (WHERE p.success),
        avg(p.latency_ms),
        percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_ms),
        percentile_cont(0.95) WITHIN GROUP (ORDER BY p.latency_ms),
        sum(coalesce(p.prompt_tokens, 0) + coalesce(p.completion_tokens, 0)),
        sum(p.cost), avg(p.quality_score))
    FROM variants.performance p
    WHERE p.agent_name = p_agent AND p.variant_id = p_variant
      AND (p_start IS NULL OR p.at >= p_start)
      AND (p_end IS NULL OR p.at < p_end)
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

-- Every variant's metrics side by side (same order as the list).
CREATE OR REPLACE FUNCTION variants.compare(p_agent text, p_start timestamptz, p_end timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_items jsonb;
BEGIN
    PERFORM agents.must_get(p_agent);
    PERFORM variants.check_range(p_start, p_end);
    SELECT coalesce(jsonb_agg(
               jsonb_build_object('agentName', p_agent, 'variantId', v.id, 'variantSlug', v.slug,
                                  'variantName', v.name, 'isActive', v.is_active,
                                  'start', ap.ts(p_start), 'end', ap.ts(p_end))
               || variants.metrics_of(p_agent, v.id, p_start, p_end)
               ORDER BY v.created_at, v.slug), '[]')
    INTO v_items
    FROM variants.variants v WHERE v.agent_name = p_agent;
    RETURN jsonb_build_object('agentName', p_agent, 'variants', v_items,
                              'count', jsonb_array_length(v_items));
END
$$;
