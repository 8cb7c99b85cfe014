-- Credits: holds. Reserve credits, then settle them into a usage row or
-- release them; expired holds stop counting without anyone calling.

------------------------------------------------------------------------------
-- Holds
------------------------------------------------------------------------------

-- POST /users/{userId}/credits/holds: reserve `amount`, or the price of
-- running p_block_id with p_input.
CREATE OR REPLACE FUNCTION credits.hold(
    p_user_id text, p_hold_id uuid, p_amount bigint DEFAULT NULL,
    p_block_id text DEFAULT NULL, p_input jsonb DEFAULT NULL,
    p_duration_seconds double precision DEFAULT NULL, p_ttl_seconds int DEFAULT 300,
    p_idempotency_key text DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_hash      uuid;
    v_amount    bigint;
    v_available bigint;
    v_expires   timestamptz;
    v_ttl       int := coalesce(p_ttl_seconds, 300);
    l           record;
    h           credits.holds;
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    IF p_amount IS NULL AND p_block_id IS NULL THEN
        PERFORM ap.raise(400, 'invalid_hold', 'give amount or blockId (with input)');
    END IF;
    IF p_amount IS NOT NULL AND p_block_id IS NOT NULL THEN
        PERFORM ap.raise(400, 'invalid_hold', 'give amount or blockId, not both');
    END IF;
    IF p_amount IS NOT NULL AND p_amount <= 0 THEN
        PERFORM ap.raise(400, 'invalid_amount', 'amount must be > 0',
                         jsonb_build_object('amount', p_amount));
    END IF;
    IF p_block_id IS NOT NULL THEN
        PERFORM ap.check_ident('blockId', p_block_id);
    END IF;
    PERFORM credits._check_json_object('input', p_input);
    IF v_ttl NOT BETWEEN 1 AND 604800 THEN
        PERFORM ap.raise(400, 'invalid_ttl', 'ttlSeconds must be 1-604800');
    END IF;
    IF p_duration_seconds IS NOT NULL
       AND NOT (p_duration_seconds >= 0 AND p_duration_seconds <= 1e15) THEN
        PERFORM ap.raise(400, 'invalid_duration', 'durationSeconds must be between 0 and 1e15');
    END IF;

    SELECT * INTO l FROM credits._lock(p_user_id, now());

    IF p_idempotency_key IS NOT NULL THEN
        IF length(p_idempotency_key) NOT BETWEEN 1 AND 255 THEN
            PERFORM ap.raise(400, 'invalid_idempotency_key',
                             'idempotencyKey must be 1-255 characters');
        END IF;
        v_hash := credits._hash(jsonb_build_object('op', 'hold', 'amount', p_amount,
            'blockId', p_block_id, 'input', p_input, 'durationSeconds', p_duration_seconds,
            'ttlSeconds', v_ttl));
        SELECT * INTO h FROM credits.holds
        WHERE user_id = p_user_id AND idempotency_key = p_idempotency_key;
        IF FOUND AND h.request_hash = v_hash THEN
            RETURN jsonb_build_object('holdId', h.id, 'amount', h.amount,
                                      'expiresAt', ap.ts(h.expires_at),
                                      'available', h.available_after);
        END IF;
        IF FOUND OR EXISTS (SELECT 1 FROM credits.transactions t
                            WHERE t.user_id = p_user_id
                              AND t.idempotency_key = p_idempotency_key) THEN
            PERFORM ap.raise(409, 'idempotency_conflict',
                             'this idempotencyKey was already used with a different request',
                             jsonb_build_object('idempotencyKey', p_idempotency_key));
        END IF;
    END IF;

    v_amount := coalesce(p_amount,
                         credits.price(p_block_id, coalesce(p_input, '{}'::jsonb),
                                       p_duration_seconds));
    v_available := l.o_balance - credits._held(p_user_id);
    IF v_amount > v_available THEN
        PERFORM ap.raise(402, 'insufficient_credits', 'not enough credits for this hold',
            jsonb_build_object('balance', l.o_balance, 'available', v_available,
                               'cost', v_amount));
    END IF;
    v_expires := now() + make_interval(secs => v_ttl);
    INSERT INTO credits.holds (user_id, id, amount, block_id, expires_at, available_after,
                               idempotency_key, request_hash)
    VALUES (p_user_id, p_hold_id, v_amount, p_block_id, v_expires, v_available - v_amount,
            p_idempotency_key, v_hash);
    -- holds count against every period of the user: no balance row of the
    -- user may take the no-holds fast path while this one can count
    UPDATE credits.balances
    SET holds_until = v_expires
    WHERE user_id = p_user_id AND (holds_until IS NULL OR holds_until < v_expires);
    PERFORM feed.emit_data('credits.changed',
        jsonb_build_object('holdId', p_hold_id, 'action', 'hold', 'amount', v_amount,
                           'balance', l.o_balance, 'available', v_available - v_amount),
        p_user_id => p_user_id, p_notify => false);
    RETURN jsonb_build_object('holdId', p_hold_id, 'amount', v_amount,
                              'expiresAt', ap.ts(v_expires),
                              'available', v_available - v_amount);
END
$$;

-- After a hold closes: the spend fast path only needs the holds sum while
-- some open hold can still count.
CREATE OR REPLACE FUNCTION credits._refresh_holds_until(p_user_id text, p_bucket date)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN

    UPDATE credits.balances
    SET holds_until = (SELECT max(h.expires_at) FROM credits.holds h
                       WHERE h.user_id = p_user_id AND h.status = 'open')
    WHERE user_id = p_user_id AND bucket = p_bucket;
END
$$;

-- Locks an open, unexpired hold (404 unknown, 409 settled/released/expired).
CREATE OR REPLACE FUNCTION credits._open_hold(p_user_id text, p_hold_id uuid)
RETURNS credits.holds LANGUAGE plpgsql AS $$
DECLARE
    h credits.holds;
BEGIN
    SELECT * INTO h FROM credits.holds
    WHERE user_id = p_user_id AND id = p_hold_id FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'hold_not_found', 'no such hold for this user',
                         jsonb_build_object('holdId', p_hold_id));
    END IF;
    IF h.status <> 'open' THEN
        PERFORM ap.raise(409, 'hold_' || h.status, 'the hold is already ' || h.status,
                         jsonb_build_object('holdId', p_hold_id, 'status', h.status));
    END IF;
    IF h.expires_at <= now() THEN
        PERFORM ap.raise(409, 'hold_expired', 'the hold has expired',
                         jsonb_build_object('holdId', p_hold_id,
                                            'expiresAt', ap.ts(h.expires_at)));
    END IF;
    RETURN h;
END
$$;

CREATE OR REPLACE FUNCTION credits.settle(p_user_id text, p_hold_id uuid, p_amount bigint,
                                          p_allow_debt boolean DEFAULT false)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    l           record;
    h           credits.holds;
    p           record;
    v_available bigint;
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    IF p_amount IS NULL OR p_amount < 0 THEN
        PERFORM ap.raise(400, 'invalid_amount', 'amount must be >= 0',
                         jsonb_build_object('amount', p_amount));
    END IF;
    SELECT * INTO l FROM credits._lock(p_user_id, now());
    h := credits._open_hold(p_user_id, p_hold_id);
    IF p_amount > h.amount AND NOT coalesce(p_allow_debt, false) THEN
        -- what is available once this hold no longer counts
        v_available := l.o_balance - credits._held(p_user_id) + h.amount;
        IF p_amount > v_available THEN
            PERFORM ap.raise(402, 'insufficient_credits',
                'settling above the hold needs credits that are not available (or allowDebt)',
                jsonb_build_object('balance', l.o_balance, 'available', v_available,
                                   'cost', p_amount));
        END IF;
    END IF;
    SELECT * INTO p FROM credits._post(p_user_id, l.o_bucket, l.o_balance, l.o_thresholds,
                                       'usage', -p_amount, now(), NULL, NULL, h.block_id,
                                       p_hold_id, NULL);
    UPDATE credits.holds
    SET status = 'settled', settled_amount = p_amount, transaction_id = p.o_id,
        closed_at = now()
    WHERE user_id = p_user_id AND id = p_hold_id;
    PERFORM credits._refresh_holds_until(p_user_id, l.o_bucket);
    RETURN jsonb_build_object('transactionId', p.o_id, 'amount', p_amount,
                              'balance', p.o_balance);
END
$$;

CREATE OR REPLACE FUNCTION credits.release(p_user_id text, p_hold_id uuid)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    l           record;
    h           credits.holds;
    v_available bigint;
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    SELECT * INTO l FROM credits._lock(p_user_id, now());
    h := credits._open_hold(p_user_id, p_hold_id);
    UPDATE credits.holds SET status = 'released', closed_at = now()
    WHERE user_id = p_user_id AND id = p_hold_id;
    PERFORM credits._refresh_holds_until(p_user_id, l.o_bucket);
    v_available := l.o_balance - credits._held(p_user_id);
    PERFORM feed.emit_data('credits.changed',
        jsonb_build_object('holdId', p_hold_id, 'action', 'release', 'amount', h.amount,
                           'balance', l.o_balance, 'available', v_available),
        p_user_id => p_user_id, p_notify => false);
    RETURN jsonb_build_object('holdId', p_hold_id, 'available', v_available);
END
$$;
