-- Agent variants: the single-active rule (activate, deactivate), its
-- history, and the config a runtime resolves from the active variant.

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
RETURNS uuid LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT (SELECT h.variant_id FROM variants.activations h
            WHERE h.agent_name = p_agent AND h.at <= p_at
            ORDER BY h.at DESC, h.id DESC LIMIT 1));
END
$$;
