-- Usage metering and per-thread token budgets (CONTRACT §3).
--
-- Distribution keys (Citus-ready): records and budgets by thread_id, the
-- agent rollup by agent_id, the model rollup by model, the daily rollup by
-- day, prices by model. No foreign keys on the hot tables; a record refers to
-- the immutable price version it was costed at by id only.

CREATE SCHEMA IF NOT EXISTS usage;

-- Usage epochs: a reset starts a new one; totals count from the newest.
CREATE TABLE usage.epochs (
    id          integer PRIMARY KEY,
    started_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO usage.epochs (id, started_at) VALUES (1, now());

-- Model prices, append-only: a change is a new version. `model` is the
-- lower-case prefix key; lookups are case-insensitive, longest prefix first.
CREATE TABLE usage.model_prices (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    model                   text NOT NULL CHECK (model = lower(model) AND model ~ '^[a-z0-9._:@/-]{1,128}$'),
    provider                text NOT NULL CHECK (length(provider) BETWEEN 1 AND 128),
    prompt_per_million      numeric(20, 6) NOT NULL CHECK (prompt_per_million >= 0),
    completion_per_million  numeric(20, 6) NOT NULL CHECK (completion_per_million >= 0),
    effective_from          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_prices_model_from ON usage.model_prices (model, effective_from DESC, id DESC);

-- Shipped defaults, effective from the Unix epoch so back-dated records
-- (`at`) are costed too.
INSERT INTO usage.model_prices (model, provider, prompt_per_million, completion_per_million, effective_from)
VALUES ('grok-4.1',          'xai',       3,    15,  '1970-01-01T00:00:00Z'),
       ('grok-3',            'xai',       3,    15,  '1970-01-01T00:00:00Z'),
       ('claude-opus-4',     'anthropic', 15,   75,  '1970-01-01T00:00:00Z'),
       ('claude-sonnet-4',   'anthropic', 3,    15,  '1970-01-01T00:00:00Z'),
       ('claude-sonnet-3-5', 'anthropic', 3,    15,  '1970-01-01T00:00:00Z'),
       ('gpt-4o',            'openai',    2.5,  10,  '1970-01-01T00:00:00Z'),
       ('gpt-4o-mini',       'openai',    0.15, 0.6, '1970-01-01T00:00:00Z'),
       ('o1',                'openai',    15,   60,  '1970-01-01T00:00:00Z'),
       ('o3-mini',           'openai',    1.1,  4.4, '1970-01-01T00:00:00Z');

-- One row per LLM call. Append-only. `cost` is NULL when the model has no
-- price; `price_id` is the price version it was costed at.
CREATE TABLE usage.records (
    id                 bigint GENERATED ALWAYS AS IDENTITY,
    thread_id          text COLLATE "C" NOT NULL CHECK (length(thread_id) BETWEEN 1 AND 128),
    agent_id           text COLLATE "C" CHECK (length(agent_id) BETWEEN 1 AND 128),
    model              text COLLATE "C" NOT NULL CHECK (length(model) BETWEEN 1 AND 128),
    provider           text CHECK (length(provider) BETWEEN 1 AND 128),
    prompt_tokens      bigint NOT NULL CHECK (prompt_tokens >= 0),
    completion_tokens  bigint NOT NULL CHECK (completion_tokens >= 0),
    latency_ms         bigint CHECK (latency_ms >= 0),
    cost               numeric(20, 6),
    price_id           bigint,
    user_id            text CHECK (length(user_id) BETWEEN 1 AND 128),
    variant_id         text CHECK (length(variant_id) BETWEEN 1 AND 128),
    metadata           jsonb NOT NULL DEFAULT '{}',
    epoch              integer NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, thread_id)
);
-- Few and cheap indexes, for ingest speed: the primary key (id order =
-- history order), BRIN on time (history/daily ranges; records arrive roughly
-- in time order), and a hash index on the thread (the distribution key) for
-- per-thread history. Identifier columns use the "C" collation: byte
-- comparisons, much cheaper than a locale's in every index and rollup key.
CREATE INDEX records_created_brin ON usage.records USING brin (created_at);
CREATE INDEX records_thread ON usage.records USING hash (thread_id);

-- Per-thread token budgets. `fired` holds the thresholds (percent) whose
-- event was written; `fired_now` and `joined_epoch` are what the last update
-- changed (PostgreSQL 15 has no RETURNING OLD), read back in the same statement.
CREATE TABLE usage.thread_budgets (
    thread_id          text COLLATE "C" PRIMARY KEY,
    max_tokens         bigint NOT NULL CHECK (max_tokens >= 1),
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    fired              smallint[] NOT NULL DEFAULT '{}',
    fired_now          smallint[] NOT NULL DEFAULT '{}',
    last_epoch         integer,
    joined_epoch       boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 70);

-- Rollups, updated in the same transaction as the records. Each key is split
-- into shards (the writer's backend pid modulo 16) so concurrent writers do
-- not queue on one hot row; readers sum the shards.
CREATE TABLE usage.agent_rollup (
    epoch              integer NOT NULL,
    agent_id           text COLLATE "C" NOT NULL,  -- '' = records without an agent
    shard              smallint NOT NULL,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    request_count      bigint NOT NULL DEFAULT 0,
    cost               numeric NOT NULL DEFAULT 0,
    latency_sum        bigint NOT NULL DEFAULT 0,
    latency_count      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (epoch, agent_id, shard)
) WITH (fillfactor = 50);

CREATE TABLE usage.model_rollup (
    epoch              integer NOT NULL,
    model              text COLLATE "C" NOT NULL,  -- lower-case model as recorded
    shard              smallint NOT NULL,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    request_count      bigint NOT NULL DEFAULT 0,
    cost               numeric NOT NULL DEFAULT 0,
    latency_sum        bigint NOT NULL DEFAULT 0,
    latency_count      bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (epoch, model, shard)
) WITH (fillfactor = 50);

-- Per UTC day, across epochs (the daily series sees every record).
CREATE TABLE usage.daily_rollup (
    day                date NOT NULL,
    shard              smallint NOT NULL,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    request_count      bigint NOT NULL DEFAULT 0,
    cost               numeric NOT NULL DEFAULT 0,
    PRIMARY KEY (day, shard)
) WITH (fillfactor = 50);

-- Threads with at least one record in an epoch (activeThreads).
CREATE TABLE usage.epoch_rollup (
    epoch              integer NOT NULL,
    shard              smallint NOT NULL,
    active_threads     bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (epoch, shard)
) WITH (fillfactor = 50);
