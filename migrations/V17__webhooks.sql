-- Webhook endpoints and their delivery attempts (docs/webhooks.md).
-- Never edit once landed: later changes are new migrations.

CREATE SCHEMA IF NOT EXISTS webhooks;

-- One row per endpoint, with its delivery position: the servers' delivery
-- workers share it, so a restart or a second server continues where the
-- last record left off.
CREATE TABLE webhooks.endpoints (
    id            uuid PRIMARY KEY,
    url           text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events        text[] NOT NULL DEFAULT '{}',
    users         text[] NOT NULL DEFAULT '{}',
    agents        text[] NOT NULL DEFAULT '{}',
    description   text CHECK (length(description) <= 1000),
    -- `whsec_` + base64 of the key bytes, as shown once at creation; every
    -- server signs with it (docs/security.md says why it is stored as given).
    secret        text NOT NULL,
    enabled       boolean NOT NULL DEFAULT true,
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- Every event with an id up to here is delivered, or did not match.
    position      bigint NOT NULL CHECK (position >= 0),
    -- Failed attempts at the event after `position`, and when the first of
    -- them was made (the disabling window counts from there).
    failures      integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    failing_since timestamptz,
    -- No attempt before this instant (retry delays).
    due_at        timestamptz NOT NULL DEFAULT now(),
    -- The worker delivering to this endpoint now, until its lease ends.
    lease_owner   uuid,
    lease_until   timestamptz,
    disabled_at   timestamptz
);

-- Every attempt, in the order made.
CREATE TABLE webhooks.deliveries (
    endpoint_id     uuid NOT NULL REFERENCES webhooks.endpoints (id) ON DELETE CASCADE,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    event_id        bigint NOT NULL,
    attempt         integer NOT NULL CHECK (attempt >= 1),
    at              timestamptz NOT NULL,
    response_status integer,
    error           text,
    duration_ms     integer NOT NULL CHECK (duration_ms >= 0),
    delivered       boolean NOT NULL,
    PRIMARY KEY (endpoint_id, id)
);
-- Retention prunes by time.
CREATE INDEX deliveries_at ON webhooks.deliveries (at);
