-- The event log writer. Every domain function that changes state calls
-- feed.emit in its own transaction, so an event exists exactly when its change
-- committed. NOTIFY is only a wake-up hint for the relay (the table is the
-- truth); it can be switched off per database/session with
-- `SET agentplane.notify = 'off'`.

CREATE OR REPLACE FUNCTION feed.emit(
    p_type          text,
    p_body          jsonb,
    p_user_id       text   DEFAULT NULL,
    p_agents        text[] DEFAULT '{}',
    p_thread_id     text   DEFAULT NULL,
    p_payload_type  text   DEFAULT NULL,
    p_graph_id      text   DEFAULT NULL,
    p_graph_exec_id text   DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    INSERT INTO feed.events (type, user_id, agents, thread_id, payload_type,
                             graph_id, graph_exec_id, body)
    VALUES (p_type, p_user_id, coalesce(p_agents, '{}'), p_thread_id, p_payload_type,
            p_graph_id, p_graph_exec_id, coalesce(p_body, '{}'))
    RETURNING id INTO v_id;
    IF coalesce(current_setting('agentplane.notify', true), 'on') <> 'off' THEN
        -- identical notifications within one transaction are folded into one
        PERFORM pg_notify('agentplane_events', '');
    END IF;
    RETURN v_id;
END
$$;

-- The common shape for event types other than message/agent_state/
-- thread_updated: `data` plus whichever subject keys apply, at the top level.
CREATE OR REPLACE FUNCTION feed.emit_data(
    p_type          text,
    p_data          jsonb,
    p_user_id       text DEFAULT NULL,
    p_agent         text DEFAULT NULL,
    p_thread_id     text DEFAULT NULL,
    p_graph_id      text DEFAULT NULL,
    p_graph_exec_id text DEFAULT NULL)
RETURNS bigint LANGUAGE sql AS $$
    SELECT feed.emit(
        p_type,
        jsonb_strip_nulls(jsonb_build_object(
            'userId', p_user_id, 'agent', p_agent, 'threadId', p_thread_id,
            'graphId', p_graph_id, 'graphExecId', p_graph_exec_id))
          || jsonb_build_object('data', coalesce(p_data, '{}'::jsonb)),
        p_user_id,
        CASE WHEN p_agent IS NULL THEN '{}'::text[] ELSE ARRAY[p_agent] END,
        p_thread_id, NULL, p_graph_id, p_graph_exec_id)
$$;
