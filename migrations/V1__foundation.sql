-- Foundation: schemas, API keys, the organism row, the agent table that
-- several domains hang off, and the event table every domain writes to.
-- Never edit once landed: later changes are new migrations.

CREATE SCHEMA IF NOT EXISTS ap;         -- shared helpers (errors, validation)
CREATE SCHEMA IF NOT EXISTS auth;       -- API keys
CREATE SCHEMA IF NOT EXISTS feed;       -- the event log behind the live feed
CREATE SCHEMA IF NOT EXISTS agents;     -- agents, organism, threads, messages
CREATE SCHEMA IF NOT EXISTS reporting;  -- stable views for analysts

-- Keys are stored as SHA-256 hex of the secret; the secret is shown once.
CREATE TABLE auth.api_keys (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    role        text NOT NULL CHECK (role IN ('admin', 'service', 'reader')),
    user_id     text,
    key_hash    text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- One row: this deployment. Shared by every server instance on the database.
CREATE TABLE agents.organism (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    status      text NOT NULL DEFAULT 'running'
                CHECK (status IN ('starting', 'running', 'stopping', 'stopped')),
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO agents.organism DEFAULT VALUES;

-- Registered agents (and non-agent capabilities). The AgentConfig fields are
-- columns so variants can fall back to them field by field.
CREATE TABLE agents.agents (
    name                 text PRIMARY KEY,
    description          text NOT NULL DEFAULT '',
    is_agent             boolean NOT NULL DEFAULT true,
    peers                text[] NOT NULL DEFAULT '{}',
    payload_class        text NOT NULL DEFAULT '',
    root_tag             text,
    schema_xsd           text,
    example_xml          text,
    state                text NOT NULL DEFAULT 'idle'
                         CHECK (state IN ('idle', 'processing', 'waiting', 'error', 'paused')),
    current_thread       text,
    last_activity        timestamptz,
    -- AgentConfig
    model_provider       text,
    model_name           text,
    system_prompt        text,
    user_prompt_template text,
    prompt_version       text,
    temperature          double precision CHECK (temperature BETWEEN 0 AND 2),
    max_tokens           integer CHECK (max_tokens >= 1),
    context_window       integer,
    input_token_limit    integer,
    token_budget         bigint,
    timeout_seconds      integer CHECK (timeout_seconds >= 1),
    max_retries          integer CHECK (max_retries BETWEEN 0 AND 10),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- The event log. `id` is strictly increasing in insert order; `xid` lets the
-- relay read only rows whose transaction can no longer commit "behind" it.
-- Subject columns are what WebSocket filters match on; `body` holds the
-- type-specific top-level fields of the pushed event.
CREATE TABLE feed.events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    type          text NOT NULL,
    user_id       text,
    agents        text[] NOT NULL DEFAULT '{}',
    thread_id     text,
    payload_type  text,
    graph_id      text,
    graph_exec_id text,
    body          jsonb NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_created_at ON feed.events (created_at);

-- Read-only role for analysts; it is granted the reporting views only.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'agentplane_reporting') THEN
        CREATE ROLE agentplane_reporting NOLOGIN;
    END IF;
EXCEPTION WHEN unique_violation OR duplicate_object THEN
    NULL; -- another database on this cluster created it at the same moment
END
$$;
