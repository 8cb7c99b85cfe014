-- Agents: the registry. Registration, removal, state reports, pause and
-- resume, capabilities.

-- -------------------------------------------------------------------- agents

-- PUT /agents/{name}: register or update. Fields not given take their
-- defaults (description '', isAgent true, peers [], payloadClass '', the
-- optional XML fields null). `config` absent or null keeps the stored
-- config; an object replaces every AgentConfig field (missing ones -> null).
CREATE OR REPLACE FUNCTION agents.register(p_name text, p_body jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
    c agents.agents;
    v_now timestamptz := now();  -- Citus: no now() in ON CONFLICT DO UPDATE
    v_cfg jsonb := p_body -> 'config';
    v_peers text[];
    v_is_agent boolean;
BEGIN
    PERFORM ap.check_ident('name', p_name);
    IF p_body IS NULL OR jsonb_typeof(p_body) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_input', 'the body must be a JSON object');
    END IF;
    IF jsonb_typeof(p_body -> 'peers') NOT IN ('array', 'null') THEN
        PERFORM ap.raise(400, 'invalid_input', 'peers must be an array of agent names',
                         jsonb_build_object('field', 'peers'));
    END IF;
    IF jsonb_typeof(p_body -> 'isAgent') NOT IN ('boolean', 'null') THEN
        PERFORM ap.raise(400, 'invalid_input', 'isAgent must be a boolean',
                         jsonb_build_object('field', 'isAgent'));
    END IF;
    v_is_agent := coalesce((p_body ->> 'isAgent')::boolean, true);
    SELECT coalesce(array_agg(e ORDER BY ord), '{}') INTO v_peers
    FROM jsonb_array_elements(CASE WHEN jsonb_typeof(p_body -> 'peers') = 'array'
                                   THEN p_body -> 'peers' ELSE '[]' END)
         WITH ORDINALITY AS x(j, ord),
         LATERAL (SELECT CASE WHEN jsonb_typeof(j) = 'string' AND ap.is_ident(j #>> '{}')
                              THEN j #>> '{}' END AS e) s;
    IF EXISTS (SELECT 1 FROM unnest(v_peers) p WHERE p IS NULL) THEN
        PERFORM ap.raise(400, 'invalid_identifier',
            'peers must be agent names of ' || ap.ident_rule(),
            jsonb_build_object('field', 'peers'));
    END IF;
    IF v_cfg IS NOT NULL AND jsonb_typeof(v_cfg) NOT IN ('object', 'null') THEN
        PERFORM ap.raise(400, 'invalid_input', 'config must be an object',
                         jsonb_build_object('field', 'config'));
    END IF;
    IF jsonb_typeof(v_cfg) = 'null' THEN
        v_cfg := NULL;
    END IF;
    IF v_cfg IS NOT NULL THEN
        -- the AgentConfig rules (400 naming the bad field), before anything
        -- is written; fields not given become null
        c := jsonb_populate_record(NULL::agents.agents, agents.normalize_config(v_cfg));
    END IF;

    INSERT INTO agents.agents AS t (name, description, is_agent, peers, payload_class,
                                    root_tag, schema_xsd, example_xml, last_activity)
    VALUES (p_name,
            coalesce(agents.opt_text(p_body, 'description'), ''),
            v_is_agent, v_peers,
            coalesce(agents.opt_text(p_body, 'payloadClass'), ''),
            agents.opt_text(p_body, 'rootTag'),
            agents.opt_text(p_body, 'schemaXsd'),
            agents.opt_text(p_body, 'exampleXml'),
            now())
    ON CONFLICT (name) DO UPDATE SET
        description   = excluded.description,
        is_agent      = excluded.is_agent,
        peers         = excluded.peers,
        payload_class = excluded.payload_class,
        root_tag      = excluded.root_tag,
        schema_xsd    = excluded.schema_xsd,
        example_xml   = excluded.example_xml,
        last_activity = v_now,
        updated_at    = v_now
    RETURNING * INTO a;

    IF v_cfg IS NOT NULL THEN
        UPDATE agents.agents SET
            model_provider       = c.model_provider,
            model_name           = c.model_name,
            system_prompt        = c.system_prompt,
            user_prompt_template = c.user_prompt_template,
            prompt_version       = c.prompt_version,
            temperature          = c.temperature,
            max_tokens           = c.max_tokens,
            context_window       = c.context_window,
            input_token_limit    = c.input_token_limit,
            token_budget         = c.token_budget,
            timeout_seconds      = c.timeout_seconds,
            max_retries          = c.max_retries
        WHERE name = p_name
        RETURNING * INTO a;
    END IF;

    PERFORM agents.emit_state(a);
    RETURN agents.agent_json(a, agents.queue_depth(a.name));
END
$$;

-- DELETE /agents/{name}: removes the agent and its pending inbox. Message
-- and thread history stay (messages name agents by text). Tables of other
-- domains decide themselves (variants reference agents.agents(name)).
CREATE OR REPLACE FUNCTION agents.remove(p_name text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
BEGIN
    a := agents.must_get(p_name, true);
    DELETE FROM agents.agents WHERE name = p_name;
    PERFORM feed.emit_data('agent_removed', jsonb_build_object('name', p_name),
                           p_agent => p_name);
    RETURN jsonb_build_object('success', true, 'name', p_name);
END
$$;

-- VOLATILE like the lookup it calls (STABLE would be a claim the body breaks,
-- and it would keep the call from being inlined).
CREATE OR REPLACE FUNCTION agents.get(p_name text)
RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT agents.agent_json(a, agents.queue_depth(a.name)) FROM agents.must_get(p_name) a
$$;

CREATE OR REPLACE FUNCTION agents.list()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'agents', coalesce(jsonb_agg(agents.agent_json(a, coalesce(q.n, 0)) ORDER BY a.name), '[]'),
        'count', count(*))
    FROM agents.agents a
    LEFT JOIN (SELECT i.agent, count(*) AS n FROM agents.inbox i GROUP BY i.agent) q
           ON q.agent = a.name
$$;

CREATE OR REPLACE FUNCTION agents.get_config(p_name text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'name', a.name, 'description', a.description, 'isAgent', a.is_agent,
        'peers', to_jsonb(a.peers), 'payloadClass', a.payload_class,
        'config', agents.config_json(to_jsonb(a)))
    FROM agents.must_get(p_name) a);
END
$$;

-- PUT /agents/{name}/state: what the runtime reports. Reporting `paused`
-- pauses the agent (like POST /pause); any other state is recorded, but a
-- paused agent stays paused until resumed. When the organism is stopping
-- and no agent is processing any more, it becomes `stopped`.
CREATE OR REPLACE FUNCTION agents.report_state(p_name text, p_state text,
                                               p_current_thread text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
BEGIN
    IF p_state IS NULL OR p_state NOT IN ('idle', 'processing', 'waiting', 'error', 'paused') THEN
        PERFORM ap.raise(400, 'invalid_state',
            'state must be one of idle, processing, waiting, error, paused',
            jsonb_build_object('state', p_state));
    END IF;
    IF p_current_thread IS NOT NULL THEN
        PERFORM ap.check_ident('currentThread', p_current_thread);
    END IF;
    PERFORM agents.must_get(p_name, true);
    IF p_state = 'paused' THEN
        UPDATE agents.agents SET paused = true, current_thread = p_current_thread,
               last_activity = now(), updated_at = now()
        WHERE name = p_name RETURNING * INTO a;
    ELSE
        UPDATE agents.agents SET state = p_state, current_thread = p_current_thread,
               last_activity = now(), updated_at = now()
        WHERE name = p_name RETURNING * INTO a;
    END IF;
    PERFORM agents.emit_state(a);
    IF p_state <> 'processing'
       AND EXISTS (SELECT 1 FROM agents.organism WHERE status = 'stopping')
       AND NOT EXISTS (SELECT 1 FROM agents.agents WHERE state = 'processing' AND NOT paused) THEN
        UPDATE agents.organism SET status = 'stopped', updated_at = now()
        WHERE status = 'stopping';
        IF FOUND THEN
            PERFORM feed.emit_data('organism', jsonb_build_object('status', 'stopped'));
        END IF;
    END IF;
    RETURN agents.agent_json(a, agents.queue_depth(a.name));
END
$$;

-- POST /agents/{name}/pause: the inbox keeps filling but hands nothing out.
CREATE OR REPLACE FUNCTION agents.pause(p_name text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
BEGIN
    a := agents.must_get(p_name, true);
    IF NOT a.paused THEN
        UPDATE agents.agents SET paused = true, updated_at = now()
        WHERE name = p_name RETURNING * INTO a;
        PERFORM agents.emit_state(a);
    END IF;
    RETURN jsonb_build_object('success', true, 'agent', a.name, 'state', 'paused');
END
$$;

-- POST /agents/{name}/resume: back to `idle`, claims deliver again.
CREATE OR REPLACE FUNCTION agents.resume(p_name text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
BEGIN
    a := agents.must_get(p_name, true);
    IF a.paused THEN
        UPDATE agents.agents SET paused = false, state = 'idle', updated_at = now()
        WHERE name = p_name RETURNING * INTO a;
        PERFORM agents.emit_state(a);
    END IF;
    RETURN jsonb_build_object('success', true, 'agent', a.name, 'state', agents.effective_state(a));
END
$$;

CREATE OR REPLACE FUNCTION agents.capabilities()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'capabilities', coalesce(jsonb_agg(jsonb_build_object(
            'name', a.name, 'description', a.description, 'isAgent', a.is_agent,
            'peers', to_jsonb(a.peers), 'rootTag', a.root_tag) ORDER BY a.name), '[]'),
        'count', count(*))
    FROM agents.agents a
$$;

CREATE OR REPLACE FUNCTION agents.capability(p_name text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'name', a.name, 'description', a.description, 'isAgent', a.is_agent,
        'peers', to_jsonb(a.peers), 'rootTag', a.root_tag,
        'payloadClass', a.payload_class, 'schemaXsd', a.schema_xsd,
        'exampleXml', a.example_xml)
    FROM agents.must_get(p_name) a);
END
$$;
