//! `/api/v1/inject`, `/api/v1/messages` and the inbox: the message bus
//! (docs/agents.md).

use super::reply;
use super::types::{Ident, JsonObject};
use super::{ApiResult, ApiTags, AppState, Auth, Role};
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Object, OpenApi,
};
use uuid::Uuid;

/// MessageInfo.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct MessageInfo {
    pub id: Uuid,
    pub thread_id: String,
    pub from: String,
    pub to: String,
    pub payload_type: String,
    pub payload: serde_json::Value,
    pub timestamp: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct MessageList {
    pub messages: Vec<MessageInfo>,
    pub count: i64,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// `POST /inject`. `from` defaults to `api`, `payloadType` to `inject`; a
/// new thread (server-made UUID when `threadId` is not given) is created when
/// needed.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", example, skip_serializing_if_is_none)]
pub struct InjectRequest {
    pub to: Ident,
    pub payload: JsonObject,
    pub thread_id: Option<Ident>,
    pub from: Option<Ident>,
    pub payload_type: Option<Ident>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Injected {
    pub thread_id: String,
    pub message_id: Uuid,
}

/// `POST /messages`: one agent messaging another through the bus.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PostMessage {
    pub thread_id: Ident,
    pub from: Ident,
    pub to: Ident,
    pub payload_type: Ident,
    pub payload: JsonObject,
}

/// `POST /agents/{name}/inbox/claim`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ClaimRequest {
    /// How many messages at most (1–100, default 10).
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max: Option<i32>,
    /// Seconds the claimed messages stay invisible to other claimers unless
    /// acknowledged (1–43200, default 30).
    #[oai(validator(minimum(value = "1"), maximum(value = "43200")))]
    pub visibility_seconds: Option<i32>,
}

#[derive(Debug, Object)]
pub struct Claimed {
    pub messages: Vec<MessageInfo>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Acked {
    pub success: bool,
    pub message_id: Uuid,
    /// False when the message had already been acknowledged.
    pub acked: bool,
}

pub struct MessagesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Messages")]
impl MessagesApi {
    /// Inject a message into an agent's durable inbox (service). 400 when
    /// `to` is not registered, 409 when the organism is stopping/stopped or
    /// the thread has ended.
    #[oai(path = "/inject", method = "post", operation_id = "inject")]
    async fn inject(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<InjectRequest>,
    ) -> ApiResult<Json<Injected>> {
        auth.require(Role::Service)?;
        let b = &body.0;
        reply(db::agents::inject(
            &state.pool,
            &b.to,
            &b.payload.0,
            b.thread_id.as_deref(),
            b.from.as_deref(),
            b.payload_type.as_deref(),
        ))
        .await
    }

    /// Send a message from one agent to another (service); same rules as
    /// inject. Returns the recorded message.
    #[oai(path = "/messages", method = "post", operation_id = "postMessage")]
    async fn post(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<PostMessage>,
    ) -> ApiResult<Json<MessageInfo>> {
        auth.require(Role::Service)?;
        let b = &body.0;
        reply(db::agents::post_message(
            &state.pool,
            Some(&b.thread_id),
            &b.from,
            &b.to,
            &b.payload_type,
            &b.payload.0,
        ))
        .await
    }

    /// Messages, newest first; `agent` matches sender or receiver.
    #[oai(path = "/messages", method = "get", operation_id = "listMessages")]
    async fn list(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        agent: Query<Option<String>>,
        #[oai(name = "threadId")] thread_id: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        #[oai(validator(minimum(value = "0")))] offset: Query<Option<i32>>,
    ) -> ApiResult<Json<MessageList>> {
        auth.require(Role::Reader)?;
        reply(db::agents::list_messages(
            &state.pool,
            agent.0.as_deref(),
            thread_id.0.as_deref(),
            limit.0.unwrap_or(50),
            offset.0.unwrap_or(0),
        ))
        .await
    }

    /// Claim messages from an agent's inbox (service): each message goes to
    /// one claimer; unacknowledged ones come back after the visibility
    /// timeout. A paused agent hands out nothing.
    #[oai(
        path = "/agents/:name/inbox/claim",
        method = "post",
        operation_id = "claimInbox"
    )]
    async fn claim(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        name: Path<String>,
        body: Json<ClaimRequest>,
    ) -> ApiResult<Json<Claimed>> {
        auth.require(Role::Service)?;
        reply(db::agents::claim(
            &state.pool,
            &name.0,
            body.max.unwrap_or(10),
            body.visibility_seconds.unwrap_or(30),
        ))
        .await
    }

    /// Acknowledge a message (service): it leaves its receiver's inbox for
    /// good. Acknowledging twice is harmless.
    #[oai(
        path = "/messages/:messageId/ack",
        method = "post",
        operation_id = "ackMessage"
    )]
    async fn ack(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "messageId")] message_id: Path<Uuid>,
    ) -> ApiResult<Json<Acked>> {
        auth.require(Role::Service)?;
        reply(db::agents::ack(&state.pool, message_id.0)).await
    }
}
