-- Agents domain: pause flag and counters on agents, threads, messages and the
-- durable inbox. Distribution keys (for Citus): agents by name, threads and
-- messages by thread_id, the inbox by agent. No foreign key crosses keys.

-- The agent row: pause is a flag of its own (the runtime's reported state is
-- kept underneath), plus counters the message path maintains.
ALTER TABLE agents.agents
    ADD COLUMN paused        boolean NOT NULL DEFAULT false,
    ADD COLUMN message_count bigint  NOT NULL DEFAULT 0,
    ADD CONSTRAINT agents_name_ident CHECK (name ~ '^[A-Za-z0-9._:@/-]{1,128}$'),
    ADD CONSTRAINT agents_text_sizes CHECK (
        length(description) <= 100000
        AND length(payload_class) <= 100000
        AND coalesce(length(root_tag), 0) <= 100000
        AND coalesce(length(schema_xsd), 0) <= 100000
        AND coalesce(length(example_xml), 0) <= 100000
        AND coalesce(length(model_provider), 0) <= 100000
        AND coalesce(length(model_name), 0) <= 100000
        AND coalesce(length(system_prompt), 0) <= 100000
        AND coalesce(length(user_prompt_template), 0) <= 100000
        AND coalesce(length(prompt_version), 0) <= 100000),
    ADD CONSTRAINT agents_peers_size CHECK (cardinality(peers) <= 1000);

CREATE TABLE agents.threads (
    id            text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:@/-]{1,128}$'),
    status        text NOT NULL DEFAULT 'active'
                  CHECK (status IN ('active', 'completed', 'error', 'killed')),
    participants  text[] NOT NULL DEFAULT '{}',
    message_count bigint NOT NULL DEFAULT 0,
    error         text CHECK (length(error) <= 100000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_activity timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz
);
CREATE INDEX threads_last_activity ON agents.threads (last_activity DESC, id DESC);
CREATE INDEX threads_status ON agents.threads (status, last_activity DESC);
CREATE INDEX threads_participants ON agents.threads USING gin (participants);

-- Every message ever sent (history). `seq` orders messages; `id` is the
-- public UUID.
CREATE TABLE agents.messages (
    thread_id    text NOT NULL REFERENCES agents.threads (id) ON DELETE CASCADE,
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    from_agent   text NOT NULL CHECK (from_agent ~ '^[A-Za-z0-9._:@/-]{1,128}$'),
    to_agent     text NOT NULL CHECK (to_agent ~ '^[A-Za-z0-9._:@/-]{1,128}$'),
    payload_type text NOT NULL CHECK (payload_type ~ '^[A-Za-z0-9._:@/-]{1,128}$'),
    payload      jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id)
);
CREATE INDEX messages_thread ON agents.messages (thread_id, seq);
CREATE INDEX messages_from ON agents.messages (from_agent, seq);
CREATE INDEX messages_to ON agents.messages (to_agent, seq);
CREATE INDEX messages_seq ON agents.messages (seq);

-- The durable inbox: one row per message not yet acknowledged by its
-- receiver. A row is claimable when `visible_at <= now()`; a claim pushes
-- `visible_at` forward by the visibility timeout (pgmq style), an ack
-- deletes the row. Removing an agent removes its pending inbox.
CREATE TABLE agents.inbox (
    agent        text NOT NULL REFERENCES agents.agents (name) ON DELETE CASCADE,
    message_id   uuid NOT NULL,
    thread_id    text NOT NULL,
    seq          bigint NOT NULL,
    enqueued_at  timestamptz NOT NULL DEFAULT now(),
    visible_at   timestamptz NOT NULL DEFAULT now(),
    read_count   integer NOT NULL DEFAULT 0,
    last_read_at timestamptz,
    PRIMARY KEY (message_id)
);
CREATE INDEX inbox_claim ON agents.inbox (agent, visible_at, seq);
CREATE INDEX inbox_thread ON agents.inbox (thread_id);
