-- The event log writer. Every domain function that changes state calls
-- feed.emit in its own transaction, so an event exists exactly when its change
-- committed. NOTIFY is only a wake-up hint for the relay (the table is the
-- truth); it can be switched off per database/session with
-- `SET agentplane.notify = 'off'` (the server does so on its pooled
-- connections when AGENTPLANE_NOTIFY=off).

DROP FUNCTION IF EXISTS feed.emit(text, jsonb, text, text[], text, text, text, text);
CREATE OR REPLACE FUNCTION feed.emit(
    p_type          text,
    p_body          jsonb,
    p_user_id       text    DEFAULT NULL,
    p_agents        text[]  DEFAULT '{}',
    p_thread_id     text    DEFAULT NULL,
    p_payload_type  text    DEFAULT NULL,
    p_graph_id      text    DEFAULT NULL,
    p_graph_exec_id text    DEFAULT NULL,
    p_notify        boolean DEFAULT true,
    p_ledger_id     bigint  DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    -- The transaction's xid must exist before the id is taken (the relay's
    -- no-skip rule depends on it; see feed.relay_poll below).
    PERFORM pg_current_xact_id();
    INSERT INTO feed.events (type, user_id, agents, thread_id, payload_type,
                             graph_id, graph_exec_id, body, ledger_id)
    VALUES (p_type, p_user_id, coalesce(p_agents, '{}'), p_thread_id, p_payload_type,
            p_graph_id, p_graph_exec_id, coalesce(p_body, '{}'), p_ledger_id)
    RETURNING id INTO v_id;
    -- NOTIFY is a latency hint only. It costs a cluster-wide lock at commit
    -- (measured: it more than halves the throughput of a minimal spend), so
    -- callers on hot paths (credit movements, usage) pass p_notify => false
    -- and the relay's poll tick (10 ms by default) picks their events up.
    -- Identical notifications within one transaction are folded into one.
    IF p_notify AND coalesce(current_setting('agentplane.notify', true), 'on') <> 'off' THEN
        PERFORM pg_notify('agentplane_events', '');
    END IF;
    RETURN v_id;
END
$$;

-- The body of event types other than message/agent_state/thread_updated:
-- `data` plus whichever subject keys apply, at the top level.
CREATE OR REPLACE FUNCTION feed.data_body(
    p_data          jsonb,
    p_user_id       text DEFAULT NULL,
    p_agent         text DEFAULT NULL,
    p_thread_id     text DEFAULT NULL,
    p_graph_id      text DEFAULT NULL,
    p_graph_exec_id text DEFAULT NULL)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object(
               'userId', p_user_id, 'agent', p_agent, 'threadId', p_thread_id,
               'graphId', p_graph_id, 'graphExecId', p_graph_exec_id))
           || jsonb_build_object('data', coalesce(p_data, '{}'::jsonb))
$$;

-- Emits such an event (feed.data_body) and returns its id.
DROP FUNCTION IF EXISTS feed.emit_data(text, jsonb, text, text, text, text, text);
CREATE OR REPLACE FUNCTION feed.emit_data(
    p_type          text,
    p_data          jsonb,
    p_user_id       text    DEFAULT NULL,
    p_agent         text    DEFAULT NULL,
    p_thread_id     text    DEFAULT NULL,
    p_graph_id      text    DEFAULT NULL,
    p_graph_exec_id text    DEFAULT NULL,
    p_notify        boolean DEFAULT true)
RETURNS bigint LANGUAGE sql AS $$
    SELECT feed.emit(
        p_type,
        feed.data_body(p_data, p_user_id, p_agent, p_thread_id, p_graph_id, p_graph_exec_id),
        p_user_id,
        CASE WHEN p_agent IS NULL THEN '{}'::text[] ELSE ARRAY[p_agent] END,
        p_thread_id, NULL, p_graph_id, p_graph_exec_id, p_notify)
$$;

-- ---------------------------------------------------------------------------
-- The relay (src/feed/listener.rs) and replay.
--
-- A sequence value is taken at insert, not at commit, so `id > cursor` alone
-- can skip a row that commits late with a lower id. Neither is
-- `xid < snapshot xmin` enough on its own: a transaction whose xid is older
-- can take a *higher* id than a younger one that is still running. The relay
-- therefore delivers only up to a "cut": a sequence value S read at some
-- instant, confirmed once every transaction that was running right after S
-- was read has finished. feed.emit assigns the transaction's xid *before* it
-- takes an id, so every id <= S belongs to a transaction that had an xid when
-- S was read: finished then, or in the running set of a snapshot taken just
-- after (its xip, plus every xid from its xmax up to the next unassigned
-- one, which a snapshot does not list). Once all
-- of those are finished, the rows with id <= S are final and can be read in
-- id order without gaps. Consequence: a long-running write transaction in
-- this database delays the feed until it ends (it never loses events).
-- Prepared (two-phase) transactions are not supported around feed.emit.

-- One event as the JSON the relay and replay hand to Rust, with its body
-- (stored, or rendered from its source row by feed.read_range).
DROP FUNCTION IF EXISTS feed.event_json(feed.events);
CREATE OR REPLACE FUNCTION feed.event_json(e feed.events, p_body jsonb)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', e.id, 'type', e.type, 'userId', e.user_id, 'agents', to_jsonb(e.agents),
        'threadId', e.thread_id, 'payloadType', e.payload_type, 'graphId', e.graph_id,
        'graphExecId', e.graph_exec_id, 'body', p_body, 'createdAt', ap.ts(e.created_at))
$$;

-- One relay step. State in, state out (the caller keeps it):
--   p_after      the last id delivered (NULL: do not read, just compute the cut)
--   p_cut        ids <= p_cut are final
--   p_pend_seq / p_pend_xip  a checkpoint waiting for its running set to finish
-- Returns the new cut and checkpoint, and up to p_limit events in
-- (p_after, cut] in id order. Each statement of this VOLATILE function runs
-- with a fresh snapshot (READ COMMITTED), which the scheme relies on.
CREATE OR REPLACE FUNCTION feed.relay_poll(
    p_after    bigint,
    p_cut      bigint,
    p_pend_seq bigint,
    p_pend_xip bigint[],
    p_limit    int)
RETURNS TABLE (cut bigint, pend_seq bigint, pend_xip bigint[], events jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cut  bigint := coalesce(p_cut, 0);
    v_seq  bigint := p_pend_seq;
    v_xip  bigint[] := p_pend_xip;
    v_busy boolean;
    v_snap pg_snapshot;
    v_next bigint;
BEGIN
    IF v_seq IS NOT NULL THEN
        SELECT bool_or(NOT pg_visible_in_snapshot(x::text::xid8, pg_current_snapshot()))
          INTO v_busy FROM unnest(v_xip) x;
        IF NOT coalesce(v_busy, false) THEN
            v_cut := greatest(v_cut, v_seq);
            v_seq := NULL;
            v_xip := NULL;
        END IF;
    END IF;
    IF v_seq IS NULL THEN
        SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END
          INTO v_seq FROM feed.events_id_seq s;
        IF v_seq <= v_cut THEN
            v_seq := NULL;
        ELSE
            -- a new statement, so a snapshot taken after the sequence read
            v_snap := pg_current_snapshot();
            SELECT array_agg(x::text::bigint) INTO v_xip FROM pg_snapshot_xip(v_snap) x;
            -- A snapshot lists running xids only below its xmax (the latest
            -- completed xid + 1); every xid assigned at or above it is still
            -- running too. Add them: probe upwards until an xid that is not
            -- assigned yet ("in the future").
            v_next := pg_snapshot_xmax(v_snap)::text::bigint;
            LOOP
                BEGIN
                    PERFORM pg_xact_status(v_next::text::xid8);
                EXCEPTION WHEN OTHERS THEN
                    EXIT;
                END;
                v_xip := coalesce(v_xip, '{}') || v_next;
                v_next := v_next + 1;
            END LOOP;
            -- Drop the xids known to run in other databases of the cluster
            -- (they cannot hold ids of this table). Unknown ones are kept.
            IF v_xip IS NOT NULL THEN
                SELECT array_agg(x) INTO v_xip
                  FROM unnest(v_xip) x
                 WHERE NOT EXISTS (
                       SELECT 1 FROM pg_stat_activity a
                        WHERE a.backend_xid::text::bigint = x % 4294967296
                          AND a.datname IS DISTINCT FROM current_database()
                          AND a.datid IS NOT NULL);
            END IF;
            IF v_xip IS NULL THEN
                v_cut := v_seq;
                v_seq := NULL;
            END IF;
        END IF;
    END IF;
    cut := v_cut;
    pend_seq := v_seq;
    pend_xip := v_xip;
    IF p_after IS NULL OR p_limit <= 0 OR p_after >= v_cut THEN
        events := '[]'::jsonb;
    ELSE
        events := feed.read_range(p_after, v_cut, p_limit);
    END IF;
    RETURN NEXT;
END
$$;

-- The stored events in (p_after, p_upto], id order, as JSON: what the relay
-- delivers and what a `since` replays. p_upto is a cut the relay has
-- confirmed, so the range is final. A credit movement's event is rendered
-- from its ledger row here (feed.events.ledger_id; credits.ledger_event_body
-- is the shape), one join for the whole range. (plpgsql: the credits
-- functions are created after this file.)
DROP FUNCTION IF EXISTS feed.read_range(bigint, bigint, int);
CREATE FUNCTION feed.read_range(p_after bigint, p_upto bigint, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT coalesce(jsonb_agg(feed.event_json(e, CASE WHEN t.id IS NULL THEN e.body
                                                           ELSE credits.ledger_event_body(t) END)
                                  ORDER BY e.id), '[]'::jsonb)
          FROM (SELECT * FROM feed.events
                 WHERE id > p_after AND id <= p_upto
                 ORDER BY id LIMIT greatest(p_limit, 0)) e
          LEFT JOIN credits.transactions t
                 ON e.ledger_id IS NOT NULL AND t.user_id = e.user_id AND t.id = e.ledger_id);
END
$$;

-- Retention: deletes up to p_batch events older than p_older_than, oldest
-- first, in one short transaction. Rows locked by a concurrent pruner (another
-- server) are skipped, never waited for. Returns how many were deleted; the
-- caller repeats while a full batch was deleted.
CREATE OR REPLACE FUNCTION feed.prune(p_older_than interval, p_batch int DEFAULT 1000)
RETURNS int LANGUAGE sql AS $$
    WITH doomed AS (
        SELECT id FROM feed.events
         WHERE created_at < now() - p_older_than
         ORDER BY created_at
         LIMIT greatest(p_batch, 0)
           FOR UPDATE SKIP LOCKED),
    gone AS (
        DELETE FROM feed.events e USING doomed d WHERE e.id = d.id RETURNING 1)
    SELECT count(*)::int FROM gone
$$;
