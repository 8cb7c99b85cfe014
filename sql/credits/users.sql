-- Credits: users and their refill policies and low-balance thresholds.

------------------------------------------------------------------------------
-- Users
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION credits.user_json(u anyelement)  -- a credits.users row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('userId', u.user_id, 'refillAmount', u.refill_amount,
                              'refillPolicy', u.refill_policy,
                              'lowBalanceThresholds', to_jsonb(u.low_balance_thresholds),
                              'createdAt', ap.ts(u.created_at))
$$;

CREATE OR REPLACE FUNCTION credits.put_user(p_user_id text, p_refill_amount bigint,
                                            p_refill_policy text, p_thresholds bigint[])
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_now timestamptz := now();  -- Citus: no now() in ON CONFLICT DO UPDATE
    v_row credits.users;
    v_thr bigint[];
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    IF p_refill_amount IS NULL OR p_refill_amount < 0 THEN
        PERFORM ap.raise(400, 'invalid_amount', 'refillAmount must be >= 0');
    END IF;
    IF p_refill_policy IS NULL OR p_refill_policy NOT IN ('reset', 'top_up_to', 'none') THEN
        PERFORM ap.raise(400, 'invalid_refill_policy', 'refillPolicy must be reset, top_up_to or none');
    END IF;
    IF p_thresholds IS NOT NULL AND (cardinality(p_thresholds) > 32
                                     OR array_position(p_thresholds, NULL) IS NOT NULL) THEN
        PERFORM ap.raise(400, 'invalid_thresholds', 'at most 32 integer thresholds');
    END IF;
    SELECT coalesce(array_agg(DISTINCT t ORDER BY t DESC), '{}') INTO v_thr
    FROM unnest(coalesce(p_thresholds, '{}'::bigint[])) t;
    INSERT INTO credits.users AS u (user_id, refill_amount, refill_policy, low_balance_thresholds)
    VALUES (p_user_id, p_refill_amount, p_refill_policy, v_thr)
    ON CONFLICT (user_id) DO UPDATE
        SET refill_amount = EXCLUDED.refill_amount,
            refill_policy = EXCLUDED.refill_policy,
            low_balance_thresholds = CASE WHEN p_thresholds IS NULL
                                          THEN u.low_balance_thresholds
                                          ELSE EXCLUDED.low_balance_thresholds END,
            updated_at = v_now
    RETURNING * INTO v_row;
    PERFORM feed.emit_data('credits.user_updated', credits.user_json(v_row),
                           p_user_id => p_user_id);
    RETURN credits.user_json(v_row);
END
$$;

CREATE OR REPLACE FUNCTION credits.get_user(p_user_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_row credits.users;
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    SELECT * INTO v_row FROM credits.users WHERE user_id = p_user_id;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'user_not_found', 'this user has never been touched',
                         jsonb_build_object('userId', p_user_id));
    END IF;
    RETURN credits.user_json(v_row);
END
$$;
