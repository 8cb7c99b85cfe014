-- Agents (docs/agents.md): the JSON shapes every agents function answers
-- in (AgentInfo, AgentConfig, ThreadInfo, MessageInfo) and the lookup and
-- event helpers they share. Every agents function returns jsonb in the API's
-- camelCase shape; every change writes its event (sql/feed.sql) in the same
-- transaction.
--
-- The agents files are applied in this order (src/db/migrate.rs): shapes,
-- organism, registry, messages, threads. Tables: migrations/V4__agents.sql.

-- ---------------------------------------------------------------- JSON shapes

-- The state clients see: `paused` wins over what the runtime last reported.
CREATE OR REPLACE FUNCTION agents.effective_state(a anyelement)  -- a agents.agents row
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.paused THEN 'paused' ELSE a.state END
$$;

-- An agent's inbox rows not yet acknowledged.
CREATE OR REPLACE FUNCTION agents.queue_depth(p_name text)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT count(*) FROM agents.inbox i WHERE i.agent = p_name);
END
$$;

-- AgentInfo. queueDepth = inbox rows not yet acknowledged, counted by the
-- caller (agents.queue_depth, or a join for a list): one expression, so it is
-- inlined, and no query of its own, which Citus could not run inside a
-- statement over the agents' shards.
CREATE OR REPLACE FUNCTION agents.agent_json(a anyelement, p_queue_depth bigint)  -- a agents.agents row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', a.name,
        'description', a.description,
        'isAgent', a.is_agent,
        'peers', to_jsonb(a.peers),
        'payloadClass', a.payload_class,
        'state', agents.effective_state(a),
        'currentThread', a.current_thread,
        'queueDepth', p_queue_depth,
        'lastActivity', ap.ts(a.last_activity),
        'messageCount', a.message_count)
$$;

-- AgentConfig (docs/agents.md): the one definition of its fields and rules,
-- used by agents.register and by every variants function. Agents and variants
-- store it in columns of the same names.

-- The AgentConfig fields: JSON key, column, kind.
CREATE OR REPLACE FUNCTION agents.config_fields()
RETURNS TABLE (key text, col text, kind text) LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    VALUES ('modelProvider',      'model_provider',       'text'),
           ('modelName',          'model_name',           'text'),
           ('systemPrompt',       'system_prompt',        'text'),
           ('userPromptTemplate', 'user_prompt_template', 'text'),
           ('promptVersion',      'prompt_version',       'text'),
           ('temperature',        'temperature',          'temperature'),
           ('maxTokens',          'max_tokens',           'int_pos'),
           ('contextWindow',      'context_window',       'int_nonneg'),
           ('inputTokenLimit',    'input_token_limit',    'int_nonneg'),
           ('tokenBudget',        'token_budget',         'bigint_nonneg'),
           ('timeoutSeconds',     'timeout_seconds',      'int_pos'),
           ('maxRetries',         'max_retries',          'retries')
$$;

-- Validates config fields given as camelCase JSON and returns them keyed by
-- column, values normalised (integers as integers). Keys in p_extra are
-- skipped; any other unknown key, a wrong type or an out-of-range value is a
-- 400. JSON null is kept as null (the caller decides what it means).
CREATE OR REPLACE FUNCTION agents.normalize_config(p jsonb, p_extra text[] DEFAULT '{}')
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    r record;
    f record;
    v_num numeric;
    v_out jsonb := '{}';
    v_bad text;
BEGIN
    IF p IS NULL THEN
        RETURN v_out;
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_body', 'the config must be a JSON object');
    END IF;
    FOR r IN SELECT e.key, e.value FROM jsonb_each(p) e LOOP
        CONTINUE WHEN r.key = ANY (p_extra);
        SELECT * INTO f FROM agents.config_fields() c WHERE c.key = r.key;
        IF NOT FOUND THEN
            PERFORM ap.raise(400, 'unknown_field', format('%s is not a config field', r.key),
                             jsonb_build_object('field', r.key));
        END IF;
        IF jsonb_typeof(r.value) = 'null' THEN
            v_out := v_out || jsonb_build_object(f.col, NULL);
            CONTINUE;
        END IF;
        v_bad := NULL;
        IF f.kind = 'text' THEN
            IF jsonb_typeof(r.value) <> 'string' THEN
                v_bad := 'must be a string or null';
            ELSIF length(r.value #>> '{}') > 100000 THEN
                v_bad := 'must be at most 100000 characters';
            ELSE
                v_out := v_out || jsonb_build_object(f.col, r.value);
            END IF;
        ELSIF jsonb_typeof(r.value) <> 'number' THEN
            v_bad := 'must be a number or null';
        ELSE
            v_num := (r.value #>> '{}')::numeric;
            IF f.kind = 'temperature' THEN
                IF v_num < 0 OR v_num > 2 THEN
                    v_bad := 'must be between 0 and 2';
                ELSE
                    v_out := v_out || jsonb_build_object(f.col, v_num::double precision);
                END IF;
            ELSIF v_num <> trunc(v_num) THEN
                v_bad := 'must be an integer';
            ELSIF f.kind = 'int_pos' AND (v_num < 1 OR v_num > 2147483647) THEN
                v_bad := 'must be an integer from 1 to 2147483647';
            ELSIF f.kind = 'int_nonneg' AND (v_num < 0 OR v_num > 2147483647) THEN
                v_bad := 'must be an integer from 0 to 2147483647';
            ELSIF f.kind = 'bigint_nonneg' AND (v_num < 0 OR v_num > 9223372036854775807) THEN
                v_bad := 'must be an integer from 0 to 9223372036854775807';
            ELSIF f.kind = 'retries' AND (v_num < 0 OR v_num > 10) THEN
                v_bad := 'must be an integer from 0 to 10';
            ELSE
                v_out := v_out || jsonb_build_object(f.col, v_num::bigint);
            END IF;
        END IF;
        IF v_bad IS NOT NULL THEN
            PERFORM ap.raise(400, 'invalid_field', format('%s %s', r.key, v_bad),
                             jsonb_build_object('field', r.key));
        END IF;
    END LOOP;
    RETURN v_out;
END
$$;

-- The config columns of any row (agent or variant) as column-keyed JSON.
CREATE OR REPLACE FUNCTION agents.config_of(p_row jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(c.col, p_row -> c.col), '{}')
    FROM agents.config_fields() c
$$;

-- A row's config columns as camelCase JSON.
CREATE OR REPLACE FUNCTION agents.config_json(p_row jsonb)
RETURNS jsonb LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_object_agg(c.key, coalesce(p_row -> c.col, 'null'::jsonb)), '{}')
    FROM agents.config_fields() c
$$;

CREATE OR REPLACE FUNCTION agents.thread_json(t anyelement)  -- a agents.threads row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id,
        'status', t.status,
        'participants', to_jsonb(t.participants),
        'messageCount', t.message_count,
        'createdAt', ap.ts(t.created_at),
        'lastActivity', ap.ts(t.last_activity),
        'error', t.error)
$$;

CREATE OR REPLACE FUNCTION agents.message_json(m anyelement)  -- a agents.messages row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', m.id,
        'threadId', m.thread_id,
        'from', m.from_agent,
        'to', m.to_agent,
        'payloadType', m.payload_type,
        'payload', m.payload,
        'timestamp', ap.ts(m.created_at))
$$;

-- ------------------------------------------------------------------- helpers

CREATE OR REPLACE FUNCTION agents.must_get(p_name text, p_lock boolean DEFAULT false)
RETURNS agents.agents LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
BEGIN
    IF NOT ap.is_ident(p_name) THEN
        PERFORM ap.raise(404, 'agent_not_found', format('no agent named %s', p_name),
                         jsonb_build_object('name', p_name));
    END IF;
    IF p_lock THEN
        SELECT * INTO a FROM agents.agents WHERE name = p_name FOR UPDATE;
    ELSE
        SELECT * INTO a FROM agents.agents WHERE name = p_name;
    END IF;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'agent_not_found', format('no agent named %s', p_name),
                         jsonb_build_object('name', p_name));
    END IF;
    RETURN a;
END
$$;

CREATE OR REPLACE FUNCTION agents.emit_state(a anyelement)  -- a agents.agents row
RETURNS void LANGUAGE sql AS $$
    SELECT feed.emit('agent_state',
        jsonb_build_object('agent', a.name, 'state', agents.effective_state(a),
                           'currentThread', a.current_thread),
        p_agents => ARRAY[a.name]);
$$;

CREATE OR REPLACE FUNCTION agents.emit_thread(t anyelement)  -- a agents.threads row
RETURNS void LANGUAGE sql AS $$
    SELECT feed.emit('thread_updated',
        jsonb_build_object('threadId', t.id, 'status', t.status,
                           'messageCount', t.message_count),
        p_thread_id => t.id);
$$;

-- Text of an optional JSON string field; 400 when it is not a string.
CREATE OR REPLACE FUNCTION agents.opt_text(p jsonb, p_key text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p IS NULL OR jsonb_typeof(p -> p_key) IS NULL OR jsonb_typeof(p -> p_key) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(p -> p_key) <> 'string' THEN
        PERFORM ap.raise(400, 'invalid_input', format('%s must be a string', p_key),
                         jsonb_build_object('field', p_key));
    END IF;
    RETURN p ->> p_key;
END
$$;
