-- Agents, organism, threads, messages, inbox.

-- The organism (this deployment): status and counts.
CREATE OR REPLACE FUNCTION agents.organism_status()
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'status', o.status,
        'startedAt', ap.ts(o.started_at),
        'agentCount', (SELECT count(*) FROM agents.agents))
    FROM agents.organism o
$$;
