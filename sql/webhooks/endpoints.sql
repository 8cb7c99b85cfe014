-- Webhook endpoints (docs/webhooks.md): create, list, get, delete, enable,
-- and the helpers the other webhooks files share. Every function returns
-- jsonb already in the API's camelCase shape; the secret leaves the
-- database only in `create`'s answer and to the delivery workers.

-- The event types an endpoint may ask for (docs/feed.md lists them).
CREATE OR REPLACE FUNCTION webhooks.event_types()
RETURNS text[] LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY[
        'credits.changed', 'credits.low_balance', 'credits.user_updated',
        'credits.block_costs_updated',
        'usage', 'budget.threshold', 'budget.updated', 'model_price.changed', 'usage.reset',
        'message', 'agent_state', 'thread_updated', 'organism', 'agent_removed',
        'inbox.claimed', 'inbox.acked',
        'variant.activated', 'variant.deactivated', 'variant.created', 'variant.updated',
        'variant.deleted', 'variant.performance',
        'execution_event',
        'webhook.disabled']::text[]
$$;

-- The Webhook object of the API (no secret).
CREATE OR REPLACE FUNCTION webhooks.to_json(p_id uuid)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id, 'url', e.url, 'events', to_jsonb(e.events), 'users', to_jsonb(e.users),
        'agents', to_jsonb(e.agents), 'description', e.description, 'enabled', e.enabled,
        'createdAt', ap.ts(e.created_at), 'position', e.position,
        'disabledAt', CASE WHEN e.disabled_at IS NULL THEN NULL ELSE ap.ts(e.disabled_at) END)
      FROM webhooks.endpoints e WHERE e.id = p_id
$$;

-- 404 webhook_not_found unless the endpoint exists.
CREATE OR REPLACE FUNCTION webhooks.check_exists(p_id uuid)
RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhooks.endpoints WHERE id = p_id) THEN
        PERFORM ap.raise(404, 'webhook_not_found', format('no webhook %s', p_id),
                         jsonb_build_object('id', p_id));
    END IF;
END
$$;

-- A list of identifiers (users, agents): at most 1,000, each an identifier.
CREATE OR REPLACE FUNCTION webhooks.check_idents(p_field text, p_list text[])
RETURNS text[] LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    v text;
BEGIN
    IF cardinality(p_list) > 1000 THEN
        PERFORM ap.raise(400, 'too_many_filters', format('%s holds at most 1000 entries', p_field),
                         jsonb_build_object('field', p_field));
    END IF;
    FOREACH v IN ARRAY coalesce(p_list, '{}') LOOP
        PERFORM ap.check_ident(p_field, v);
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT x FROM unnest(coalesce(p_list, '{}')) x ORDER BY x);
END
$$;

-- Creates an endpoint that receives the events committed from now on. The
-- url is checked for shape by the caller (absolute http/https); the secret
-- is made by the caller. Returns the Webhook object with its secret.
CREATE OR REPLACE FUNCTION webhooks.create(p_id uuid, p_url text, p_events text[], p_users text[],
                                           p_agents text[], p_description text, p_secret text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_bad  text[];
    v_from bigint;
BEGIN
    IF p_url IS NULL OR length(p_url) NOT BETWEEN 1 AND 2048 THEN
        PERFORM ap.raise(400, 'invalid_url', 'url must be 1-2048 characters');
    END IF;
    IF p_description IS NOT NULL AND length(p_description) > 1000 THEN
        PERFORM ap.raise(400, 'invalid_description', 'description holds at most 1000 characters');
    END IF;
    IF cardinality(p_events) > 1000 THEN
        PERFORM ap.raise(400, 'too_many_filters', 'events holds at most 1000 entries',
                         jsonb_build_object('field', 'events'));
    END IF;
    v_bad := ARRAY(SELECT x FROM unnest(coalesce(p_events, '{}')) x
                    WHERE x IS NULL OR x <> ALL (webhooks.event_types()));
    IF cardinality(v_bad) > 0 THEN
        PERFORM ap.raise(400, 'unknown_event_type',
                         format('unknown event types: %s', array_to_string(v_bad, ', ', 'null')),
                         jsonb_build_object('unknown', to_jsonb(v_bad),
                                            'known', to_jsonb(webhooks.event_types())));
    END IF;
    -- Events from the next id on; one in flight with a lower id is not
    -- delivered (it was committed before the endpoint existed, as far as
    -- anyone could tell).
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END INTO v_from
      FROM feed.events_id_seq s;
    INSERT INTO webhooks.endpoints (id, url, events, users, agents, description, secret, position)
    VALUES (p_id, p_url,
            ARRAY(SELECT DISTINCT x FROM unnest(coalesce(p_events, '{}')) x ORDER BY x),
            webhooks.check_idents('users', p_users),
            webhooks.check_idents('agents', p_agents),
            p_description, p_secret, v_from);
    RETURN webhooks.to_json(p_id) || jsonb_build_object('secret', p_secret);
END
$$;

-- Every endpoint, oldest first, and how many.
CREATE OR REPLACE FUNCTION webhooks.list()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'webhooks', coalesce(jsonb_agg(webhooks.to_json(e.id) ORDER BY e.created_at, e.id), '[]'),
        'count', count(*))
      FROM webhooks.endpoints e
$$;

CREATE OR REPLACE FUNCTION webhooks.get(p_id uuid)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    PERFORM webhooks.check_exists(p_id);
    RETURN webhooks.to_json(p_id);
END
$$;

-- Deletes an endpoint and its attempts. A worker delivering to it stops at
-- its next record (before it reads any further event).
CREATE OR REPLACE FUNCTION webhooks.delete(p_id uuid)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM webhooks.endpoints WHERE id = p_id;
    IF NOT FOUND THEN
        PERFORM webhooks.check_exists(p_id);
    END IF;
    RETURN jsonb_build_object('success', true, 'id', p_id);
END
$$;

-- Enables an endpoint: delivery resumes at the first undelivered event,
-- as a fresh start (no failures counted, due now).
CREATE OR REPLACE FUNCTION webhooks.enable(p_id uuid)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    UPDATE webhooks.endpoints
       SET enabled = true, failures = 0, failing_since = NULL, due_at = now(),
           disabled_at = NULL, lease_owner = NULL, lease_until = NULL
     WHERE id = p_id AND NOT enabled;
    PERFORM webhooks.check_exists(p_id);
    RETURN webhooks.to_json(p_id);
END
$$;
