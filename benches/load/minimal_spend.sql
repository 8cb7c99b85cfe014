-- The baseline of spend function overhead: one conditional UPDATE plus one INSERT, on the
-- same 10,000 user ids. Shared by benches/load/setup.rs and
-- scripts/instructions.sh.
CREATE SCHEMA IF NOT EXISTS bench;
CREATE TABLE bench.min_balance (user_id text PRIMARY KEY, balance bigint NOT NULL);
CREATE TABLE bench.min_ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id text NOT NULL, amount bigint NOT NULL, balance bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now());
INSERT INTO bench.min_balance SELECT 'bu' || i, 1000000000 FROM generate_series(1, 10000) i;
CREATE FUNCTION bench.min_spend(p_user text, p_cost bigint) RETURNS void LANGUAGE sql AS $$
    WITH u AS (UPDATE bench.min_balance SET balance = balance - p_cost
               WHERE user_id = p_user AND balance >= p_cost RETURNING user_id, balance)
    INSERT INTO bench.min_ledger (user_id, amount, balance)
    SELECT user_id, -p_cost, balance FROM u
$$;
