-- The reporting schema: stable views for analysts (documented in README.md).
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
LEFT JOIN variants.variants v ON v.id = p.variant_id
GROUP BY p.agent_name, p.variant_id, v.slug, v.name, v.is_active,
         date_trunc('day', p.at, 'UTC');

-- Grants: the read-only role reads the reporting views and nothing else.
GRANT USAGE ON SCHEMA reporting TO agentplane_reporting;
GRANT SELECT ON ALL TABLES IN SCHEMA reporting TO agentplane_reporting;
