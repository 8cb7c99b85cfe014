-- Credits (docs/credits.md): users and refill policies, the ledger, block prices,
-- spend, top-up, adjust, (de)activation, history, holds, idempotency,
-- low-balance alerts. Tables: migrations/V2__credits.sql.
--
-- Locking: every movement of a user first locks the balance row of the bucket
-- it touches (credits._lock). That one row lock serialises spends, holds,
-- refills and idempotent replays of the user, so nothing below needs a
-- retry loop or a serializable transaction.

-- The calendar month (UTC) of an instant, as its first day.
CREATE OR REPLACE FUNCTION credits.month_of(p timestamptz)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT date_trunc('month', p AT TIME ZONE 'UTC')::date
$$;

-- The first instant (UTC) of a month given by its first day.
CREATE OR REPLACE FUNCTION credits.month_start(p date)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p::timestamp AT TIME ZONE 'UTC'
$$;

-- Which balance row a movement of a user with this policy counts in.
CREATE OR REPLACE FUNCTION credits.bucket_of(p_policy text, p_period date)
RETURNS date LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN p_policy = 'reset' THEN p_period ELSE '-infinity'::date END
$$;

------------------------------------------------------------------------------
-- Filter matching and block prices
------------------------------------------------------------------------------

-- Recursive containment where null, missing and "" are alike, and a missing
-- nested object counts as {}. Arrays use PostgreSQL's containment.
CREATE OR REPLACE FUNCTION credits._filter_rec(p_filter jsonb, p_input jsonb)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    k  text;
    fv jsonb;
    iv jsonb;
BEGIN
    IF p_input IS NULL OR p_input = 'null'::jsonb OR p_input = '""'::jsonb THEN
        p_input := '{}'::jsonb;
    END IF;
    IF jsonb_typeof(p_filter) <> 'object' THEN
        RETURN p_input = p_filter;
    END IF;
    IF jsonb_typeof(p_input) <> 'object' THEN
        RETURN false;
    END IF;
    FOR k, fv IN SELECT e.key, e.value FROM jsonb_each(p_filter) e LOOP
        iv := p_input -> k;
        IF fv = 'null'::jsonb OR fv = '""'::jsonb THEN
            IF NOT (iv IS NULL OR iv = 'null'::jsonb OR iv = '""'::jsonb) THEN
                RETURN false;
            END IF;
        ELSIF jsonb_typeof(fv) = 'object' THEN
            IF NOT credits._filter_rec(fv, iv) THEN
                RETURN false;
            END IF;
        ELSIF jsonb_typeof(fv) = 'array' THEN
            IF iv IS NULL OR jsonb_typeof(iv) <> 'array' OR NOT (iv @> fv) THEN
                RETURN false;
            END IF;
        ELSIF iv IS NULL OR iv <> fv THEN
            RETURN false;
        END IF;
    END LOOP;
    RETURN true;
END
$$;

-- Whether a cost entry's filter is contained in a block input. Plain jsonb
-- containment implies a match, so it is tried first (it is the common case:
-- the input carries the platform credential the filter names).
CREATE OR REPLACE FUNCTION credits.filter_matches(p_filter jsonb, p_input jsonb)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_filter IS NULL OR p_filter = '{}'::jsonb
        OR coalesce(p_input @> p_filter, false)
        OR credits._filter_rec(p_filter, p_input)
$$;

-- The price of one run given a block's cost entries: the first entry whose
-- filter matches; 0 when none does. (plpgsql: its plan is cached per
-- session, unlike a non-inlined SQL function's.)
DROP FUNCTION IF EXISTS credits.cost_of(jsonb, jsonb, double precision);
CREATE FUNCTION credits.cost_of(p_costs jsonb, p_input jsonb,
                                p_duration_seconds double precision)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e jsonb;
    i int := 0;
    n int := coalesce(jsonb_array_length(p_costs), 0);
BEGIN
    p_input := coalesce(p_input, '{}'::jsonb);
    WHILE i < n LOOP
        e := p_costs -> i;
        IF credits.filter_matches(e -> 'filter', p_input) THEN
            RETURN CASE e ->> 'costType'
                WHEN 'run' THEN (e ->> 'amount')::bigint
                WHEN 'byte' THEN (e ->> 'amount')::bigint
                     * ceil(octet_length(p_input::text) / 1024.0)::bigint
                WHEN 'second' THEN (e ->> 'amount')::bigint
                     * ceil(coalesce(p_duration_seconds, 0))::bigint
                ELSE 0 END;
        END IF;
        i := i + 1;
    END LOOP;
    RETURN 0;
END
$$;

-- The price of running block p_block_id with an input (0 for an unpriced block).
DROP FUNCTION IF EXISTS credits.price(text, jsonb, double precision);
CREATE FUNCTION credits.price(p_block_id text, p_input jsonb,
                              p_duration_seconds double precision DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
DECLARE
    v bigint;
BEGIN
    SELECT credits.cost_of(c.costs, p_input, p_duration_seconds) INTO v
    FROM credits.block_costs c WHERE c.block_id = p_block_id;
    RETURN coalesce(v, 0);
END
$$;

CREATE OR REPLACE FUNCTION credits.block_costs_json(c credits.block_costs)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('blockId', c.block_id, 'costs', c.costs,
                              'updatedAt', ap.ts(c.updated_at))
$$;

CREATE OR REPLACE FUNCTION credits.put_block_costs(p_block_id text, p_costs jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_costs jsonb := '[]'::jsonb;
    e       jsonb;
    v_amt   numeric;
    v_row   credits.block_costs;
BEGIN
    PERFORM ap.check_ident('blockId', p_block_id);
    IF p_costs IS NULL OR jsonb_typeof(p_costs) <> 'array' THEN
        PERFORM ap.raise(400, 'invalid_costs', 'costs must be an array');
    END IF;
    IF jsonb_array_length(p_costs) > 100 THEN
        PERFORM ap.raise(400, 'invalid_costs', 'at most 100 cost entries per block');
    END IF;
    FOR e IN SELECT value FROM jsonb_array_elements(p_costs) LOOP
        IF jsonb_typeof(e) <> 'object' THEN
            PERFORM ap.raise(400, 'invalid_costs', 'each cost entry must be an object');
        END IF;
        IF coalesce(e->>'costType', '') NOT IN ('run', 'byte', 'second') THEN
            PERFORM ap.raise(400, 'invalid_cost_type', 'costType must be run, byte or second',
                             jsonb_build_object('costType', e->'costType'));
        END IF;
        IF jsonb_typeof(e->'amount') IS DISTINCT FROM 'number' THEN
            PERFORM ap.raise(400, 'invalid_amount', 'amount must be an integer');
        END IF;
        v_amt := (e->>'amount')::numeric;
        IF v_amt <> trunc(v_amt) OR v_amt < 0 OR v_amt > 9223372036854775807 THEN
            PERFORM ap.raise(400, 'invalid_amount',
                             'amount must be an integer between 0 and 9223372036854775807',
                             jsonb_build_object('amount', e->'amount'));
        END IF;
        IF e ? 'filter' AND jsonb_typeof(e->'filter') NOT IN ('object', 'null') THEN
            PERFORM ap.raise(400, 'invalid_filter', 'filter must be an object');
        END IF;
        v_costs := v_costs || jsonb_build_array(jsonb_build_object(
            'costType', e->>'costType',
            'amount', v_amt::bigint,
            'filter', coalesce(nullif(e->'filter', 'null'::jsonb), '{}'::jsonb)));
    END LOOP;
    INSERT INTO credits.block_costs AS c (block_id, costs)
    VALUES (p_block_id, v_costs)
    ON CONFLICT (block_id) DO UPDATE SET costs = EXCLUDED.costs, updated_at = now()
    RETURNING * INTO v_row;
    PERFORM feed.emit_data('credits.block_costs_updated',
                           jsonb_build_object('blockId', p_block_id, 'costs', v_costs));
    RETURN credits.block_costs_json(v_row);
END
$$;

CREATE OR REPLACE FUNCTION credits.get_block_costs(p_block_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_row credits.block_costs;
BEGIN
    PERFORM ap.check_ident('blockId', p_block_id);
    SELECT * INTO v_row FROM credits.block_costs WHERE block_id = p_block_id;
    IF NOT FOUND THEN
        PERFORM ap.raise(404, 'block_costs_not_found', 'no prices are set for this block',
                         jsonb_build_object('blockId', p_block_id));
    END IF;
    RETURN credits.block_costs_json(v_row);
END
$$;

CREATE OR REPLACE FUNCTION credits.list_block_costs(p_limit int, p_offset int)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_items jsonb;
BEGIN
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 100 OR p_offset IS NULL OR p_offset < 0 THEN
        PERFORM ap.raise(400, 'invalid_paging', 'limit must be 1-100 and offset >= 0');
    END IF;
    SELECT coalesce(jsonb_agg(credits.block_costs_json(c) ORDER BY c.block_id), '[]'::jsonb)
    INTO v_items
    FROM (SELECT * FROM credits.block_costs ORDER BY block_id LIMIT p_limit OFFSET p_offset) c;
    RETURN jsonb_build_object('blockCosts', v_items,
                              'count', jsonb_array_length(v_items),
                              'total', (SELECT count(*) FROM credits.block_costs),
                              'offset', p_offset, 'limit', p_limit);
END
$$;

------------------------------------------------------------------------------
-- Users
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION credits.user_json(u credits.users)
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
            updated_at = now()
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

------------------------------------------------------------------------------
-- Ledger internals
------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION credits.tx_json(t credits.transactions)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', t.id, 'userId', t.user_id, 'kind', t.kind, 'amount', t.amount,
        'runningBalance', t.running_balance, 'effectiveAt', ap.ts(t.effective_at),
        'period', to_char(t.period, 'YYYY-MM-DD'), 'isActive', t.is_active,
        'idempotencyKey', t.idempotency_key, 'blockId', t.block_id, 'holdId', t.hold_id,
        'metadata', t.metadata, 'createdAt', ap.ts(t.created_at))
$$;

-- Sum of the user's holds that still count (open and not expired).
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
CREATE OR REPLACE FUNCTION credits.ledger_event_body(t credits.transactions)
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
    INSERT INTO credits.balances (user_id, bucket, holds_until)
    VALUES (p_user_id, o_bucket,
            (SELECT max(h.expires_at) FROM credits.holds h
             WHERE h.user_id = p_user_id AND h.status = 'open'))
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
-- Operations
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

-- The careful spend: lock (with lazy refill), idempotent replay, holds,
-- 402. credits.spend falls back to it whenever its one-statement fast path
-- cannot decide.
DROP FUNCTION IF EXISTS credits._spend_locked(text, text, jsonb, double precision, bigint,
                                              boolean, text, jsonb, timestamptz);
CREATE FUNCTION credits._spend_locked(
    p_user_id text, p_block_id text, p_input jsonb, p_duration_seconds double precision,
    p_amount bigint, p_validate_balance boolean, p_idempotency_key text, p_metadata jsonb,
    p_at timestamptz,
    OUT transaction_id bigint, OUT cost bigint, OUT balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    v_at        timestamptz := coalesce(p_at, now());
    v_hash      uuid;
    v_available bigint;
    l           record;
    r           credits.transactions;
BEGIN
    SELECT * INTO l FROM credits._lock(p_user_id, v_at);

    IF p_idempotency_key IS NOT NULL THEN
        v_hash := credits._hash(jsonb_build_object(
            'op', 'spend', 'blockId', p_block_id, 'input', p_input,
            'durationSeconds', p_duration_seconds, 'amount', p_amount,
            'validateBalance', p_validate_balance, 'metadata', p_metadata, 'at', p_at));
        r := credits._replay(p_user_id, p_idempotency_key, v_hash);
        IF r.id IS NOT NULL THEN
            transaction_id := r.id;
            cost := -r.amount;
            balance := r.running_balance;
            RETURN;
        END IF;
    END IF;

    cost := coalesce(p_amount, credits.price(p_block_id, p_input, p_duration_seconds));

    IF p_validate_balance AND cost > 0 THEN
        v_available := l.o_balance;
        IF l.o_holds_until > now() THEN
            v_available := v_available - credits._held(p_user_id);
        END IF;
        IF v_available < cost THEN
            PERFORM ap.raise(402, 'insufficient_credits', 'not enough credits for this spend',
                jsonb_build_object('balance', l.o_balance, 'available', v_available,
                                   'cost', cost));
        END IF;
    END IF;

    SELECT p.o_id, p.o_balance INTO transaction_id, balance
    FROM credits._post(p_user_id, l.o_bucket, l.o_balance, l.o_thresholds, 'usage', -cost,
                       v_at, p_idempotency_key, v_hash, p_block_id, NULL, p_metadata) p;
END
$$;

-- POST /users/{userId}/credits/spend: one call from the client.
-- Fast path, one statement: a conditional UPDATE of the user's balance row
-- (only when the period is refilled, no hold counts, and the balance covers
-- the cost; the row lock serialises concurrent spends and the condition is
-- re-checked on the latest row), the ledger INSERT and the event row.
-- Anything else (first touch, refill due, live holds, idempotency key,
-- too little balance) goes to credits._spend_locked.
DROP FUNCTION IF EXISTS credits.spend(text, text, jsonb, double precision, bigint, boolean,
                                      text, jsonb, timestamptz);
CREATE FUNCTION credits.spend(
    p_user_id          text,
    p_block_id         text,
    p_input            jsonb            DEFAULT '{}',
    p_duration_seconds double precision DEFAULT NULL,
    p_amount           bigint           DEFAULT NULL,
    p_validate_balance boolean          DEFAULT true,
    p_idempotency_key  text             DEFAULT NULL,
    p_metadata         jsonb            DEFAULT NULL,
    p_at               timestamptz      DEFAULT NULL)
-- A named row type, not OUT parameters: a caller's plan then takes the
-- result's shape from the type cache instead of rebuilding it from the
-- function's catalog entry on every call (measured: 2% of a spend).
RETURNS credits.spent
LANGUAGE plpgsql
-- the hot statement's plan does not depend on its values: skip re-planning
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    v_at           timestamptz := coalesce(p_at, now());
    v_period       date := credits.month_of(coalesce(p_at, now()));
    v_thr          bigint[];
    transaction_id bigint;
    cost           bigint;
    balance        bigint;
BEGIN
    IF NOT ap.is_ident(p_block_id) THEN
        PERFORM ap.check_ident('blockId', p_block_id);
    END IF;
    p_validate_balance := coalesce(p_validate_balance, true);
    IF p_input IS NULL THEN
        p_input := '{}'::jsonb;
    ELSIF jsonb_typeof(p_input) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_input', 'input must be a JSON object');
    END IF;
    IF p_metadata IS NOT NULL AND jsonb_typeof(p_metadata) <> 'object' THEN
        PERFORM ap.raise(400, 'invalid_metadata', 'metadata must be a JSON object');
    END IF;
    IF p_amount IS NOT NULL AND p_amount <= 0 THEN
        PERFORM ap.raise(400, 'invalid_amount', 'amount must be > 0',
                         jsonb_build_object('amount', p_amount));
    END IF;
    IF p_duration_seconds IS NOT NULL
       AND NOT (p_duration_seconds >= 0 AND p_duration_seconds <= 1e15) THEN
        PERFORM ap.raise(400, 'invalid_duration', 'durationSeconds must be between 0 and 1e15');
    END IF;
    IF NOT isfinite(v_at) THEN
        PERFORM credits._refuse_infinite_at();
    END IF;

    IF p_idempotency_key IS NULL THEN
        -- MATERIALIZED: inlined, the price would be computed once per
        -- reference to c.cost (four times).
        WITH c AS MATERIALIZED (
            SELECT coalesce(p_amount,
                            (SELECT credits.cost_of(bc.costs, p_input, p_duration_seconds)
                             FROM credits.block_costs bc WHERE bc.block_id = p_block_id),
                            0) AS cost),
        m AS (
            UPDATE credits.balances b
            SET balance = b.balance - c.cost, updated_at = now()
            FROM credits.users u, c
            WHERE u.user_id = p_user_id
              AND b.user_id = p_user_id
              AND b.bucket = credits.bucket_of(u.refill_policy, v_period)
              AND (CASE u.refill_policy WHEN 'reset' THEN b.refilled
                                        WHEN 'top_up_to' THEN b.refilled_period >= v_period
                                        ELSE true END)
              AND (b.holds_until IS NULL OR b.holds_until <= now())
              AND (NOT p_validate_balance OR c.cost <= 0 OR b.balance >= c.cost)
            RETURNING b.balance AS new_balance, b.bucket, c.cost,
                      u.low_balance_thresholds AS thr),
        t AS (
            INSERT INTO credits.transactions (user_id, kind, amount, running_balance,
                                              effective_at, period, bucket, block_id, metadata)
            SELECT p_user_id, 'usage', -m.cost, m.new_balance, v_at, v_period, m.bucket,
                   p_block_id, coalesce(p_metadata, '{}'::jsonb)
            FROM m
            RETURNING id, amount, running_balance),
        -- The credits.changed event, written here rather than through
        -- feed.emit: part of this statement instead of a function call and a
        -- statement of its own (measured: calling feed.emit here costs 6% of
        -- a spend, 36k of 591k instructions). It names the ledger row; its body is rendered from that row
        -- when read (credits.ledger_event_body). It never sends NOTIFY. The
        -- UPDATE above has given the transaction its xid before this INSERT
        -- takes an event id, as the relay requires (sql/events.sql).
        e AS (
            INSERT INTO feed.events (type, user_id, ledger_id)
            SELECT 'credits.changed', p_user_id, t.id
            FROM t)
        SELECT t.id, -t.amount, t.running_balance, m.thr
        INTO transaction_id, cost, balance, v_thr
        FROM t, m;

        IF transaction_id IS NOT NULL THEN
            IF v_thr <> '{}' THEN
                PERFORM credits._low_balance(p_user_id, v_period, v_thr, balance + cost,
                                             balance);
            END IF;
            RETURN (transaction_id, cost, balance)::credits.spent;
        END IF;
    END IF;

    RETURN (SELECT (s.transaction_id, s.cost, s.balance)::credits.spent
            FROM credits._spend_locked(p_user_id, p_block_id, p_input, p_duration_seconds,
                                       p_amount, p_validate_balance, p_idempotency_key,
                                       p_metadata, p_at) s);
END
$$;

-- Several spends of one user in one transaction, in order: the server's spend
-- queue (src/db/spend_queue.rs) sends the spends that arrived while an
-- earlier one of the same user was in flight. Each item is exactly
-- credits.spend; what the batch saves is the wait for the balance row lock
-- and the commit, paid once for the batch instead of once per spend. Any
-- error rolls back the whole batch (the queue then replays its items one by
-- one, so each gets its own answer).
CREATE OR REPLACE FUNCTION credits.spend_batch(
    p_user_id          text,
    p_block_ids        text[],
    p_inputs           jsonb[],
    p_durations        double precision[],
    p_amounts          bigint[],
    p_validate         boolean[],
    p_keys             text[],
    p_metadata         jsonb[],
    p_at               timestamptz[])
RETURNS TABLE (transaction_id bigint, cost bigint, balance bigint)
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(cardinality(p_block_ids), 0);
BEGIN
    IF n > 1000 THEN
        PERFORM ap.raise(400, 'invalid_batch', 'at most 1000 spends per batch');
    END IF;
    IF coalesce(cardinality(p_inputs), 0) <> n OR coalesce(cardinality(p_durations), 0) <> n
       OR coalesce(cardinality(p_amounts), 0) <> n OR coalesce(cardinality(p_validate), 0) <> n
       OR coalesce(cardinality(p_keys), 0) <> n OR coalesce(cardinality(p_metadata), 0) <> n
       OR coalesce(cardinality(p_at), 0) <> n THEN
        PERFORM ap.raise(400, 'invalid_batch', 'every array must have one entry per spend');
    END IF;
    FOR i IN 1 .. n LOOP
        RETURN QUERY
        SELECT s.transaction_id, s.cost, s.balance
        FROM credits.spend(p_user_id, p_block_ids[i], p_inputs[i], p_durations[i],
                           p_amounts[i], p_validate[i], p_keys[i], p_metadata[i], p_at[i]) s;
    END LOOP;
END
$$;

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
    SELECT coalesce(jsonb_agg(credits.tx_json(t) ORDER BY t.effective_at DESC, t.id DESC),
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
RETURNS void LANGUAGE sql AS $$
    UPDATE credits.balances
    SET holds_until = (SELECT max(h.expires_at) FROM credits.holds h
                       WHERE h.user_id = p_user_id AND h.status = 'open')
    WHERE user_id = p_user_id AND bucket = p_bucket
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
