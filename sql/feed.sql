-- The event log writer. Every domain function that changes state calls
-- feed.emit in its own transaction, so an event exists exactly when its change
-- committed. NOTIFY is only a wake-up hint for the relay (the table is the
-- truth); it can be switched off per database/session with
-- `SET agentplane.notify = 'off'` (the server does so on its pooled
-- connections when AGENTPLANE_NOTIFY=off).

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
--   p_cands      checkpoints (sequence values, ascending) still waiting for
--                transactions that were running when they were taken
--   p_xids / p_xid_first  those transactions, each with the first (oldest)
--                checkpoint it was seen running at
-- Returns the new state, and up to p_limit events in (p_after, cut] in id
-- order (only those of p_users, when given: feed.read_range). Each
-- statement of this VOLATILE function runs with a fresh snapshot (READ
-- COMMITTED), which the scheme relies on.
--
-- Checkpoints are pipelined: a step takes a new one whenever the sequence
-- moved, however many still wait (up to 64). A transaction running at
-- checkpoint c is running at every later checkpoint it outlives, and one
-- that had no xid at c takes only ids above c; so c is final once no
-- transaction first seen at or before c still runs, whatever became of the
-- checkpoints after it. An event then waits
-- for the transactions in flight at the first step after its commit, not
-- also for those of a checkpoint taken before it, which keeps the feed's
-- tail latency to about one commit time under a steady write load.
CREATE OR REPLACE FUNCTION feed.relay_poll(
    p_after     bigint,
    p_cut       bigint,
    p_cands     bigint[],
    p_xids      bigint[],
    p_xid_first bigint[],
    p_limit     int,
    p_users     text[] DEFAULT NULL)
RETURNS TABLE (cut bigint, cands bigint[], xids bigint[], xid_first bigint[], events jsonb)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_cut   bigint := coalesce(p_cut, 0);
    v_cands bigint[] := coalesce(p_cands, '{}');
    v_xids  bigint[] := coalesce(p_xids, '{}');
    v_first bigint[] := coalesce(p_xid_first, '{}');
    v_block bigint;
    v_seq   bigint;
    v_snap  pg_snapshot;
    v_next  bigint;
    v_run   bigint[];
BEGIN
    IF cardinality(v_xids) <> cardinality(v_first) THEN
        -- (unnest would pad the shorter one with NULLs, which min() skips)
        RAISE EXCEPTION 'feed.relay_poll: p_xids and p_xid_first differ in length';
    END IF;
    IF cardinality(v_cands) > 0 THEN
        -- The remembered transactions still running, and the oldest
        -- checkpoint any of them holds back; every checkpoint below it is final.
        v_snap := pg_current_snapshot();
        SELECT coalesce(array_agg(u.x ORDER BY u.x), '{}'), coalesce(array_agg(u.f ORDER BY u.x), '{}'),
               min(u.f)
          INTO v_xids, v_first, v_block
          FROM unnest(v_xids, v_first) AS u(x, f)
         WHERE NOT pg_visible_in_snapshot(u.x::text::xid8, v_snap);
        v_cut := greatest(v_cut, (SELECT max(c) FROM unnest(v_cands) c
                                   WHERE v_block IS NULL OR c < v_block));
        v_cands := ARRAY(SELECT c FROM unnest(v_cands) c WHERE c > v_cut ORDER BY c);
    END IF;

    -- A new checkpoint when the sequence moved past the last one (at most 64
    -- wait at once; the next step takes one when a slot frees).
    SELECT CASE WHEN s.is_called THEN s.last_value ELSE 0 END
      INTO v_seq FROM feed.events_id_seq s;
    IF v_seq > greatest(v_cut, v_cands[cardinality(v_cands)]) AND cardinality(v_cands) < 64 THEN
        -- a new statement, so a snapshot taken after the sequence read
        v_snap := pg_current_snapshot();
        SELECT array_agg(x::text::bigint) INTO v_run FROM pg_snapshot_xip(v_snap) x;
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
            v_run := coalesce(v_run, '{}') || v_next;
            v_next := v_next + 1;
        END LOOP;
        -- Drop the xids known to run in other databases of the cluster
        -- (they cannot hold ids of this table). Unknown ones are kept.
        IF v_run IS NOT NULL THEN
            SELECT array_agg(x) INTO v_run
              FROM unnest(v_run) x
             WHERE x % 4294967296 <> ALL (ARRAY(
                       SELECT a.backend_xid::text::bigint FROM pg_stat_activity a
                        WHERE a.backend_xid IS NOT NULL
                          AND a.datname IS DISTINCT FROM current_database()
                          AND a.datid IS NOT NULL));
        END IF;
        IF v_run IS NULL THEN
            -- nothing runs: every id up to the sequence value is final
            v_cut := v_seq;
            v_cands := '{}';
            v_xids := '{}';
            v_first := '{}';
        ELSE
            v_cands := v_cands || v_seq;
            SELECT v_xids || coalesce(array_agg(x ORDER BY x), '{}'),
                   v_first || coalesce(array_agg(v_seq) , '{}')
              INTO v_xids, v_first
              FROM unnest(v_run) x
             WHERE x <> ALL (v_xids);
        END IF;
    END IF;
    cut := v_cut;
    cands := v_cands;
    xids := v_xids;
    xid_first := v_first;
    IF p_after IS NULL OR p_limit <= 0 OR p_after >= v_cut THEN
        events := '[]'::jsonb;
    ELSE
        events := feed.read_range(p_after, v_cut, p_limit, p_users);
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
-- With p_users given, only the events of those users are read (the relay's
-- connections all follow named users: the rest would be rendered for
-- nobody).
CREATE OR REPLACE FUNCTION feed.read_range(p_after bigint, p_upto bigint, p_limit int,
                                           p_users text[] DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- A page also stops before it passes feed.page_bytes() (always holding
    -- at least one event): a run of large events (1 MiB messages) would
    -- otherwise render past the 256 MiB a jsonb array may hold and fail the read
    -- every time.
    -- Callers learn that more events wait with feed.has_more.
    -- The ledger rows are read by their keys, apart from the events: on Citus
    -- the events are on the coordinator and the ledger on the workers, and a
    -- join would hand ledger_event_body a row of no table's type.
    RETURN (
        WITH page AS MATERIALIZED (
            SELECT e.*
              FROM (SELECT r.id, sum(feed.body_bytes(r.body)) OVER (ORDER BY r.id) AS upto_bytes,
                           feed.body_bytes(r.body) AS own_bytes
                      FROM (SELECT id, body FROM feed.events
                             WHERE id > p_after AND id <= p_upto
                               AND (p_users IS NULL OR user_id = ANY (p_users))
                             ORDER BY id LIMIT greatest(p_limit, 0)) r) w
              JOIN feed.events e ON e.id = w.id AND w.upto_bytes - w.own_bytes < feed.page_bytes()),
        ledger AS (
            SELECT t.user_id, t.id, credits.ledger_event_body(t) AS body
              FROM credits.transactions t
             WHERE (t.user_id, t.id) IN (SELECT p.user_id, p.ledger_id FROM page p
                                          WHERE p.ledger_id IS NOT NULL))
        SELECT coalesce(jsonb_agg(feed.event_json(p::feed.events, coalesce(l.body, p.body))
                                  ORDER BY p.id), '[]'::jsonb)
          FROM page p
          LEFT JOIN ledger l ON p.ledger_id IS NOT NULL AND l.user_id = p.user_id
                            AND l.id = p.ledger_id);
END
$$;

-- The most a page of events may hold, in bytes of their bodies.
CREATE OR REPLACE FUNCTION feed.page_bytes()
RETURNS bigint LANGUAGE sql IMMUTABLE AS $$ SELECT 8 * 1024 * 1024::bigint $$;

-- An event body's size as rendered: stored size for small bodies (cheap),
-- the text's length for large ones, which may be stored compressed far
-- below what they render to.
CREATE OR REPLACE FUNCTION feed.body_bytes(p_body jsonb)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN pg_column_size(p_body) > 2000 THEN octet_length(p_body::text)
                ELSE pg_column_size(p_body) END
$$;

-- Whether an event (of p_users, when given) lies in (p_after, p_upto]:
-- a page that stopped at its byte bound left some.
CREATE OR REPLACE FUNCTION feed.has_more(p_after bigint, p_upto bigint,
                                         p_users text[] DEFAULT NULL)
RETURNS boolean LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM feed.events
                    WHERE id > p_after AND id <= p_upto
                      AND (p_users IS NULL OR user_id = ANY (p_users)))
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
