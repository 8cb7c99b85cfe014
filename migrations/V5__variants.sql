-- Agent variants: alternative AgentConfigs of one agent, at most one active,
-- the activation history, and the per-run performance log.
-- Never edit once landed: later changes are new migrations.

CREATE SCHEMA IF NOT EXISTS variants;

-- A variant's config columns mirror agents.agents; NULL means "use the
-- agent's value" when the config is resolved.
CREATE TABLE variants.variants (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    agent_name           text NOT NULL REFERENCES agents.agents (name)
                         ON DELETE CASCADE ON UPDATE CASCADE,
    name                 text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    slug                 text NOT NULL
                         CHECK (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$'
                                AND length(slug) <= 128
                                AND slug NOT IN ('clone', 'compare', 'deactivate')),
    is_active            boolean NOT NULL DEFAULT false,
    -- AgentConfig
    model_provider       text CHECK (length(model_provider) <= 100000),
    model_name           text CHECK (length(model_name) <= 100000),
    system_prompt        text CHECK (length(system_prompt) <= 100000),
    user_prompt_template text CHECK (length(user_prompt_template) <= 100000),
    prompt_version       text CHECK (length(prompt_version) <= 100000),
    temperature          double precision CHECK (temperature BETWEEN 0 AND 2),
    max_tokens           integer CHECK (max_tokens >= 1),
    context_window       integer CHECK (context_window >= 0),
    input_token_limit    integer CHECK (input_token_limit >= 0),
    token_budget         bigint CHECK (token_budget >= 0),
    timeout_seconds      integer CHECK (timeout_seconds >= 1),
    max_retries          integer CHECK (max_retries BETWEEN 0 AND 10),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agent_name, slug)
);

-- The single-active rule: at most one active variant per agent, at every
-- instant (a partial unique index cannot be deferred, so activation must
-- deactivate the old row first; see variants.activate).
CREATE UNIQUE INDEX variants_one_active ON variants.variants (agent_name) WHERE is_active;

-- Every activation (variant_id set) and deactivation (variant_id NULL), so the
-- variant active at any past moment can be answered.
CREATE TABLE variants.activations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_name  text NOT NULL,
    variant_id  uuid,
    at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX activations_agent_at ON variants.activations (agent_name, at DESC, id DESC);

-- One row per run reported by a runtime. Hot, append-only: keyed by
-- agent_name, no foreign keys (a deleted variant keeps its history).
CREATE TABLE variants.performance (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_name        text NOT NULL,
    variant_id        uuid,
    success           boolean NOT NULL,
    latency_ms        double precision NOT NULL CHECK (latency_ms >= 0),
    prompt_tokens     bigint CHECK (prompt_tokens >= 0),
    completion_tokens bigint CHECK (completion_tokens >= 0),
    cost              numeric(20, 6) CHECK (cost >= 0),
    quality_score     double precision,
    error             text CHECK (length(error) <= 100000),
    at                timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX performance_agent_variant_at ON variants.performance (agent_name, variant_id, at);
