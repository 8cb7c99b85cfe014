-- Node executions (docs/executions.md): upsert and listing. Each change emits an
-- `execution_event` whose data is the snake_case node execution object of
-- the graph-execution WebSocket protocol.

-- The snake_case object pushed on /ws/executions (and as `data` on /ws).
CREATE OR REPLACE FUNCTION executions.node_wire(n anyelement)  -- a executions.node_executions row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'graph_id', n.graph_id, 'graph_version', n.graph_version,
        'graph_exec_id', n.graph_exec_id, 'node_exec_id', n.node_exec_id,
        'node_id', n.node_id, 'block_id', n.block_id, 'status', n.status,
        'input_data', n.input_data, 'output_data', n.output_data,
        'add_time', ap.ts(n.add_time), 'queue_time', ap.ts(n.queue_time),
        'start_time', ap.ts(n.start_time), 'end_time', ap.ts(n.end_time))
$$;

-- The camelCase object of the REST API.
CREATE OR REPLACE FUNCTION executions.node_json(n anyelement)  -- a executions.node_executions row
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'nodeExecId', n.node_exec_id, 'graphId', n.graph_id,
        'graphVersion', n.graph_version, 'graphExecId', n.graph_exec_id,
        'nodeId', n.node_id, 'blockId', n.block_id, 'status', n.status,
        'inputData', n.input_data, 'outputData', n.output_data,
        'addTime', ap.ts(n.add_time), 'queueTime', ap.ts(n.queue_time),
        'startTime', ap.ts(n.start_time), 'endTime', ap.ts(n.end_time))
$$;

-- PUT /api/v1/executions/nodes/{nodeExecId}. Creates the node execution or
-- updates its status, data and times. Its identity (graph, version, graph
-- execution, node, block) is fixed at creation: a different one is a 409.
-- An upsert that changes nothing emits no event.
CREATE OR REPLACE FUNCTION executions.upsert_node(
    p_node_exec_id  text,
    p_graph_id      text,
    p_graph_version int,
    p_graph_exec_id text,
    p_node_id       text,
    p_block_id      text,
    p_status        text,
    p_input_data    jsonb,
    p_output_data   jsonb,
    p_add_time      timestamptz,
    p_queue_time    timestamptz DEFAULT NULL,
    p_start_time    timestamptz DEFAULT NULL,
    p_end_time      timestamptz DEFAULT NULL)
RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    v_old executions.node_executions;
    v_new executions.node_executions;
    v_now timestamptz := now();  -- Citus: no now() in ON CONFLICT DO UPDATE
BEGIN
    PERFORM ap.check_ident('nodeExecId', p_node_exec_id);
    PERFORM ap.check_ident('graphId', p_graph_id);
    PERFORM ap.check_ident('graphExecId', p_graph_exec_id);
    PERFORM ap.check_ident('nodeId', p_node_id);
    PERFORM ap.check_ident('blockId', p_block_id);
    IF p_status IS NULL OR p_status NOT IN ('INCOMPLETE', 'QUEUED', 'RUNNING', 'COMPLETED',
                                             'TERMINATED', 'FAILED') THEN
        PERFORM ap.raise(400, 'invalid_status',
            'status must be one of INCOMPLETE, QUEUED, RUNNING, COMPLETED, TERMINATED, FAILED',
            jsonb_build_object('status', p_status));
    END IF;
    IF p_graph_version IS NULL OR p_graph_version < 0 THEN
        PERFORM ap.raise(400, 'invalid_input', 'graphVersion must be an integer >= 0',
            jsonb_build_object('graphVersion', p_graph_version));
    END IF;
    IF p_add_time IS NULL THEN
        PERFORM ap.raise(400, 'invalid_input', 'addTime is required', '{}'::jsonb);
    END IF;

    SELECT * INTO v_old FROM executions.node_executions
     WHERE node_exec_id = p_node_exec_id FOR UPDATE;
    IF FOUND AND (v_old.graph_id, v_old.graph_version, v_old.graph_exec_id,
                  v_old.node_id, v_old.block_id)
                 IS DISTINCT FROM (p_graph_id, p_graph_version, p_graph_exec_id,
                                   p_node_id, p_block_id) THEN
        PERFORM ap.raise(409, 'execution_mismatch',
            'this node execution already belongs to another graph, version, graph execution, node or block',
            jsonb_build_object('nodeExecId', p_node_exec_id,
                               'graphId', v_old.graph_id, 'graphVersion', v_old.graph_version,
                               'graphExecId', v_old.graph_exec_id, 'nodeId', v_old.node_id,
                               'blockId', v_old.block_id));
    END IF;

    INSERT INTO executions.node_executions AS n
        (node_exec_id, graph_id, graph_version, graph_exec_id, node_id, block_id, status,
         input_data, output_data, add_time, queue_time, start_time, end_time)
    VALUES (p_node_exec_id, p_graph_id, p_graph_version, p_graph_exec_id, p_node_id,
            p_block_id, p_status, coalesce(p_input_data, '{}'), coalesce(p_output_data, '{}'),
            p_add_time, p_queue_time, p_start_time, p_end_time)
    ON CONFLICT (node_exec_id) DO UPDATE
       SET status = EXCLUDED.status, input_data = EXCLUDED.input_data,
           output_data = EXCLUDED.output_data, add_time = EXCLUDED.add_time,
           queue_time = EXCLUDED.queue_time, start_time = EXCLUDED.start_time,
           end_time = EXCLUDED.end_time, updated_at = v_now
     WHERE (n.status, n.input_data, n.output_data, n.add_time, n.queue_time,
            n.start_time, n.end_time)
           IS DISTINCT FROM
           (EXCLUDED.status, EXCLUDED.input_data, EXCLUDED.output_data, EXCLUDED.add_time,
            EXCLUDED.queue_time, EXCLUDED.start_time, EXCLUDED.end_time)
    RETURNING * INTO v_new;

    IF v_new.node_exec_id IS NULL THEN
        RETURN executions.node_json(v_old);  -- nothing changed
    END IF;
    PERFORM feed.emit_data('execution_event', executions.node_wire(v_new),
                           p_graph_id => v_new.graph_id,
                           p_graph_exec_id => v_new.graph_exec_id);
    RETURN executions.node_json(v_new);
END
$$;

-- GET /api/v1/executions/{graphExecId}/nodes: in the order they were added.
CREATE OR REPLACE FUNCTION executions.list_nodes(p_graph_exec_id text)
RETURNS jsonb LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
        'nodes', coalesce(jsonb_agg(executions.node_json(n)
                                    ORDER BY n.add_time, n.node_exec_id), '[]'::jsonb),
        'count', count(*))
      FROM executions.node_executions n
     WHERE n.graph_exec_id = p_graph_exec_id);
END
$$;
