//! Node executions (sql/executions.sql).

use super::{call_json, DbError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

/// What `PUT /api/v1/executions/nodes/{nodeExecId}` carries.
#[derive(Debug, Clone)]
pub struct NodeUpsert {
    pub node_exec_id: String,
    pub graph_id: String,
    pub graph_version: i32,
    pub graph_exec_id: String,
    pub node_id: String,
    pub block_id: String,
    pub status: String,
    pub input_data: Value,
    pub output_data: Value,
    pub add_time: DateTime<Utc>,
    pub queue_time: Option<DateTime<Utc>>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// `executions.upsert_node(...)`: the node execution as camelCase JSON.
pub async fn upsert_node(pool: &Pool, n: &NodeUpsert) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT executions.upsert_node($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &n.node_exec_id,
            &n.graph_id,
            &n.graph_version,
            &n.graph_exec_id,
            &n.node_id,
            &n.block_id,
            &n.status,
            &n.input_data,
            &n.output_data,
            &n.add_time,
            &n.queue_time,
            &n.start_time,
            &n.end_time,
        ],
    )
    .await
}

/// `executions.list_nodes(graphExecId)`: `{nodes, count}`.
pub async fn list_nodes(pool: &Pool, graph_exec_id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT executions.list_nodes($1)", &[&graph_exec_id]).await
}
