-- One endpoint's delivery attempts, oldest first, after the cursor p_after
-- (an attempt's sequence number; `nextAfter` of the previous page).
CREATE OR REPLACE FUNCTION webhooks.deliveries(p_id uuid, p_after bigint, p_limit int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_page jsonb;
    v_last bigint;
    v_n    int;
BEGIN
    PERFORM webhooks.check_exists(p_id);
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        PERFORM ap.raise(400, 'invalid_limit', 'limit must be between 1 and 1000');
    END IF;
    IF p_after IS NOT NULL AND p_after < 0 THEN
        PERFORM ap.raise(400, 'invalid_after', 'after must be >= 0');
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'eventId', d.event_id, 'attempt', d.attempt, 'at', ap.ts(d.at),
               'responseStatus', d.response_status, 'error', d.error,
               'durationMs', d.duration_ms, 'delivered', d.delivered) ORDER BY d.id), '[]'),
           max(d.id), count(*)
      INTO v_page, v_last, v_n
      FROM (SELECT * FROM webhooks.deliveries
             WHERE endpoint_id = p_id AND id > coalesce(p_after, 0)
             ORDER BY id LIMIT p_limit) d;
    RETURN jsonb_build_object('deliveries', v_page, 'count', v_n,
                              'nextAfter', coalesce(v_last, p_after, 0));
END
$$;

-- Retention: deletes up to p_batch attempts older than p_older_than (the
-- feed's retention: the events they were about are gone too).
CREATE OR REPLACE FUNCTION webhooks.prune_deliveries(p_older_than interval, p_batch int)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    DELETE FROM webhooks.deliveries d
     USING (SELECT endpoint_id, id FROM webhooks.deliveries
             WHERE at < now() - p_older_than ORDER BY at LIMIT greatest(p_batch, 0)
               FOR UPDATE SKIP LOCKED) o
     WHERE d.endpoint_id = o.endpoint_id AND d.id = o.id;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;
