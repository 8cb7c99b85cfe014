-- The distribution plan for Citus: where every table of the schema lives once
-- the database is a Citus coordinator. It is applied once, after
-- `agentplane migrate`, on a database with the citus extension and its worker
-- nodes added:
--
--     psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -f sql/citus/distribute.sql
--
-- It is not part of the ordinary start-up (plain PostgreSQL has no
-- create_distributed_table). A test on plain PostgreSQL reads this file and
-- the catalog of a migrated database, and fails when a table is missing here
-- or breaks a rule Citus enforces for where it is placed: a new table joins
-- this plan in the change that creates it.
--
-- Three kinds of placement, one call or marker per table:
--   create_distributed_table(table, column, colocate_with)   sharded by column;
--                                 'none' starts a colocation group, a table joins one
--   create_reference_table(table)                           a copy on every node
--   "-- local: table"                                       stays on the coordinator
--
-- Tables sharded by the same key are colocated, so the statements of one user,
-- one thread or one agent run on one node. Referenced tables come before the
-- tables whose foreign keys point at them.

BEGIN;

-- Reference tables: small, written rarely, read by every node's queries.
SELECT create_reference_table('credits.block_costs');
SELECT create_reference_table('usage.model_prices');
SELECT create_reference_table('usage.epochs');

-- By user: the credits ledger. Every key starts with user_id.
SELECT create_distributed_table('credits.users', 'user_id', colocate_with => 'none');
SELECT create_distributed_table('credits.balances', 'user_id', colocate_with => 'credits.users');
SELECT create_distributed_table('credits.transactions', 'user_id', colocate_with => 'credits.users');
SELECT create_distributed_table('credits.holds', 'user_id', colocate_with => 'credits.users');
SELECT create_distributed_table('credits.low_balance_alerts', 'user_id', colocate_with => 'credits.users');

-- By thread: threads, their messages and their token budgets.
SELECT create_distributed_table('agents.threads', 'id', colocate_with => 'none');
SELECT create_distributed_table('agents.messages', 'thread_id', colocate_with => 'agents.threads');
SELECT create_distributed_table('usage.thread_budgets', 'thread_id', colocate_with => 'agents.threads');

-- By agent: the registry, each agent's inbox and its variants.
SELECT create_distributed_table('agents.agents', 'name', colocate_with => 'none');
SELECT create_distributed_table('agents.inbox', 'agent', colocate_with => 'agents.agents');
SELECT create_distributed_table('variants.variants', 'agent_name', colocate_with => 'agents.agents');
SELECT create_distributed_table('variants.activations', 'agent_name', colocate_with => 'agents.agents');
SELECT create_distributed_table('variants.performance', 'agent_name', colocate_with => 'agents.agents');

-- Usage batches: one row holds the records of many threads, so a batch is
-- placed by its own id; the queue of batches not yet folded sits beside them.
SELECT create_distributed_table('usage.batches', 'first_id', colocate_with => 'none');
SELECT create_distributed_table('usage.unfolded', 'first_id', colocate_with => 'usage.batches');

-- The rollups: every key ends with the small `shard` number that spreads one
-- hot counter over several rows; across nodes it spreads them the same way.
-- Reads sum over the shards already.
SELECT create_distributed_table('usage.daily_rollup', 'shard', colocate_with => 'none');
SELECT create_distributed_table('usage.epoch_rollup', 'shard', colocate_with => 'usage.daily_rollup');
SELECT create_distributed_table('usage.agent_rollup', 'shard', colocate_with => 'usage.daily_rollup');
SELECT create_distributed_table('usage.model_rollup', 'shard', colocate_with => 'usage.daily_rollup');

-- Node executions: written and read by their own id.
SELECT create_distributed_table('executions.node_executions', 'node_exec_id', colocate_with => 'none');

-- The repricing log: one row per run and one per changed record, written by a
-- reprice in the transaction that rewrites the batches' costs and read by
-- analysts by run. Nothing joins it to a sharded table on a worker, so it
-- stays on the coordinator, where a run's rows are written in one place.
-- local: usage.repricings
-- local: usage.cost_changes

-- The feed needs one global order (ids assigned in commit order, read by
-- range), so its events stay in one table on the coordinator.
-- local: feed.events

-- Webhook endpoints and their attempts: each endpoint's position is an event
-- id and its worker reads the events after it by range, so they stay beside
-- the events on the coordinator.
-- local: webhooks.endpoints
-- local: webhooks.deliveries

-- Read and written only by the server, on the coordinator, and joined to no
-- distributed table: the API keys (every request's authentication) and the
-- organism's one status row.
-- local: auth.api_keys
-- local: agents.organism

COMMIT;
