-- Node executions (graph runs) and what the feed relay needs.
-- Never edit once landed: later changes are new migrations.

CREATE SCHEMA IF NOT EXISTS executions;

-- One row per node execution, upserted by the runtime as it progresses.
CREATE TABLE executions.node_executions (
    node_exec_id   text PRIMARY KEY,
    graph_id       text NOT NULL,
    graph_version  integer NOT NULL CHECK (graph_version >= 0),
    graph_exec_id  text NOT NULL,
    node_id        text NOT NULL,
    block_id       text NOT NULL,
    status         text NOT NULL
                   CHECK (status IN ('INCOMPLETE', 'QUEUED', 'RUNNING', 'COMPLETED',
                                     'TERMINATED', 'FAILED')),
    input_data     jsonb NOT NULL DEFAULT '{}',
    output_data    jsonb NOT NULL DEFAULT '{}',
    add_time       timestamptz NOT NULL,
    queue_time     timestamptz,
    start_time     timestamptz,
    end_time       timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX node_executions_graph_exec
    ON executions.node_executions (graph_exec_id, add_time, node_exec_id);
CREATE INDEX node_executions_graph ON executions.node_executions (graph_id);
