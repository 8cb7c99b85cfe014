-- A worker's record of what it did for one endpoint, in one transaction:
-- the attempts it made (p_attempts: [{eventId, attempt, at, responseStatus,
-- error, durationMs, delivered}], in order), the position it reached
-- (every event up to p_position delivered or not matching) and, when the
-- last attempt failed, the retry or the end:
--   * the next attempt is due after p_delays[failures] (the last delay
--     repeats), and the lease is given back so any server may retry;
--   * once the endpoint has been failing for p_disable_after, it is
--     disabled and a `webhook.disabled` event is written.
-- With no failure the lease is renewed for p_lease. An empty p_attempts
-- only moves the position and renews the lease.
-- Returns {held, enabled}: held is false when the endpoint is gone or
-- another worker holds it now (this worker then stops).
CREATE OR REPLACE FUNCTION webhooks.record(p_id uuid, p_owner uuid, p_attempts jsonb,
                                           p_position bigint, p_lease interval,
                                           p_delays interval[], p_disable_after interval)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    w        webhooks.endpoints%ROWTYPE;
    v_now    timestamptz := now();
    v_last   jsonb := p_attempts -> (jsonb_array_length(coalesce(p_attempts, '[]')) - 1);
    v_failed boolean;
    v_since  timestamptz;
    v_delay  interval;
BEGIN
    SELECT * INTO w FROM webhooks.endpoints WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RETURN jsonb_build_object('held', false, 'enabled', false);
    END IF;
    -- The attempts happened, whoever holds the endpoint now.
    INSERT INTO webhooks.deliveries (endpoint_id, event_id, attempt, at, response_status,
                                     error, duration_ms, delivered)
    SELECT p_id, a."eventId", a.attempt, a.at, a."responseStatus", left(a.error, 1000),
           greatest(a."durationMs", 0), a.delivered
      FROM jsonb_to_recordset(coalesce(p_attempts, '[]'))
           AS a("eventId" bigint, attempt int, at timestamptz, "responseStatus" int,
                error text, "durationMs" int, delivered boolean);
    IF w.lease_owner IS DISTINCT FROM p_owner OR NOT w.enabled THEN
        RETURN jsonb_build_object('held', false, 'enabled', w.enabled);
    END IF;
    v_failed := v_last IS NOT NULL AND NOT (v_last ->> 'delivered')::boolean;
    IF NOT v_failed THEN
        UPDATE webhooks.endpoints
           SET position = greatest(position, p_position),
               failures = CASE WHEN v_last IS NULL THEN failures ELSE 0 END,
               failing_since = CASE WHEN v_last IS NULL THEN failing_since END,
               lease_until = v_now + p_lease
         WHERE id = p_id;
        RETURN jsonb_build_object('held', true, 'enabled', true);
    END IF;
    -- The streak of failures starts at the first failed attempt at this event.
    v_since := CASE WHEN greatest(w.position, p_position) > w.position THEN NULL
                    ELSE w.failing_since END;
    v_since := coalesce(v_since, (v_last ->> 'at')::timestamptz, v_now);
    IF v_now - v_since >= p_disable_after THEN
        UPDATE webhooks.endpoints
           SET position = greatest(position, p_position), failures = 0, failing_since = NULL,
               enabled = false, disabled_at = v_now, lease_owner = NULL, lease_until = NULL
         WHERE id = p_id;
        PERFORM feed.emit_data('webhook.disabled',
            jsonb_build_object('webhookId', p_id, 'url', w.url,
                               'eventId', (v_last ->> 'eventId')::bigint,
                               'failingSince', ap.ts(v_since),
                               'lastStatus', v_last -> 'responseStatus',
                               'lastError', v_last -> 'error'));
        RETURN jsonb_build_object('held', false, 'enabled', false);
    END IF;
    v_delay := coalesce(p_delays[least((v_last ->> 'attempt')::int, cardinality(p_delays))],
                        interval '5 seconds');
    UPDATE webhooks.endpoints
       SET position = greatest(position, p_position),
           failures = (v_last ->> 'attempt')::int, failing_since = v_since,
           due_at = v_now + v_delay, lease_owner = NULL, lease_until = NULL
     WHERE id = p_id;
    RETURN jsonb_build_object('held', false, 'enabled', true);
END
$$;
