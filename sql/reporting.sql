-- The reporting schema: stable views for analysts (documented in README.md).
-- Views are dropped and recreated on every start so a column change never
-- blocks startup; grants are re-applied at the end of this file.
-- Each domain adds its views in its own section below.

-- (domain sections)

-- Usage (CONTRACT §3) ------------------------------------------------------
DROP VIEW IF EXISTS reporting.usage_records CASCADE;
CREATE VIEW reporting.usage_records AS
SELECT r.id, r.thread_id, r.agent_id, r.model, r.provider, r.prompt_tokens,
       r.completion_tokens, r.prompt_tokens + r.completion_tokens AS total_tokens,
       r.latency_ms, r.cost, p.model AS priced_as, p.prompt_per_million,
       p.completion_per_million, r.user_id, r.variant_id, r.metadata, r.epoch, r.created_at
FROM usage.records r
LEFT JOIN usage.model_prices p ON p.id = r.price_id;

DROP VIEW IF EXISTS reporting.usage_daily CASCADE;
CREATE VIEW reporting.usage_daily AS
SELECT day, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
       sum(prompt_tokens + completion_tokens) AS total_tokens,
       sum(request_count) AS request_count, sum(cost) AS total_cost
FROM usage.daily_rollup
GROUP BY day;

DROP VIEW IF EXISTS reporting.usage_by_agent CASCADE;
CREATE VIEW reporting.usage_by_agent AS
SELECT g.epoch, e.started_at AS epoch_started_at, e.id = (SELECT max(id) FROM usage.epochs) AS is_current_epoch,
       nullif(g.agent_id, '') AS agent_id,
       sum(g.prompt_tokens) AS prompt_tokens, sum(g.completion_tokens) AS completion_tokens,
       sum(g.prompt_tokens + g.completion_tokens) AS total_tokens,
       sum(g.request_count) AS request_count, sum(g.cost) AS total_cost,
       CASE WHEN sum(g.latency_count) > 0
            THEN round(sum(g.latency_sum)::numeric / sum(g.latency_count), 1) END AS avg_latency_ms
FROM usage.agent_rollup g
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
            THEN round(sum(g.latency_sum)::numeric / sum(g.latency_count), 1) END AS avg_latency_ms
FROM usage.model_rollup g
JOIN usage.epochs e ON e.id = g.epoch
GROUP BY g.epoch, e.started_at, e.id, g.model;

-- Grants: the read-only role reads the reporting views and nothing else.
GRANT USAGE ON SCHEMA reporting TO agentplane_reporting;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO agentplane_reporting;
