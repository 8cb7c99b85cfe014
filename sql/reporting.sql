-- The reporting schema: stable views for analysts (documented column by
-- column in docs/reporting.md).
-- Views are dropped and recreated on every start so a column change never
-- blocks startup; grants are re-applied at the end of this file.
-- Each domain adds its views in its own section below.

-- (domain sections)

-- variants: one row per agent, variant (NULL: runs with no variant) and UTC day.
DROP VIEW IF EXISTS reporting.variant_performance CASCADE;
CREATE VIEW reporting.variant_performance AS
SELECT p.agent_name,
       p.variant_id,
       v.slug                                                  AS variant_slug,
       v.name                                                  AS variant_name,
       coalesce(v.is_active, false)                            AS is_active,
       (date_trunc('day', p.at, 'UTC') AT TIME ZONE 'UTC')::date AS day,
       count(*)                                                AS runs,
       count(*) FILTER (WHERE p.success)                       AS successes,
       count(*) FILTER (WHERE p.success)::double precision / count(*) AS success_rate,
       avg(p.latency_ms)                                       AS avg_latency_ms,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY p.latency_ms)  AS p50_latency_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY p.latency_ms) AS p95_latency_ms,
       coalesce(sum(p.prompt_tokens), 0)                       AS prompt_tokens,
       coalesce(sum(p.completion_tokens), 0)                   AS completion_tokens,
       coalesce(sum(coalesce(p.prompt_tokens, 0) + coalesce(p.completion_tokens, 0)), 0) AS total_tokens,
       round(coalesce(sum(p.cost), 0), 4)                      AS total_cost,
       avg(p.quality_score)                                    AS avg_quality_score
FROM variants.performance p
-- (the agent too: on Citus, both tables are placed by agent)
LEFT JOIN variants.variants v ON v.agent_name = p.agent_name AND v.id = p.variant_id
GROUP BY p.agent_name, p.variant_id, v.slug, v.name, v.is_active,
         date_trunc('day', p.at, 'UTC');
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
-- usage --------------------------------------------------------------------
DROP VIEW IF EXISTS reporting.usage_records CASCADE;
CREATE VIEW reporting.usage_records AS
SELECT r.id, r.thread_id, r.agent_id, r.model, r.provider, r.prompt_tokens,
       r.completion_tokens, r.prompt_tokens + r.completion_tokens AS total_tokens,
       r.latency_ms, r.cost, p.model AS priced_as, p.prompt_per_million,
       p.completion_per_million, r.user_id, r.variant_id, r.metadata, r.epoch, r.created_at,
       r.cached_prompt_tokens, r.cache_write_tokens, r.reasoning_tokens, r.price_id,
       p.cached_prompt_per_million, p.cache_write_per_million, p.reasoning_per_million,
       p.tiers AS price_tiers
FROM usage.records r
LEFT JOIN usage.model_prices p ON p.id = r.price_id;

DROP VIEW IF EXISTS reporting.usage_daily CASCADE;
CREATE VIEW reporting.usage_daily AS
SELECT day, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(prompt_tokens + completion_tokens) AS total_tokens,
       sum(request_count) AS request_count, sum(cost) AS total_cost,
       sum(cached_prompt_tokens) AS cached_prompt_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(reasoning_tokens) AS reasoning_tokens
FROM usage.daily_usage
GROUP BY day;

DROP VIEW IF EXISTS reporting.usage_by_agent CASCADE;
CREATE VIEW reporting.usage_by_agent AS
SELECT g.epoch, e.started_at AS epoch_started_at, e.id = (SELECT max(id) FROM usage.epochs) AS is_current_epoch,
       nullif(g.agent_id, '') AS agent_id,
       sum(g.prompt_tokens) AS prompt_tokens, sum(g.completion_tokens) AS completion_tokens,
       sum(g.prompt_tokens + g.completion_tokens) AS total_tokens,
       sum(g.request_count) AS request_count, sum(g.cost) AS total_cost,
       CASE WHEN sum(g.latency_count) > 0
            THEN round(sum(g.latency_sum)::numeric / sum(g.latency_count), 1) END AS avg_latency_ms,
       sum(g.cached_prompt_tokens) AS cached_prompt_tokens,
       sum(g.cache_write_tokens) AS cache_write_tokens, sum(g.reasoning_tokens) AS reasoning_tokens
FROM usage.agent_usage g
JOIN usage.epochs e ON e.id = g.epoch
GROUP BY g.epoch, e.started_at, e.id, g.agent_id;

DROP VIEW IF EXISTS reporting.usage_by_model CASCADE;
CREATE VIEW reporting.usage_by_model AS
SELECT g.epoch, e.started_at AS epoch_started_at, e.id = (SELECT max(id) FROM usage.epochs) AS is_current_epoch,
       g.model,
       sum(g.prompt_tokens) AS prompt_tokens, sum(g.completion_tokens) AS completion_tokens,
       sum(g.prompt_tokens + g.completion_tokens) AS total_tokens,
       sum(g.request_count) AS request_count, sum(g.cost) AS total_cost,
       CASE WHEN sum(g.latency_count) > 0
            THEN round(sum(g.latency_sum)::numeric / sum(g.latency_count), 1) END AS avg_latency_ms,
       sum(g.cached_prompt_tokens) AS cached_prompt_tokens,
       sum(g.cache_write_tokens) AS cache_write_tokens, sum(g.reasoning_tokens) AS reasoning_tokens
FROM usage.model_usage g
JOIN usage.epochs e ON e.id = g.epoch
GROUP BY g.epoch, e.started_at, e.id, g.model;

-- Each repricing run (POST /usage/reprice) and each record it changed.
DROP VIEW IF EXISTS reporting.usage_repricings CASCADE;
CREATE VIEW reporting.usage_repricings AS
SELECT x.reprice_id, x.at, x.range_start AS start, x.range_end AS "end", x.model, x.records,
       x.changed, x.previous_cost, x.new_cost
FROM usage.repricings x;

DROP VIEW IF EXISTS reporting.usage_cost_changes CASCADE;
CREATE VIEW reporting.usage_cost_changes AS
SELECT c.reprice_id, c.record_id, c.previous_cost, c.new_cost
FROM usage.cost_changes c;

-- Grants: the read-only role reads the reporting views and nothing else.
GRANT USAGE ON SCHEMA reporting TO agentplane_reporting;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO agentplane_reporting;
