-- Credits: spends. The one-statement fast path, the careful path it falls
-- back to, and the batch the server's spend queue sends.

-- The careful spend: lock (with lazy refill), idempotent replay, holds,
-- 402. credits.spend falls back to it whenever its one-statement fast path
-- cannot decide.
-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
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
-- Dropped and created again: CREATE OR REPLACE cannot change the result type,
-- parameter names or defaults an earlier version's definition may have.
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

    -- On Citus the fast path's one statement would write the ledger (on a
    -- worker) and the feed (on the coordinator) together, which Citus cannot
    -- plan: every spend takes the careful path there (citus.version is a
    -- setting only a server with Citus loaded has).
    IF p_idempotency_key IS NULL AND current_setting('citus.version', true) IS NULL THEN
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
        -- takes an event id, as the relay requires (sql/feed.sql).
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

-- On Citus, where the fast path is not taken, the careful path's joins of
-- distributed tables cannot be planned generically (with their parameters
-- unknown): the spend keeps the default plan cache mode there.
DO $$
BEGIN
    IF current_setting('citus.version', true) IS NOT NULL THEN
        ALTER FUNCTION credits.spend(text, text, jsonb, double precision, bigint, boolean,
                                     text, jsonb, timestamptz) RESET plan_cache_mode;
    END IF;
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
