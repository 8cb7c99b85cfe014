-- Agents, organism, threads, messages, inbox (docs/agents.md).
-- Every function returns jsonb in the API's camelCase shape; every change
-- writes its event (sql/events.sql) in the same transaction.

-- ---------------------------------------------------------------- JSON shapes

-- The state clients see: `paused` wins over what the runtime last reported.
CREATE OR REPLACE FUNCTION agents.effective_state(a agents.agents)
RETURNS text LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN a.paused THEN 'paused' ELSE a.state END
$$;

-- AgentInfo. queueDepth = inbox rows not yet acknowledged.
CREATE OR REPLACE FUNCTION agents.agent_json(a agents.agents)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', a.name,
        'description', a.description,
        'isAgent', a.is_agent,
        'peers', to_jsonb(a.peers),
        'payloadClass', a.payload_class,
        'state', agents.effective_state(a),
        'currentThread', a.current_thread,
        'queueDepth', (SELECT count(*) FROM agents.inbox i WHERE i.agent = a.name),
        'lastActivity', ap.ts(a.last_activity),
        'messageCount', a.message_count)
$$;

-- AgentConfig (docs/agents.md): the one definition of its fields and rules,
-- used by agents.register and by every variants function. Agents and variants
-- store it in columns of the same names.

-- A retired signature (the fields are listed once, in agents.config_fields).
DROP FUNCTION IF EXISTS agents.config_json(agents.agents);

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

CREATE OR REPLACE FUNCTION agents.thread_json(t agents.threads)
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

CREATE OR REPLACE FUNCTION agents.message_json(m agents.messages)
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

CREATE OR REPLACE FUNCTION agents.emit_state(a agents.agents)
RETURNS void LANGUAGE sql AS $$
    SELECT feed.emit('agent_state',
        jsonb_build_object('agent', a.name, 'state', agents.effective_state(a),
                           'currentThread', a.current_thread),
        p_agents => ARRAY[a.name]);
$$;

CREATE OR REPLACE FUNCTION agents.emit_thread(t agents.threads)
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

-- ------------------------------------------------------------------ organism

CREATE OR REPLACE FUNCTION agents.organism_status()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'status', o.status,
        'startedAt', ap.ts(o.started_at),
        'agentCount', (SELECT count(*) FROM agents.agents),
        'activeThreads', (SELECT count(*) FROM agents.threads WHERE status = 'active'),
        'totalMessages', (SELECT count(*) FROM agents.messages))
    FROM agents.organism o
$$;

-- POST /organism/stop: injects and messages are refused from now on;
-- runtimes learn it from the `organism` event. The status becomes
-- `stopped` once no agent reports `processing` (see agents.report_state).
CREATE OR REPLACE FUNCTION agents.organism_stop()
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM agents.organism FOR UPDATE;
    IF v_status IN ('starting', 'running') THEN
        UPDATE agents.organism SET status = 'stopping', updated_at = now();
        v_status := 'stopping';
        PERFORM feed.emit_data('organism', jsonb_build_object('status', v_status));
    END IF;
    RETURN jsonb_build_object('success', true, 'status', v_status);
END
$$;

CREATE OR REPLACE FUNCTION agents.organism_start()
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM agents.organism FOR UPDATE;
    IF v_status <> 'running' THEN
        UPDATE agents.organism SET status = 'running', started_at = now(), updated_at = now();
        PERFORM feed.emit_data('organism', jsonb_build_object('status', 'running'));
    END IF;
    RETURN jsonb_build_object('success', true, 'status', 'running');
END
$$;

CREATE OR REPLACE FUNCTION agents.check_accepting()
RETURNS void LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_status text;
BEGIN
    SELECT status INTO v_status FROM agents.organism;
    IF v_status IN ('stopping', 'stopped') THEN
        PERFORM ap.raise(409, 'organism_stopped',
            format('the organism is %s: messages are refused until it is started', v_status),
            jsonb_build_object('status', v_status));
    END IF;
END
$$;

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
            'peers must be agent names of 1-128 characters of [A-Za-z0-9._:@/-]',
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
        last_activity = now(),
        updated_at    = now()
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
    RETURN agents.agent_json(a);
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
    SELECT agents.agent_json(agents.must_get(p_name))
$$;

CREATE OR REPLACE FUNCTION agents.list()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'agents', coalesce(jsonb_agg(agents.agent_json(a) ORDER BY a.name), '[]'),
        'count', count(*))
    FROM agents.agents a
$$;

CREATE OR REPLACE FUNCTION agents.get_config(p_name text)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', a.name, 'description', a.description, 'isAgent', a.is_agent,
        'peers', to_jsonb(a.peers), 'payloadClass', a.payload_class,
        'config', agents.config_json(to_jsonb(a)))
    FROM agents.must_get(p_name) a
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
    RETURN agents.agent_json(a);
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
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'name', a.name, 'description', a.description, 'isAgent', a.is_agent,
        'peers', to_jsonb(a.peers), 'rootTag', a.root_tag,
        'payloadClass', a.payload_class, 'schemaXsd', a.schema_xsd,
        'exampleXml', a.example_xml)
    FROM agents.must_get(p_name) a
$$;

-- ------------------------------------------------------------------ messages

-- Keeps threads and agents in step with their messages: participants,
-- messageCount and lastActivity are maintained here, never by callers.
CREATE OR REPLACE FUNCTION agents.on_message()
RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agents.threads t SET
        message_count = t.message_count + 1,
        last_activity = greatest(t.last_activity, NEW.created_at),
        participants  = t.participants
                        || (SELECT coalesce(array_agg(DISTINCT p ORDER BY p), '{}')
                            FROM unnest(ARRAY[NEW.from_agent, NEW.to_agent]) p
                            WHERE p <> ALL (t.participants))
    WHERE t.id = NEW.thread_id;
    -- lock agent rows in name order so crossing messages never deadlock
    UPDATE agents.agents SET message_count = message_count + 1, last_activity = NEW.created_at
    WHERE name = least(NEW.from_agent, NEW.to_agent);
    IF NEW.from_agent <> NEW.to_agent THEN
        UPDATE agents.agents SET message_count = message_count + 1, last_activity = NEW.created_at
        WHERE name = greatest(NEW.from_agent, NEW.to_agent);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE TRIGGER messages_maintain AFTER INSERT ON agents.messages
    FOR EACH ROW EXECUTE FUNCTION agents.on_message();

-- The one path every message takes (inject, POST /messages): checks, creates
-- the thread when needed, records the message, puts it in the receiver's
-- inbox, writes the events. Returns the MessageInfo.
CREATE OR REPLACE FUNCTION agents.post_message(p_thread_id text, p_from text, p_to text,
                                               p_payload_type text, p_payload jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_thread agents.threads;
    m agents.messages;
    v_info jsonb;
BEGIN
    PERFORM ap.check_ident('to', p_to);
    PERFORM ap.check_ident('from', p_from);
    PERFORM ap.check_ident('payloadType', p_payload_type);
    IF p_thread_id IS NOT NULL THEN
        PERFORM ap.check_ident('threadId', p_thread_id);
    END IF;
    IF p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_payload', 'payload must be a JSON object',
                         jsonb_build_object('field', 'payload'));
    END IF;
    IF NOT EXISTS (SELECT 1 FROM agents.agents WHERE name = p_to) THEN
        PERFORM ap.raise(400, 'unknown_agent', format('no agent named %s is registered', p_to),
                         jsonb_build_object('to', p_to));
    END IF;
    PERFORM agents.check_accepting();

    IF p_thread_id IS NULL THEN
        p_thread_id := gen_random_uuid()::text;
    END IF;
    INSERT INTO agents.threads (id) VALUES (p_thread_id)
    ON CONFLICT (id) DO NOTHING
    RETURNING * INTO v_thread;
    IF FOUND THEN
        PERFORM agents.emit_thread(v_thread);
    ELSE
        SELECT * INTO v_thread FROM agents.threads WHERE id = p_thread_id FOR NO KEY UPDATE;
        IF v_thread.status <> 'active' THEN
            PERFORM ap.raise(409, 'thread_not_active',
                format('thread %s is %s and takes no more messages', p_thread_id, v_thread.status),
                jsonb_build_object('threadId', p_thread_id, 'status', v_thread.status));
        END IF;
    END IF;

    INSERT INTO agents.messages (thread_id, from_agent, to_agent, payload_type, payload)
    VALUES (p_thread_id, p_from, p_to, p_payload_type, p_payload)
    RETURNING * INTO m;
    INSERT INTO agents.inbox (agent, message_id, thread_id, seq, enqueued_at, visible_at)
    VALUES (p_to, m.id, m.thread_id, m.seq, m.created_at, m.created_at);
    v_info := agents.message_json(m);  -- built once: the event and the answer
    PERFORM feed.emit('message', jsonb_build_object('message', v_info),
                      p_agents => ARRAY[p_from, p_to], p_thread_id => p_thread_id,
                      p_payload_type => p_payload_type);
    RETURN v_info;
END
$$;

-- POST /inject (and the WebSocket `inject` command). Defaults: from = 'api',
-- payloadType = 'inject'.
CREATE OR REPLACE FUNCTION agents.inject(p_to text, p_payload jsonb,
                                         p_thread_id text DEFAULT NULL,
                                         p_from text DEFAULT NULL,
                                         p_payload_type text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v jsonb;
BEGIN
    v := agents.post_message(p_thread_id, coalesce(p_from, 'api'), p_to,
                             coalesce(p_payload_type, 'inject'), p_payload);
    RETURN jsonb_build_object('threadId', v ->> 'threadId', 'messageId', v ->> 'id');
END
$$;

-- POST /agents/{name}/inbox/claim: up to p_max visible messages, oldest
-- first, each to exactly one claimer (SKIP LOCKED); they become visible again
-- after p_visibility_seconds unless acknowledged. A paused agent gets none.
CREATE OR REPLACE FUNCTION agents.claim(p_agent text, p_max integer,
                                        p_visibility_seconds integer)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    a agents.agents;
    v jsonb;
BEGIN
    IF p_max IS NULL OR p_max NOT BETWEEN 1 AND 100 THEN
        PERFORM ap.raise(400, 'invalid_input', 'max must be between 1 and 100',
                         jsonb_build_object('field', 'max'));
    END IF;
    IF p_visibility_seconds IS NULL OR p_visibility_seconds NOT BETWEEN 1 AND 43200 THEN
        PERFORM ap.raise(400, 'invalid_input', 'visibilitySeconds must be between 1 and 43200',
                         jsonb_build_object('field', 'visibilitySeconds'));
    END IF;
    a := agents.must_get(p_agent);
    IF a.paused THEN
        RETURN jsonb_build_object('messages', '[]'::jsonb);
    END IF;
    WITH picked AS (
        SELECT i.message_id FROM agents.inbox i
        WHERE i.agent = p_agent AND i.visible_at <= now()
        ORDER BY i.visible_at, i.seq
        LIMIT p_max
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE agents.inbox i SET
            visible_at = now() + make_interval(secs => p_visibility_seconds),
            read_count = i.read_count + 1,
            last_read_at = now()
        FROM picked WHERE i.message_id = picked.message_id
        RETURNING i.message_id, i.seq
    )
    SELECT coalesce(jsonb_agg(agents.message_json(m) ORDER BY m.seq), '[]')
    INTO v
    FROM claimed c JOIN agents.messages m ON m.id = c.message_id;
    IF jsonb_array_length(v) > 0 THEN
        PERFORM feed.emit_data('inbox.claimed',
            jsonb_build_object('agent', p_agent, 'count', jsonb_array_length(v),
                               'messageIds', (SELECT jsonb_agg(e -> 'id') FROM jsonb_array_elements(v) e)),
            p_agent => p_agent);
    END IF;
    RETURN jsonb_build_object('messages', v);
END
$$;

-- POST /messages/{id}/ack: removes the message from its receiver's inbox.
-- Acknowledging twice is a no-op (acked = false the second time); an
-- unknown message id is a 404.
CREATE OR REPLACE FUNCTION agents.ack(p_message_id uuid)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_agent text;
    v_thread text;
BEGIN
    DELETE FROM agents.inbox WHERE message_id = p_message_id
    RETURNING agent, thread_id INTO v_agent, v_thread;
    IF FOUND THEN
        PERFORM feed.emit_data('inbox.acked', jsonb_build_object('messageId', p_message_id),
                               p_agent => v_agent, p_thread_id => v_thread);
        RETURN jsonb_build_object('success', true, 'messageId', p_message_id, 'acked', true);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM agents.messages WHERE id = p_message_id) THEN
        PERFORM ap.raise(404, 'message_not_found', format('no message %s', p_message_id),
                         jsonb_build_object('messageId', p_message_id));
    END IF;
    RETURN jsonb_build_object('success', true, 'messageId', p_message_id, 'acked', false);
END
$$;

CREATE OR REPLACE FUNCTION agents.check_page(p_limit integer, p_offset integer)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100 THEN
        PERFORM ap.raise(400, 'invalid_input', 'limit must be between 1 and 100',
                         jsonb_build_object('field', 'limit'));
    END IF;
    IF p_offset IS NULL OR p_offset < 0 THEN
        PERFORM ap.raise(400, 'invalid_input', 'offset must be 0 or more',
                         jsonb_build_object('field', 'offset'));
    END IF;
END
$$;

-- GET /messages?agent=&threadId=: agent matches sender or receiver; newest
-- first.
CREATE OR REPLACE FUNCTION agents.list_messages(p_agent text, p_thread_id text,
                                                p_limit integer, p_offset integer)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items jsonb;
    v_total bigint;
BEGIN
    PERFORM agents.check_page(p_limit, p_offset);
    SELECT count(*) INTO v_total FROM agents.messages m
    WHERE (p_agent IS NULL OR m.from_agent = p_agent OR m.to_agent = p_agent)
      AND (p_thread_id IS NULL OR m.thread_id = p_thread_id);
    SELECT coalesce(jsonb_agg(agents.message_json(x) ORDER BY x.seq DESC), '[]') INTO v_items
    FROM (SELECT * FROM agents.messages m
          WHERE (p_agent IS NULL OR m.from_agent = p_agent OR m.to_agent = p_agent)
            AND (p_thread_id IS NULL OR m.thread_id = p_thread_id)
          ORDER BY m.seq DESC LIMIT p_limit OFFSET p_offset) x;
    RETURN jsonb_build_object('messages', v_items, 'count', jsonb_array_length(v_items),
                              'total', v_total, 'offset', p_offset, 'limit', p_limit);
END
$$;

-- ------------------------------------------------------------------- threads

CREATE OR REPLACE FUNCTION agents.must_get_thread(p_id text, p_lock boolean DEFAULT false)
RETURNS agents.threads LANGUAGE plpgsql AS $$
DECLARE
    t agents.threads;
BEGIN
    IF p_lock THEN
        SELECT * INTO t FROM agents.threads WHERE id = p_id FOR UPDATE;
    ELSE
        SELECT * INTO t FROM agents.threads WHERE id = p_id;
    END IF;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'thread_not_found', format('no thread %s', p_id),
                         jsonb_build_object('threadId', p_id));
    END IF;
    RETURN t;
END
$$;

-- The thread, locked, which must still be active: 404 thread_not_found,
-- 409 thread_not_active (ending an ended thread).
CREATE OR REPLACE FUNCTION agents.must_get_active_thread(p_id text)
RETURNS agents.threads LANGUAGE plpgsql AS $$
DECLARE
    t agents.threads;
BEGIN
    t := agents.must_get_thread(p_id, true);
    IF t.status <> 'active' THEN
        PERFORM ap.raise(409, 'thread_not_active', format('thread %s is already %s', p_id, t.status),
                         jsonb_build_object('threadId', p_id, 'status', t.status));
    END IF;
    RETURN t;
END
$$;

-- GET /threads?status=&agent=: newest activity first.
CREATE OR REPLACE FUNCTION agents.list_threads(p_status text, p_agent text,
                                               p_limit integer, p_offset integer)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items jsonb;
    v_total bigint;
BEGIN
    IF p_status IS NOT NULL AND p_status NOT IN ('active', 'completed', 'error', 'killed') THEN
        PERFORM ap.raise(400, 'invalid_status',
            'status must be one of active, completed, error, killed',
            jsonb_build_object('status', p_status));
    END IF;
    PERFORM agents.check_page(p_limit, p_offset);
    SELECT count(*) INTO v_total FROM agents.threads t
    WHERE (p_status IS NULL OR t.status = p_status)
      AND (p_agent IS NULL OR t.participants @> ARRAY[p_agent]);
    SELECT coalesce(jsonb_agg(agents.thread_json(x)
                              ORDER BY x.last_activity DESC, x.id DESC), '[]') INTO v_items
    FROM (SELECT * FROM agents.threads t
          WHERE (p_status IS NULL OR t.status = p_status)
            AND (p_agent IS NULL OR t.participants @> ARRAY[p_agent])
          ORDER BY t.last_activity DESC, t.id DESC LIMIT p_limit OFFSET p_offset) x;
    RETURN jsonb_build_object('threads', v_items, 'count', jsonb_array_length(v_items),
                              'total', v_total, 'offset', p_offset, 'limit', p_limit);
END
$$;

-- VOLATILE like the lookup it calls (STABLE would be a claim the body breaks,
-- and it would keep the call from being inlined).
CREATE OR REPLACE FUNCTION agents.get_thread(p_id text)
RETURNS jsonb LANGUAGE sql VOLATILE AS $$
    SELECT agents.thread_json(agents.must_get_thread(p_id))
$$;

-- GET /threads/{id}/messages: the conversation, oldest first.
CREATE OR REPLACE FUNCTION agents.thread_messages(p_id text, p_limit integer, p_offset integer)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    t agents.threads;
    v_items jsonb;
BEGIN
    t := agents.must_get_thread(p_id);
    PERFORM agents.check_page(p_limit, p_offset);
    SELECT coalesce(jsonb_agg(agents.message_json(x) ORDER BY x.seq), '[]') INTO v_items
    FROM (SELECT * FROM agents.messages m WHERE m.thread_id = p_id
          ORDER BY m.seq LIMIT p_limit OFFSET p_offset) x;
    RETURN jsonb_build_object('messages', v_items, 'count', jsonb_array_length(v_items),
                              'total', t.message_count, 'offset', p_offset, 'limit', p_limit);
END
$$;

-- POST /threads/{id}/complete {status: completed|error, error?}: only an
-- active thread can end (409 otherwise).
CREATE OR REPLACE FUNCTION agents.complete_thread(p_id text, p_status text, p_error text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t agents.threads;
BEGIN
    IF p_status IS NULL OR p_status NOT IN ('completed', 'error') THEN
        PERFORM ap.raise(400, 'invalid_status', 'status must be completed or error',
                         jsonb_build_object('status', p_status));
    END IF;
    t := agents.must_get_active_thread(p_id);
    UPDATE agents.threads SET status = p_status, error = p_error, ended_at = now(),
           last_activity = now()
    WHERE id = p_id RETURNING * INTO t;
    PERFORM agents.emit_thread(t);
    RETURN agents.thread_json(t);
END
$$;

-- POST /threads/{id}/kill: ends an active thread as `killed` and drops its
-- undelivered inbox entries (nobody should work on it any more).
CREATE OR REPLACE FUNCTION agents.kill_thread(p_id text)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    t agents.threads;
BEGIN
    t := agents.must_get_active_thread(p_id);
    UPDATE agents.threads SET status = 'killed', ended_at = now(), last_activity = now()
    WHERE id = p_id RETURNING * INTO t;
    DELETE FROM agents.inbox WHERE thread_id = p_id;
    PERFORM agents.emit_thread(t);
    RETURN jsonb_build_object('success', true, 'threadId', p_id);
END
$$;

-- ---------------------------------------------------------------- live feed

-- What the WebSocket `connected` message shows: organism counts, every
-- agent, and the 100 threads with the newest activity.
CREATE OR REPLACE FUNCTION agents.feed_snapshot()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'organism', agents.organism_status() - 'startedAt',
        'agents', (SELECT coalesce(jsonb_agg(agents.agent_json(a) ORDER BY a.name), '[]')
                   FROM agents.agents a),
        'threads', (SELECT coalesce(jsonb_agg(agents.thread_json(t)
                                              ORDER BY t.last_activity DESC, t.id DESC), '[]')
                    FROM (SELECT * FROM agents.threads
                          ORDER BY last_activity DESC, id DESC LIMIT 100) t))
$$;
