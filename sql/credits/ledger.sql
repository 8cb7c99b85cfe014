-- Credits: the ledger's internals (posting a row, locking a user's balance
-- row with the lazy refill, idempotency, low-balance alerts) and the balance
-- read.
--
-- Locking: every movement of a user first locks the balance row of the bucket
-- it touches (credits._lock). That one row lock serialises spends, holds,
-- refills and idempotent replays of the user, so nothing here needs a
-- retry loop or a serializable transaction.

------------------------------------------------------------------------------
-- Ledger internals
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION credits.tx_json(t anyelement)  -- a credits.transactions row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'userId', t.user_id, 'kind', t.kind, 'amount', t.amount,
        'runningBalance', t.running_balance, 'effectiveAt', ap.ts(t.effective_at),
        'period', to_char(t.period, 'YYYY-MM-DD'), 'isActive', t.is_active,
        'idempotencyKey', t.idempotency_key, 'blockId', t.block_id, 'holdId', t.hold_id,
        'metadata', t.metadata, 'createdAt', ap.ts(t.created_at))
$$;

-- Sum of the user's holds that still count (open and not expired).
-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
DROP FUNCTION IF EXISTS credits._held(text);
CREATE FUNCTION credits._held(p_user_id text)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(sum(h.amount), 0)::bigint FROM credits.holds h
            WHERE h.user_id = p_user_id AND h.status = 'open' AND h.expires_at > now());
END
$$;

-- One credits.low_balance event per threshold crossed from >= t to < t, at
-- most one per (user, month, threshold).
CREATE OR REPLACE FUNCTION credits._low_balance(p_user_id text, p_period date,
                                                p_thresholds bigint[], p_old bigint, p_new bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t bigint;
BEGIN
    FOREACH t IN ARRAY p_thresholds LOOP
        IF p_old >= t AND p_new < t THEN
            INSERT INTO credits.low_balance_alerts (user_id, period, threshold, balance)
            VALUES (p_user_id, p_period, t, p_new)
            ON CONFLICT DO NOTHING;
            IF FOUND THEN
                PERFORM feed.emit_data('credits.low_balance',
                    jsonb_build_object('threshold', t, 'balance', p_new,
                                       'period', to_char(p_period, 'YYYY-MM-DD')),
                    p_user_id => p_user_id);
            END IF;
        END IF;
    END LOOP;
END
$$;

-- The body of a ledger row's credits.changed event. The event row names the
-- ledger row (feed.events.ledger_id) and feed.read_range renders it with
-- this when the feed is read: the one place this `data` is written, in the
-- envelope every user event has (feed.data_body).
CREATE OR REPLACE FUNCTION credits.ledger_event_body(t anyelement)  -- a credits.transactions row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT feed.data_body(
        jsonb_build_object('transactionId', t.id, 'kind', t.kind, 'amount', t.amount,
                           'balance', t.running_balance,
                           'period', to_char(t.period, 'YYYY-MM-DD'),
                           'blockId', t.block_id),
        t.user_id)
$$;

-- Appends a ledger row and moves the balance row. The caller holds the lock
-- on the balance row (credits._lock) and passes its current balance.
CREATE OR REPLACE FUNCTION credits._post(
    p_user_id text, p_bucket date, p_old bigint, p_thresholds bigint[],
    p_kind text, p_amount bigint, p_at timestamptz,
    p_key text DEFAULT NULL, p_hash uuid DEFAULT NULL, p_block_id text DEFAULT NULL,
    p_hold_id uuid DEFAULT NULL, p_metadata jsonb DEFAULT NULL,
    OUT o_id bigint, OUT o_balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_period date := credits.month_of(p_at);
BEGIN
    -- Only a usage or a refill may move 0 credits. The rule lives here, at
    -- the one writer of such rows, not in a table CHECK, because a table
    -- CHECK is re-parsed by every statement that writes the table. The spend
    -- fast path writes only 'usage' rows.
    IF p_amount = 0 AND p_kind NOT IN ('usage', 'refill') THEN
        PERFORM ap.raise(500, 'internal_error',
                         format('a %s of 0 credits cannot be posted', p_kind));
    END IF;
    o_balance := p_old + p_amount;
    INSERT INTO credits.transactions (user_id, kind, amount, running_balance, effective_at,
                                      period, bucket, idempotency_key, request_hash,
                                      block_id, hold_id, metadata)
    VALUES (p_user_id, p_kind, p_amount, o_balance, p_at, v_period, p_bucket, p_key, p_hash,
            p_block_id, p_hold_id, coalesce(p_metadata, '{}'::jsonb))
    RETURNING id INTO o_id;
    UPDATE credits.balances SET balance = o_balance, updated_at = now()
    WHERE user_id = p_user_id AND bucket = p_bucket;
    IF p_thresholds <> '{}' THEN
        PERFORM credits._low_balance(p_user_id, v_period, p_thresholds, p_old, o_balance);
    END IF;
    PERFORM feed.emit('credits.changed', NULL, p_user_id, p_notify => false,
                      p_ledger_id => o_id);
END
$$;

-- Locks the balance row that a movement of p_user_id at p_at counts in,
-- creating the user and the row on first touch and writing the period's lazy
-- refill (exactly once: the refill is decided under the row lock).
CREATE OR REPLACE FUNCTION credits._lock(
    p_user_id text, p_at timestamptz,
    OUT o_bucket date, OUT o_balance bigint, OUT o_holds_until timestamptz,
    OUT o_policy text, OUT o_thresholds bigint[], OUT o_refill_amount bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_period   date := credits.month_of(p_at);
    v_refilled boolean;
    v_rperiod  date;
    v_grant    bigint;
    v_id       bigint;
    v_holds_until timestamptz;
BEGIN
    IF NOT isfinite(p_at) THEN
        PERFORM credits._refuse_infinite_at();
    END IF;
    -- hot path: user and row exist, refill already decided
    SELECT u.refill_policy, u.low_balance_thresholds, u.refill_amount,
           b.bucket, b.balance, b.holds_until, b.refilled, b.refilled_period
    INTO o_policy, o_thresholds, o_refill_amount,
         o_bucket, o_balance, o_holds_until, v_refilled, v_rperiod
    FROM credits.users u
    JOIN credits.balances b
      ON b.user_id = u.user_id AND b.bucket = credits.bucket_of(u.refill_policy, v_period)
    WHERE u.user_id = p_user_id
    FOR UPDATE OF b;
    IF FOUND AND (CASE o_policy
                      WHEN 'reset' THEN v_refilled
                      WHEN 'top_up_to' THEN v_rperiod >= v_period
                      ELSE true END) THEN
        RETURN;
    END IF;

    -- first touch of the user or of the period
    PERFORM ap.check_ident('userId', p_user_id);
    INSERT INTO credits.users (user_id) VALUES (p_user_id) ON CONFLICT DO NOTHING;
    SELECT u.refill_policy, u.low_balance_thresholds, u.refill_amount
    INTO o_policy, o_thresholds, o_refill_amount
    FROM credits.users u WHERE u.user_id = p_user_id;
    o_bucket := credits.bucket_of(o_policy, v_period);
    -- (read first: Citus allows no subquery in INSERT ... VALUES)
    SELECT max(h.expires_at) INTO v_holds_until FROM credits.holds h
    WHERE h.user_id = p_user_id AND h.status = 'open';
    INSERT INTO credits.balances (user_id, bucket, holds_until)
    VALUES (p_user_id, o_bucket, v_holds_until)
    ON CONFLICT DO NOTHING;
    SELECT b.balance, b.holds_until, b.refilled, b.refilled_period
    INTO o_balance, o_holds_until, v_refilled, v_rperiod
    FROM credits.balances b
    WHERE b.user_id = p_user_id AND b.bucket = o_bucket
    FOR UPDATE;

    IF o_policy = 'reset' AND NOT v_refilled THEN
        IF o_refill_amount > 0 THEN
            SELECT p.o_id, p.o_balance INTO v_id, o_balance
            FROM credits._post(p_user_id, o_bucket, o_balance, o_thresholds, 'refill',
                               o_refill_amount, credits.month_start(v_period)) p;
        END IF;
        UPDATE credits.balances SET refilled = true
        WHERE user_id = p_user_id AND bucket = o_bucket;
    ELSIF o_policy = 'top_up_to' AND (v_rperiod IS NULL OR v_rperiod < v_period) THEN
        v_grant := greatest(o_refill_amount - o_balance, 0);
        IF v_grant > 0 THEN
            SELECT p.o_id, p.o_balance INTO v_id, o_balance
            FROM credits._post(p_user_id, o_bucket, o_balance, o_thresholds, 'refill',
                               v_grant, credits.month_start(v_period)) p;
        END IF;
        UPDATE credits.balances SET refilled_period = v_period
        WHERE user_id = p_user_id AND bucket = o_bucket;
    END IF;
END
$$;

-- An effective time must be finite: 'infinity' would name no month, and
-- '-infinity' is the date of the running bucket (credits.bucket_of). Callers
-- test isfinite() themselves and call this only to raise, so the usual path
-- pays no function call.
CREATE OR REPLACE FUNCTION credits._refuse_infinite_at()
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ap.raise(400, 'invalid_at', 'at must be a finite time');
END
$$;

-- The fingerprint of a request body, for idempotency.
CREATE OR REPLACE FUNCTION credits._hash(p jsonb)
RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
    SELECT md5(p::text)::uuid
$$;

-- The earlier transaction written under this idempotency key, if any; 409
-- when the key was used with another body (or for a hold).
CREATE OR REPLACE FUNCTION credits._replay(p_user_id text, p_key text, p_hash uuid)
RETURNS credits.transactions LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_row credits.transactions;
BEGIN
    IF length(p_key) NOT BETWEEN 1 AND 255 THEN
        PERFORM ap.raise(400, 'invalid_idempotency_key', 'idempotencyKey must be 1-255 characters');
    END IF;
    SELECT * INTO v_row FROM credits.transactions t
    WHERE t.user_id = p_user_id AND t.idempotency_key = p_key;
    IF FOUND AND v_row.request_hash IS DISTINCT FROM p_hash
       OR NOT FOUND AND EXISTS (SELECT 1 FROM credits.holds h
                                WHERE h.user_id = p_user_id AND h.idempotency_key = p_key) THEN
        PERFORM ap.raise(409, 'idempotency_conflict',
                         'this idempotencyKey was already used with a different request',
                         jsonb_build_object('idempotencyKey', p_key));
    END IF;
    RETURN v_row;
END
$$;

CREATE OR REPLACE FUNCTION credits._check_json_object(p_field text, p jsonb)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p IS NOT NULL AND jsonb_typeof(p) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_' || p_field, p_field || ' must be a JSON object');
    END IF;
END
$$;

------------------------------------------------------------------------------
-- The balance
------------------------------------------------------------------------------

-- GET /users/{userId}/credits: performs the lazy refill.
CREATE OR REPLACE FUNCTION credits.get_credits(p_user_id text, p_at timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_at      timestamptz := coalesce(p_at, now());
    v_period  date := credits.month_of(v_at);
    v_policy  text;
    v_amount  bigint;
    v_balance bigint;
    v_ok      boolean;
    l         record;
BEGIN
    IF NOT isfinite(v_at) THEN
        PERFORM credits._refuse_infinite_at();
    END IF;
    -- read without locking when the period is already settled
    SELECT u.refill_policy, u.refill_amount, b.balance,
           CASE u.refill_policy WHEN 'reset' THEN b.refilled
                                WHEN 'top_up_to' THEN b.refilled_period >= v_period
                                ELSE true END
    INTO v_policy, v_amount, v_balance, v_ok
    FROM credits.users u
    JOIN credits.balances b
      ON b.user_id = u.user_id AND b.bucket = credits.bucket_of(u.refill_policy, v_period)
    WHERE u.user_id = p_user_id;
    IF NOT FOUND OR NOT v_ok THEN
        SELECT * INTO l FROM credits._lock(p_user_id, v_at);
        v_policy := l.o_policy;
        v_amount := l.o_refill_amount;
        v_balance := l.o_balance;
    END IF;
    RETURN jsonb_build_object(
        'userId', p_user_id, 'balance', v_balance,
        'available', v_balance - credits._held(p_user_id),
        'period', jsonb_build_object(
            'start', ap.ts(credits.month_start(v_period)),
            'end', ap.ts(credits.month_start((v_period + interval '1 month')::date))),
        'refillAmount', v_amount, 'refillPolicy', v_policy);
END
$$;
