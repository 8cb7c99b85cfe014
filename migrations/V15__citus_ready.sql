-- The schema as Citus can distribute it (sql/citus/distribute.sql): every
-- primary key of a distributed table includes its distribution column, no
-- trigger on a distributed table, no ON UPDATE action on a foreign key between
-- them, colocated keys of one collation, and no function taking a table's row
-- type (the row helpers take `anyelement` now, recreated by sql/).

-- Keys that include the distribution column. Lookups by the id alone keep an
-- index of their own (a plain one: on Citus such a lookup asks every shard).
ALTER TABLE credits.transactions DROP CONSTRAINT transactions_pkey,
    ADD CONSTRAINT transactions_pkey PRIMARY KEY (user_id, id);

ALTER TABLE agents.inbox DROP CONSTRAINT inbox_pkey,
    ADD CONSTRAINT inbox_pkey PRIMARY KEY (agent, message_id);
CREATE INDEX inbox_message ON agents.inbox (message_id);

ALTER TABLE agents.messages DROP CONSTRAINT messages_pkey,
    ADD CONSTRAINT messages_pkey PRIMARY KEY (thread_id, id);
CREATE INDEX messages_id ON agents.messages (id);

ALTER TABLE variants.activations DROP CONSTRAINT activations_pkey,
    ADD CONSTRAINT activations_pkey PRIMARY KEY (agent_name, id);

ALTER TABLE variants.performance DROP CONSTRAINT performance_pkey,
    ADD CONSTRAINT performance_pkey PRIMARY KEY (agent_name, id);

ALTER TABLE variants.variants DROP CONSTRAINT variants_pkey,
    ADD CONSTRAINT variants_pkey PRIMARY KEY (agent_name, id);
CREATE INDEX variants_id ON variants.variants (id);

-- Agents are never renamed, so the variants' key needs no ON UPDATE action.
ALTER TABLE variants.variants DROP CONSTRAINT variants_agent_name_fkey,
    ADD CONSTRAINT variants_agent_name_fkey FOREIGN KEY (agent_name)
        REFERENCES agents.agents (name) ON DELETE CASCADE;

-- A message's counters are kept by agents.post_message, not by a trigger.
DROP TRIGGER IF EXISTS messages_maintain ON agents.messages;
DROP FUNCTION IF EXISTS agents.on_message();

-- Thread budgets are colocated with their threads: one collation for both
-- keys (the ids are ASCII, so the order of the two collations is the same).
ALTER TABLE usage.thread_budgets ALTER COLUMN thread_id TYPE text COLLATE "default";

-- The row helpers' old signatures. CASCADE: the views built on
-- usage.batch_records are created again by sql/ right after the migrations.
DROP FUNCTION IF EXISTS agents.agent_json(agents.agents);
DROP FUNCTION IF EXISTS agents.agent_json(anyelement);
DROP FUNCTION IF EXISTS agents.effective_state(agents.agents);
DROP FUNCTION IF EXISTS agents.emit_state(agents.agents);
DROP FUNCTION IF EXISTS agents.emit_thread(agents.threads);
DROP FUNCTION IF EXISTS agents.thread_json(agents.threads);
DROP FUNCTION IF EXISTS agents.message_json(agents.messages);
DROP FUNCTION IF EXISTS credits.block_costs_json(credits.block_costs);
DROP FUNCTION IF EXISTS credits.ledger_event_body(credits.transactions);
DROP FUNCTION IF EXISTS credits.tx_json(credits.transactions);
DROP FUNCTION IF EXISTS credits.user_json(credits.users);
DROP FUNCTION IF EXISTS executions.node_json(executions.node_executions);
DROP FUNCTION IF EXISTS executions.node_wire(executions.node_executions);
DROP FUNCTION IF EXISTS usage.price_json(usage.model_prices);
DROP FUNCTION IF EXISTS variants.to_json(variants.variants);
DROP FUNCTION IF EXISTS usage.batch_records(usage.batches) CASCADE;
