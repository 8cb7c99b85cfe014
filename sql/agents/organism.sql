-- Agents: the organism (this deployment) and its status, and the snapshot
-- a WebSocket client gets on connect.

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

-- ---------------------------------------------------------------- live feed

-- What the WebSocket `connected` message shows: organism counts, every
-- agent, and the 100 threads with the newest activity.
CREATE OR REPLACE FUNCTION agents.feed_snapshot()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'organism', agents.organism_status() - 'startedAt',
        'agents', (SELECT coalesce(jsonb_agg(agents.agent_json(a, coalesce(q.n, 0))
                                             ORDER BY a.name), '[]')
                   FROM agents.agents a
                   LEFT JOIN (SELECT i.agent, count(*) AS n FROM agents.inbox i
                              GROUP BY i.agent) q ON q.agent = a.name),
        'threads', (SELECT coalesce(jsonb_agg(agents.thread_json(t::agents.threads)
                                              ORDER BY t.last_activity DESC, t.id DESC), '[]')
                    FROM (SELECT * FROM agents.threads
                          ORDER BY last_activity DESC, id DESC LIMIT 100) t))
$$;
