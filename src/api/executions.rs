//! `/api/v1/executions`: node executions of graph runs
//! (docs/executions.md).

use super::{ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::nullable::Nullable;
use crate::api::reply;
use crate::api::types::Ident;
use crate::db::{self, executions::NodeUpsert};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::{payload::Json, Enum, Object, OpenApi};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeStatus {
    Incomplete,
    Queued,
    Running,
    Completed,
    Terminated,
    Failed,
}

impl NodeStatus {
    fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Incomplete => "INCOMPLETE",
            NodeStatus::Queued => "QUEUED",
            NodeStatus::Running => "RUNNING",
            NodeStatus::Completed => "COMPLETED",
            NodeStatus::Terminated => "TERMINATED",
            NodeStatus::Failed => "FAILED",
        }
    }
}

/// `PUT /api/v1/executions/nodes/{nodeExecId}`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct NodeExecutionInput {
    pub graph_id: Ident,
    #[oai(validator(minimum(value = "0")))]
    pub graph_version: i32,
    pub graph_exec_id: Ident,
    pub node_id: Ident,
    pub block_id: Ident,
    pub status: NodeStatus,
    /// Free JSON (default `{}`).
    pub input_data: Option<Value>,
    /// Free JSON (default `{}`).
    pub output_data: Option<Value>,
    pub add_time: DateTime<Utc>,
    pub queue_time: Option<DateTime<Utc>>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
}

/// A node execution.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct NodeExecution {
    pub node_exec_id: String,
    pub graph_id: String,
    pub graph_version: i32,
    pub graph_exec_id: String,
    pub node_id: String,
    pub block_id: String,
    pub status: NodeStatus,
    pub input_data: Value,
    pub output_data: Value,
    pub add_time: DateTime<Utc>,
    pub queue_time: Nullable<DateTime<Utc>>,
    pub start_time: Nullable<DateTime<Utc>>,
    pub end_time: Nullable<DateTime<Utc>>,
}

/// `{nodes, count}`.
#[derive(Debug, Object)]
pub struct NodeExecutionList {
    pub nodes: Vec<NodeExecution>,
    pub count: i64,
}

pub struct ExecutionsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Executions")]
impl ExecutionsApi {
    /// Creates or updates a node execution (service). Each change is an
    /// `execution_event` on the feed; an update that changes nothing emits
    /// nothing. A node execution's graph, version, graph execution, node and
    /// block are fixed once created (409 otherwise).
    #[oai(
        path = "/executions/nodes/:nodeExecId",
        method = "put",
        operation_id = "upsertNodeExecution"
    )]
    async fn upsert(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "nodeExecId")] node_exec_id: Path<Ident>,
        body: Json<NodeExecutionInput>,
    ) -> ApiResult<Json<NodeExecution>> {
        auth.require(Role::Service)?;
        let b = body.0;
        let n = NodeUpsert {
            node_exec_id: node_exec_id.0.into(),
            graph_id: b.graph_id.into(),
            graph_version: b.graph_version,
            graph_exec_id: b.graph_exec_id.into(),
            node_id: b.node_id.into(),
            block_id: b.block_id.into(),
            status: b.status.as_str().to_string(),
            input_data: b.input_data.unwrap_or_else(|| serde_json::json!({})),
            output_data: b.output_data.unwrap_or_else(|| serde_json::json!({})),
            add_time: b.add_time,
            queue_time: b.queue_time,
            start_time: b.start_time,
            end_time: b.end_time,
        };
        reply(db::executions::upsert_node(&state.pool, &n)).await
    }

    /// The node executions of one graph execution, in the order they were
    /// added (empty for an unknown id).
    #[oai(
        path = "/executions/:graphExecId/nodes",
        method = "get",
        operation_id = "listNodeExecutions"
    )]
    async fn list(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "graphExecId")] graph_exec_id: Path<Ident>,
    ) -> ApiResult<Json<NodeExecutionList>> {
        auth.require(Role::Reader)?;
        reply(db::executions::list_nodes(&state.pool, &graph_exec_id.0)).await
    }
}
