-- Delivery workers (src/webhooks/) take endpoints with a lease: an endpoint
-- has at most one worker at a time across every server, which keeps its
-- events in id order, one at a time. A worker that dies loses its lease when
-- it runs out; the next worker starts from the recorded position (an event
-- POSTed but not yet recorded is sent again: receivers dedupe on
-- `webhook-id`).

-- Leases up to p_limit enabled endpoints that are due, behind p_horizon
-- (the last id the caller's relay knows to be final) and held by nobody, or
-- by p_owner itself but not in p_running (its delivery loop for them
-- ended on an error). Rows another worker is claiming at the same moment
-- are skipped.
CREATE OR REPLACE FUNCTION webhooks.claim(p_owner uuid, p_lease interval, p_horizon bigint,
                                          p_limit int, p_running uuid[])
RETURNS TABLE (id uuid, url text, secret text, endpoint_position bigint, failures int)
LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();
BEGIN
    RETURN QUERY
    WITH c AS (
        SELECT e.id FROM webhooks.endpoints e
         WHERE e.enabled AND e.due_at <= v_now AND e.position < p_horizon
           AND (e.lease_until IS NULL OR e.lease_until < v_now
                OR (e.lease_owner = p_owner AND e.id <> ALL (coalesce(p_running, '{}'))))
         ORDER BY e.due_at
         LIMIT greatest(p_limit, 0)
           FOR UPDATE SKIP LOCKED)
    UPDATE webhooks.endpoints e
       SET lease_owner = p_owner, lease_until = v_now + p_lease
      FROM c
     WHERE e.id = c.id
    RETURNING e.id, e.url, e.secret, e.position, e.failures;
END
$$;

-- Gives back every lease p_owner holds (a server shutting down).
CREATE OR REPLACE FUNCTION webhooks.release(p_owner uuid)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    v_n int;
BEGIN
    UPDATE webhooks.endpoints SET lease_owner = NULL, lease_until = NULL
     WHERE lease_owner = p_owner;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END
$$;

-- The delivery backlog: for every enabled endpoint, the event ids between
-- its position and p_horizon, summed (an upper bound: ids an endpoint's
-- filters skip count too, until it moves past them).
CREATE OR REPLACE FUNCTION webhooks.backlog(p_horizon bigint)
RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT coalesce(sum(greatest(p_horizon - e.position, 0)), 0)::bigint
      FROM webhooks.endpoints e WHERE e.enabled
$$;
