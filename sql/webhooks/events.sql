-- The events a worker sends next to one endpoint: those in
-- (p_after, p_upto] that match its filters, in id order, rendered as the
-- relay renders them (feed.read_range), at most p_limit and stopping before
-- feed.page_bytes(). `upto` says how far the answer covers: p_upto when
-- nothing was left out, else the last event's id; the worker may move the
-- endpoint's position there once those events are delivered.
-- Filters match as /ws filters do: a non-empty list must hold the event's
-- value (an event without one does not match).
CREATE OR REPLACE FUNCTION webhooks.next_events(p_id uuid, p_after bigint, p_upto bigint,
                                                p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    w      webhooks.endpoints%ROWTYPE;
    v_ids  bigint[];
    v_read int;
    v_sent jsonb;
BEGIN
    SELECT * INTO w FROM webhooks.endpoints WHERE id = p_id;
    IF NOT FOUND OR p_after >= p_upto THEN
        RETURN jsonb_build_object('events', '[]'::jsonb, 'upto', greatest(p_after, p_upto));
    END IF;
    SELECT array_agg(r.id ORDER BY r.id) FILTER (WHERE r.upto_bytes - r.own_bytes < feed.page_bytes()),
           count(*)
      INTO v_ids, v_read
      FROM (SELECT e.id, sum(feed.body_bytes(e.body)) OVER (ORDER BY e.id) AS upto_bytes,
                   feed.body_bytes(e.body) AS own_bytes
              FROM feed.events e
             WHERE e.id > p_after AND e.id <= p_upto
               AND (cardinality(w.events) = 0 OR e.type = ANY (w.events))
               AND (cardinality(w.users) = 0 OR e.user_id = ANY (w.users))
               AND (cardinality(w.agents) = 0 OR e.agents && w.agents)
             ORDER BY e.id
             LIMIT greatest(p_limit, 1)) r;
    IF v_ids IS NULL THEN
        RETURN jsonb_build_object('events', '[]'::jsonb, 'upto', p_upto);
    END IF;
    SELECT coalesce(jsonb_agg(feed.event_json(e, CASE WHEN t.id IS NULL THEN e.body
                                                       ELSE credits.ledger_event_body(t) END)
                              ORDER BY e.id), '[]'::jsonb)
      INTO v_sent
      FROM feed.events e
      LEFT JOIN credits.transactions t
             ON e.ledger_id IS NOT NULL AND t.user_id = e.user_id AND t.id = e.ledger_id
     WHERE e.id = ANY (v_ids);
    RETURN jsonb_build_object(
        'events', v_sent,
        -- a full page, or one cut at its byte bound, may have left events out
        'upto', CASE WHEN v_read >= greatest(p_limit, 1) OR cardinality(v_ids) < v_read
                     THEN v_ids[cardinality(v_ids)] ELSE p_upto END);
END
$$;
