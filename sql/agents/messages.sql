-- Agents: the message bus. Messages between agents, injection, and each
-- agent's durable inbox (claim and ack).

-- ------------------------------------------------------------------ messages

-- Keeps threads and agents in step with a new message: participants,
-- messageCount and lastActivity are maintained here, by the one path that
-- writes messages (agents.post_message), never by callers. (Not a trigger:
-- Citus allows none on distributed tables.)
CREATE OR REPLACE FUNCTION agents._count_message(p_thread_id text, p_from text, p_to text,
                                                 p_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE agents.threads t SET
        message_count = t.message_count + 1,
        last_activity = greatest(t.last_activity, p_at),
        participants  = t.participants
                        || (SELECT coalesce(array_agg(DISTINCT p ORDER BY p), '{}')
                            FROM unnest(ARRAY[p_from, p_to]) p
                            WHERE p <> ALL (t.participants))
    WHERE t.id = p_thread_id;
    -- lock agent rows in name order so crossing messages never deadlock
    UPDATE agents.agents SET message_count = message_count + 1, last_activity = p_at
    WHERE name = least(p_from, p_to);
    IF p_from <> p_to THEN
        UPDATE agents.agents SET message_count = message_count + 1, last_activity = p_at
        WHERE name = greatest(p_from, p_to);
    END IF;
END
$$;

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
    PERFORM agents._count_message(m.thread_id, m.from_agent, m.to_agent, m.created_at);
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
    SELECT coalesce(jsonb_agg(agents.message_json(x::agents.messages) ORDER BY x.seq DESC), '[]') INTO v_items
    FROM (SELECT * FROM agents.messages m
          WHERE (p_agent IS NULL OR m.from_agent = p_agent OR m.to_agent = p_agent)
            AND (p_thread_id IS NULL OR m.thread_id = p_thread_id)
          ORDER BY m.seq DESC LIMIT p_limit OFFSET p_offset) x;
    RETURN jsonb_build_object('messages', v_items, 'count', jsonb_array_length(v_items),
                              'total', v_total, 'offset', p_offset, 'limit', p_limit);
END
$$;
