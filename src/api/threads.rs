//! `/api/v1/threads`: conversations between agents
//! (docs/agents.md).

use super::messages::MessageList;
use super::types::Text;
use super::{decode, reply};
use super::{ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::nullable::Nullable;
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum ThreadStatus {
    Active,
    Completed,
    Error,
    Killed,
}

impl ThreadStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ThreadStatus::Active => "active",
            ThreadStatus::Completed => "completed",
            ThreadStatus::Error => "error",
            ThreadStatus::Killed => "killed",
        }
    }
}

/// How a thread ends through `complete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum EndStatus {
    Completed,
    Error,
}

/// ThreadInfo. `participants`, `messageCount` and `lastActivity` are
/// maintained by the database as messages arrive.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ThreadInfo {
    pub id: String,
    pub status: ThreadStatus,
    pub participants: Vec<String>,
    pub message_count: i64,
    pub created_at: DateTime<Utc>,
    pub last_activity: DateTime<Utc>,
    pub error: Nullable<String>,
}

#[derive(Debug, Object)]
pub struct ThreadList {
    pub threads: Vec<ThreadInfo>,
    pub count: i64,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

#[derive(Debug, Object)]
pub struct CompleteThread {
    pub status: EndStatus,
    /// What went wrong (kept with the thread).
    #[oai(validator(max_length = 100000))]
    pub error: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ThreadKilled {
    pub success: bool,
    pub thread_id: String,
}

pub struct ThreadsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Threads")]
impl ThreadsApi {
    /// Threads, newest activity first, optionally by status and participant.
    #[oai(path = "/threads", method = "get", operation_id = "listThreads")]
    async fn list(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        status: Query<Option<ThreadStatus>>,
        /// Only threads this agent took part in.
        agent: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        #[oai(validator(minimum(value = "0")))] offset: Query<Option<i32>>,
    ) -> ApiResult<Json<ThreadList>> {
        auth.require(Role::Reader)?;
        reply(db::agents::list_threads(
            &state.pool,
            status.0.map(|s| s.as_str()),
            agent.0.as_deref(),
            limit.0.unwrap_or(50),
            offset.0.unwrap_or(0),
        ))
        .await
    }

    /// One thread.
    #[oai(path = "/threads/:id", method = "get", operation_id = "getThread")]
    async fn get(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<ThreadInfo>> {
        auth.require(Role::Reader)?;
        reply(db::agents::get_thread(&state.pool, &id.0)).await
    }

    /// A thread's messages, oldest first.
    #[oai(
        path = "/threads/:id/messages",
        method = "get",
        operation_id = "listThreadMessages"
    )]
    async fn messages(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<String>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        #[oai(validator(minimum(value = "0")))] offset: Query<Option<i32>>,
    ) -> ApiResult<Json<MessageList>> {
        auth.require(Role::Reader)?;
        reply(db::agents::thread_messages(
            &state.pool,
            &id.0,
            limit.0.unwrap_or(50),
            offset.0.unwrap_or(0),
        ))
        .await
    }

    /// End an active thread as `completed` or `error` (service); 409 when it
    /// has already ended.
    #[oai(
        path = "/threads/:id/complete",
        method = "post",
        operation_id = "completeThread"
    )]
    async fn complete(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<String>,
        body: Json<CompleteThread>,
    ) -> ApiResult<Json<ThreadInfo>> {
        auth.require(Role::Service)?;
        let status = match body.status {
            EndStatus::Completed => "completed",
            EndStatus::Error => "error",
        };
        let v =
            db::agents::complete_thread(&state.pool, &id.0, status, body.error.as_deref()).await?;
        Ok(Json(decode(v)?))
    }

    /// Kill an active thread (service): it ends as `killed` and its
    /// undelivered inbox messages are dropped; 409 when it has already ended.
    #[oai(
        path = "/threads/:id/kill",
        method = "post",
        operation_id = "killThread"
    )]
    async fn kill(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<String>,
    ) -> ApiResult<Json<ThreadKilled>> {
        auth.require(Role::Service)?;
        reply(db::agents::kill_thread(&state.pool, &id.0)).await
    }
}
