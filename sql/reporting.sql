-- The reporting schema: stable views for analysts (documented in README.md).
-- Views are dropped and recreated on every start so a column change never
-- blocks startup; grants are re-applied at the end of this file.
-- Each domain adds its views in its own section below.

-- (domain sections)

-- credits ------------------------------------------------------------------
-- Every ledger row, active or not (is_active says whether it counts).
DROP VIEW IF EXISTS reporting.credit_ledger CASCADE;
CREATE VIEW reporting.credit_ledger AS
SELECT t.id, t.user_id, t.kind, t.amount, t.running_balance, t.effective_at, t.period,
       t.is_active, t.idempotency_key, t.block_id, t.hold_id, t.metadata, t.created_at
FROM credits.transactions t;

-- Each user's balance in the current month (UTC), as the API would answer it:
-- a period nobody touched yet shows the balance its lazy refill will give.
DROP VIEW IF EXISTS reporting.user_balances CASCADE;
CREATE VIEW reporting.user_balances AS
SELECT u.user_id, u.refill_policy, u.refill_amount,
       credits.month_of(now()) AS period,
       CASE
           WHEN u.refill_policy = 'reset' AND NOT coalesce(b.refilled, false)
               THEN coalesce(b.balance, 0) + u.refill_amount
           WHEN u.refill_policy = 'top_up_to'
                AND (b.refilled_period IS NULL OR b.refilled_period < credits.month_of(now()))
               THEN greatest(coalesce(b.balance, 0), u.refill_amount)
           ELSE coalesce(b.balance, 0)
       END AS balance,
       coalesce(h.held, 0)::bigint AS held,
       (b.user_id IS NOT NULL
        AND CASE u.refill_policy
                WHEN 'reset' THEN b.refilled
                WHEN 'top_up_to' THEN b.refilled_period >= credits.month_of(now())
                ELSE true END) AS touched,
       b.updated_at
FROM credits.users u
LEFT JOIN credits.balances b
       ON b.user_id = u.user_id
      AND b.bucket = credits.bucket_of(u.refill_policy, credits.month_of(now()))
LEFT JOIN LATERAL (
    SELECT sum(x.amount) AS held FROM credits.holds x
    WHERE x.user_id = u.user_id AND x.status = 'open' AND x.expires_at > now()) h ON true;

-- Grants: the read-only role reads the reporting views and nothing else.
GRANT USAGE ON SCHEMA reporting TO agentplane_reporting;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO agentplane_reporting;
