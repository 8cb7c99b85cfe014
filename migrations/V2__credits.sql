-- Credits: users and their refill policy, the append-only ledger, one O(1)
-- balance row per (user, period), holds, block prices, low-balance alerts.
-- Every per-user table carries user_id first (the Citus distribution key) and
-- has no foreign key to another user's rows; credits.block_costs is a small
-- reference table.

CREATE SCHEMA IF NOT EXISTS credits;

CREATE TABLE credits.users (
    user_id                text PRIMARY KEY,
    refill_amount          bigint NOT NULL DEFAULT 1000 CHECK (refill_amount >= 0),
    refill_policy          text NOT NULL DEFAULT 'reset'
                           CHECK (refill_policy IN ('reset', 'top_up_to', 'none')),
    low_balance_thresholds bigint[] NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);

-- The balance of one bucket: for policy `reset` the bucket is the calendar
-- month (its first day); for `top_up_to` and `none` it is the single running
-- bucket '-infinity'. balance = sum(amount) of the bucket's active ledger rows.
CREATE TABLE credits.balances (
    user_id          text NOT NULL,
    bucket           date NOT NULL,
    balance          bigint NOT NULL DEFAULT 0,
    -- reset: whether the bucket has its active refill row
    refilled         boolean NOT NULL DEFAULT false,
    -- running buckets: the latest month whose top-up-to grant was decided
    refilled_period  date,
    -- no open hold of the user can count after this instant (a cheap filter
    -- that lets the hot path skip the holds sum)
    holds_until      timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, bucket)
);

CREATE TABLE credits.transactions (
    user_id          text NOT NULL,
    id               bigint GENERATED ALWAYS AS IDENTITY,
    kind             text NOT NULL
                     CHECK (kind IN ('refill', 'top_up', 'usage', 'grant', 'refund', 'adjustment')),
    amount           bigint NOT NULL,
    running_balance  bigint NOT NULL,
    effective_at     timestamptz NOT NULL,
    period           date NOT NULL,          -- calendar month of effective_at (UTC)
    bucket           date NOT NULL,          -- the balance row this row counts in
    is_active        boolean NOT NULL DEFAULT true,
    idempotency_key  text,
    request_hash     uuid,
    block_id         text,
    hold_id          uuid,
    metadata         jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id),
    CHECK (amount <> 0 OR kind IN ('usage', 'refill')),
    CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 255)
);
CREATE UNIQUE INDEX transactions_idempotency
    ON credits.transactions (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
-- history, newest first by effective time then id
CREATE INDEX transactions_history
    ON credits.transactions (user_id, effective_at DESC, id DESC);
-- at most one active refill per user, bucket and month
CREATE UNIQUE INDEX transactions_one_refill
    ON credits.transactions (user_id, bucket, period) WHERE kind = 'refill' AND is_active;

CREATE TABLE credits.holds (
    user_id          text NOT NULL,
    id               uuid NOT NULL,
    amount           bigint NOT NULL CHECK (amount >= 0),
    block_id         text,
    status           text NOT NULL DEFAULT 'open'
                     CHECK (status IN ('open', 'settled', 'released')),
    expires_at       timestamptz NOT NULL,
    available_after  bigint NOT NULL,        -- the answer of the reserve call
    idempotency_key  text,
    request_hash     uuid,
    settled_amount   bigint,
    transaction_id   bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    PRIMARY KEY (user_id, id),
    CHECK (idempotency_key IS NULL OR length(idempotency_key) BETWEEN 1 AND 255)
);
CREATE UNIQUE INDEX holds_idempotency
    ON credits.holds (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX holds_open ON credits.holds (user_id, expires_at) WHERE status = 'open';

-- One credits.low_balance event per (user, month, threshold).
CREATE TABLE credits.low_balance_alerts (
    user_id     text NOT NULL,
    period      date NOT NULL,
    threshold   bigint NOT NULL,
    balance     bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, period, threshold)
);

-- Block prices (reference table): an ordered array of
-- {costType: run|byte|second, amount, filter}.
CREATE TABLE credits.block_costs (
    block_id    text PRIMARY KEY,
    costs       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(costs) = 'array'),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
