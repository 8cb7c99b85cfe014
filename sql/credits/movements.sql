-- Credits: top-ups, admin adjustments, the transaction history and
-- (de)activation of ledger rows.

-- top-up and admin adjustments: a positive/signed movement.
CREATE OR REPLACE FUNCTION credits._credit(p_op text, p_user_id text, p_kind text,
                                           p_amount bigint, p_key text, p_metadata jsonb,
                                           p_at timestamptz)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_at   timestamptz := coalesce(p_at, now());
    v_hash uuid;
    l      record;
    r      credits.transactions;
    p      record;
BEGIN
    SELECT * INTO l FROM credits._lock(p_user_id, v_at);
    IF p_key IS NOT NULL THEN
        v_hash := credits._hash(jsonb_build_object('op', p_op, 'kind', p_kind,
            'amount', p_amount, 'metadata', p_metadata, 'at', p_at));
        r := credits._replay(p_user_id, p_key, v_hash);
        IF r.id IS NOT NULL THEN
            RETURN jsonb_build_object('transactionId', r.id, 'balance', r.running_balance);
        END IF;
    END IF;
    SELECT * INTO p FROM credits._post(p_user_id, l.o_bucket, l.o_balance, l.o_thresholds,
                                       p_kind, p_amount, v_at, p_key, v_hash, NULL, NULL,
                                       p_metadata);
    RETURN jsonb_build_object('transactionId', p.o_id, 'balance', p.o_balance);
END
$$;

CREATE OR REPLACE FUNCTION credits.top_up(p_user_id text, p_amount bigint,
                                          p_idempotency_key text DEFAULT NULL,
                                          p_metadata jsonb DEFAULT NULL,
                                          p_at timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    IF p_amount IS NULL OR p_amount <= 0 THEN
        PERFORM ap.raise(400, 'invalid_amount', 'amount must be > 0',
                         jsonb_build_object('amount', p_amount));
    END IF;
    PERFORM credits._check_json_object('metadata', p_metadata);
    RETURN credits._credit('top_up', p_user_id, 'top_up', p_amount, p_idempotency_key,
                           p_metadata, p_at);
END
$$;

CREATE OR REPLACE FUNCTION credits.adjust(p_user_id text, p_amount bigint, p_kind text,
                                          p_reason text, p_idempotency_key text DEFAULT NULL,
                                          p_metadata jsonb DEFAULT NULL,
                                          p_at timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    IF p_amount IS NULL OR p_amount = 0 THEN
        PERFORM ap.raise(400, 'invalid_amount', 'amount must not be 0');
    END IF;
    IF p_kind IS NULL OR p_kind NOT IN ('grant', 'refund', 'adjustment') THEN
        PERFORM ap.raise(400, 'invalid_kind', 'kind must be grant, refund or adjustment',
                         jsonb_build_object('kind', p_kind));
    END IF;
    IF p_reason IS NULL OR length(p_reason) NOT BETWEEN 1 AND 1000 THEN
        PERFORM ap.raise(400, 'invalid_reason', 'reason must be 1-1000 characters');
    END IF;
    PERFORM credits._check_json_object('metadata', p_metadata);
    RETURN credits._credit('adjust', p_user_id, p_kind, p_amount, p_idempotency_key,
                           coalesce(p_metadata, '{}'::jsonb)
                               || jsonb_build_object('reason', p_reason), p_at);
END
$$;

-- GET /users/{userId}/credits/transactions: newest first by effective time
-- then id; keyset cursor `after` = the last id seen.
CREATE OR REPLACE FUNCTION credits.list_transactions(
    p_user_id text, p_from timestamptz DEFAULT NULL, p_to timestamptz DEFAULT NULL,
    p_kind text DEFAULT NULL, p_limit int DEFAULT 50, p_after bigint DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_after_at timestamptz;
    v_items    jsonb;
    v_n        int;
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100 THEN
        PERFORM ap.raise(400, 'invalid_limit', 'limit must be 1-100');
    END IF;
    IF p_kind IS NOT NULL AND p_kind NOT IN ('refill', 'top_up', 'usage', 'grant', 'refund',
                                             'adjustment') THEN
        PERFORM ap.raise(400, 'invalid_kind', 'unknown transaction kind',
                         jsonb_build_object('kind', p_kind));
    END IF;
    IF p_after IS NOT NULL THEN
        SELECT t.effective_at INTO v_after_at FROM credits.transactions t
        WHERE t.user_id = p_user_id AND t.id = p_after;
        IF NOT FOUND THEN
            PERFORM ap.raise(400, 'invalid_cursor', 'after is not a transaction of this user',
                             jsonb_build_object('after', p_after));
        END IF;
    END IF;
    -- reading the history touches the current month (lazy refill)
    PERFORM credits._lock(p_user_id, now());
    SELECT coalesce(jsonb_agg(credits.tx_json(t::credits.transactions) ORDER BY t.effective_at DESC, t.id DESC),
                    '[]'::jsonb), count(*)
    INTO v_items, v_n
    FROM (SELECT * FROM credits.transactions t
          WHERE t.user_id = p_user_id
            AND (p_from IS NULL OR t.effective_at >= p_from)
            AND (p_to IS NULL OR t.effective_at < p_to)
            AND (p_kind IS NULL OR t.kind = p_kind)
            AND (p_after IS NULL OR (t.effective_at, t.id) < (v_after_at, p_after))
          ORDER BY t.effective_at DESC, t.id DESC
          LIMIT p_limit + 1) t;
    IF v_n > p_limit THEN
        v_items := v_items - p_limit;
    END IF;
    RETURN jsonb_build_object(
        'transactions', v_items,
        'count', jsonb_array_length(v_items),
        'nextAfter', CASE WHEN v_n > p_limit THEN v_items -> (p_limit - 1) -> 'id'
                          ELSE 'null'::jsonb END);
END
$$;

-- POST .../transactions/{id}/deactivate|activate (admin): the balance follows.
-- Setting the state a row already has is a no-op.
CREATE OR REPLACE FUNCTION credits.set_active(p_user_id text, p_id bigint, p_active boolean)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_tx      credits.transactions;
    v_user    credits.users;
    v_balance bigint;
    v_delta   bigint;
BEGIN
    PERFORM ap.check_ident('userId', p_user_id);
    SELECT * INTO v_tx FROM credits.transactions WHERE user_id = p_user_id AND id = p_id;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'transaction_not_found', 'no such transaction for this user',
                         jsonb_build_object('transactionId', p_id));
    END IF;
    SELECT b.balance INTO v_balance FROM credits.balances b
    WHERE b.user_id = p_user_id AND b.bucket = v_tx.bucket FOR UPDATE;
    SELECT * INTO v_tx FROM credits.transactions
    WHERE user_id = p_user_id AND id = p_id FOR UPDATE;
    IF v_tx.is_active = p_active THEN
        RETURN credits.tx_json(v_tx);
    END IF;
    IF p_active AND v_tx.kind = 'refill' AND EXISTS (
        SELECT 1 FROM credits.transactions t
        WHERE t.user_id = p_user_id AND t.bucket = v_tx.bucket AND t.period = v_tx.period
          AND t.kind = 'refill' AND t.is_active) THEN
        PERFORM ap.raise(409, 'refill_exists', 'this month already has an active refill',
                         jsonb_build_object('period', to_char(v_tx.period, 'YYYY-MM-DD')));
    END IF;
    v_delta := CASE WHEN p_active THEN v_tx.amount ELSE -v_tx.amount END;
    UPDATE credits.transactions SET is_active = p_active
    WHERE user_id = p_user_id AND id = p_id
    RETURNING * INTO v_tx;
    UPDATE credits.balances
    SET balance = balance + v_delta, updated_at = now(),
        refilled = CASE WHEN v_tx.kind = 'refill' AND bucket <> '-infinity'::date
                        THEN p_active ELSE refilled END
    WHERE user_id = p_user_id AND bucket = v_tx.bucket;
    SELECT * INTO v_user FROM credits.users WHERE user_id = p_user_id;
    IF v_user.low_balance_thresholds <> '{}' THEN
        -- the alert belongs to the period of the row whose state changed,
        -- as for every other movement (credits._post)
        PERFORM credits._low_balance(p_user_id, v_tx.period,
                                     v_user.low_balance_thresholds, v_balance,
                                     v_balance + v_delta);
    END IF;
    PERFORM feed.emit_data('credits.changed',
        jsonb_build_object('transactionId', p_id, 'kind', v_tx.kind, 'amount', v_delta,
                           'balance', v_balance + v_delta,
                           'period', to_char(v_tx.period, 'YYYY-MM-DD'),
                           'action', CASE WHEN p_active THEN 'activate' ELSE 'deactivate' END),
        p_user_id => p_user_id, p_notify => false);
    RETURN credits.tx_json(v_tx);
END
$$;
