-- Agent variants (docs/variants.md): create, clone, list, get, patch and
-- delete, and the helpers the other variants files share (slugs, the row
-- lookup, the API's JSON). Every function returns jsonb already in the API's
-- camelCase shape.

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
CREATE OR REPLACE FUNCTION variants.to_json(v anyelement)  -- a variants.variants row
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
    -- (VALUES, not SELECT: on Citus, an INSERT ... SELECT that inserts
    -- nothing on conflict fails its own row count check.)
    INSERT INTO variants.variants VALUES (v.*)
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
