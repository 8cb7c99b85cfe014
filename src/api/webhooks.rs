//! `/api/v1/webhooks`: endpoints that receive the feed's events as signed
//! HTTP POSTs (docs/webhooks.md). Managed by unbound admin keys only: an
//! endpoint sees every user's events. The rules live in sql/webhooks/; the
//! delivery worker in src/webhooks/.

use super::nullable::Nullable;
use super::types::{Ident, Text};
use super::{decode, ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Object, OpenApi,
};
use uuid::Uuid;

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateWebhook {
    /// Where events are POSTed: an absolute `http` or `https` URL (at most
    /// 2,048 characters).
    #[oai(validator(min_length = 1, max_length = 2048))]
    pub url: Text,
    /// Only these event types (empty or absent: every type).
    #[oai(validator(max_items = 1000))]
    pub events: Option<Vec<Text>>,
    /// Only events of these users (an event without a user does not match a
    /// non-empty list).
    #[oai(validator(max_items = 1000))]
    pub users: Option<Vec<Ident>>,
    /// Only events of these agents.
    #[oai(validator(max_items = 1000))]
    pub agents: Option<Vec<Ident>>,
    /// A note for people (at most 1,000 characters).
    #[oai(validator(max_length = 1000))]
    pub description: Option<Text>,
}

/// A webhook endpoint (its secret is shown only when it is created).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Webhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub users: Vec<String>,
    pub agents: Vec<String>,
    pub description: Nullable<String>,
    /// Whether events are being delivered; false after 24 h of failures
    /// (`POST /webhooks/{id}/enable` resumes).
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    /// Every event up to this id has been delivered (or did not match).
    pub position: i64,
    /// When delivery was disabled after failing; null while enabled.
    pub disabled_at: Nullable<DateTime<Utc>>,
}

/// A new endpoint with its signing secret, which is never shown again.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedWebhook {
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub users: Vec<String>,
    pub agents: Vec<String>,
    pub description: Nullable<String>,
    pub enabled: bool,
    pub created_at: DateTime<Utc>,
    pub position: i64,
    pub disabled_at: Nullable<DateTime<Utc>>,
    /// `whsec_` + base64 of 32 random bytes: the HMAC-SHA256 key (its
    /// decoded bytes) of every `webhook-signature`.
    pub secret: String,
}

#[derive(Debug, Object)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
    pub count: i64,
}

#[derive(Debug, Object)]
pub struct WebhookDeleted {
    pub success: bool,
    pub id: Uuid,
}

/// One delivery attempt.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Delivery {
    pub event_id: i64,
    /// 1 for the first attempt at this event, 2 for the first retry, ...
    pub attempt: i32,
    pub at: DateTime<Utc>,
    /// The receiver's HTTP status; null when none came (timeout, connection error).
    pub response_status: Nullable<i32>,
    /// Why the attempt failed; null when it delivered.
    pub error: Nullable<String>,
    pub duration_ms: i64,
    /// Whether the receiver answered 2xx.
    pub delivered: bool,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct DeliveryList {
    pub deliveries: Vec<Delivery>,
    pub count: i64,
    /// Pass as `after` for the next page.
    pub next_after: i64,
}

#[derive(ApiResponse)]
pub enum CreateWebhookResponse {
    /// The endpoint, with its secret (shown only here).
    #[oai(status = 201)]
    Created(Json<CreatedWebhook>),
}

async fn client(state: &AppState) -> Result<deadpool_postgres::Object, ApiError> {
    Ok(state.pool.get().await.map_err(DbError::from)?)
}

/// An absolute `http`/`https` URL with a host (its length is the schema's
/// validator's and the table's rule).
fn check_url(url: &str) -> Result<(), ApiError> {
    let bad = |why: &str| {
        ApiError::new(
            400,
            "invalid_url",
            format!("url must be an absolute http or https URL: {why}"),
            serde_json::json!({"field": "url"}),
        )
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad("the scheme is not http or https"));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    Ok(())
}

fn texts(list: Option<Vec<Text>>) -> Vec<String> {
    list.unwrap_or_default()
        .into_iter()
        .map(Text::into_inner)
        .collect()
}

fn idents(list: Option<Vec<Ident>>) -> Vec<String> {
    list.unwrap_or_default().into_iter().map(|i| i.0).collect()
}

pub struct WebhooksApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Webhooks")]
impl WebhooksApi {
    /// Create a webhook endpoint (unbound admin). It receives the events
    /// committed from now on.
    #[oai(path = "/webhooks", method = "post", operation_id = "createWebhook")]
    async fn create(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<CreateWebhook>,
    ) -> ApiResult<CreateWebhookResponse> {
        auth.require_unbound(Role::Admin)?;
        let body = body.0;
        check_url(&body.url.0)?;
        let secret = crate::webhooks::sign::new_secret();
        let c = client(&state).await?;
        let v = db::webhooks::create(
            &**c,
            &db::webhooks::NewEndpoint {
                id: Uuid::new_v4(),
                url: &body.url.0,
                events: &texts(body.events),
                users: &idents(body.users),
                agents: &idents(body.agents),
                description: body.description.as_ref().map(|d| d.0.as_str()),
                secret: &secret,
            },
        )
        .await?;
        Ok(CreateWebhookResponse::Created(Json(decode(v)?)))
    }

    /// List webhook endpoints (unbound admin); secrets are never returned.
    #[oai(path = "/webhooks", method = "get", operation_id = "listWebhooks")]
    async fn list(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<WebhookList>> {
        auth.require_unbound(Role::Admin)?;
        let c = client(&state).await?;
        Ok(Json(decode(db::webhooks::list(&**c).await?)?))
    }

    /// One webhook endpoint (unbound admin).
    #[oai(path = "/webhooks/:id", method = "get", operation_id = "getWebhook")]
    async fn get(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Webhook>> {
        auth.require_unbound(Role::Admin)?;
        let c = client(&state).await?;
        Ok(Json(decode(db::webhooks::get(&**c, id.0).await?)?))
    }

    /// Delete a webhook endpoint and its delivery history (unbound admin).
    /// No event is read for it afterwards.
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<WebhookDeleted>> {
        auth.require_unbound(Role::Admin)?;
        let c = client(&state).await?;
        Ok(Json(decode(db::webhooks::delete(&**c, id.0).await?)?))
    }

    /// Enable a disabled webhook endpoint (unbound admin): delivery resumes
    /// at the first event not yet delivered.
    #[oai(
        path = "/webhooks/:id/enable",
        method = "post",
        operation_id = "enableWebhook"
    )]
    async fn enable(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Webhook>> {
        auth.require_unbound(Role::Admin)?;
        let c = client(&state).await?;
        Ok(Json(decode(db::webhooks::enable(&**c, id.0).await?)?))
    }

    /// A webhook endpoint's delivery attempts, oldest first (unbound admin).
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Attempts after this cursor (`nextAfter` of the previous page).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// At most this many (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<i32>>,
    ) -> ApiResult<Json<DeliveryList>> {
        auth.require_unbound(Role::Admin)?;
        let c = client(&state).await?;
        let v = db::webhooks::deliveries(&**c, id.0, after.0, limit.0.unwrap_or(100)).await?;
        Ok(Json(decode(v)?))
    }
}
