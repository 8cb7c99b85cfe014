//! `GET /api/v1/events`: the live feed's events as a JSON page, or, with
//! `Accept: text/event-stream`, as Server-Sent Events (docs/feed.md). Both
//! read what the relay has made final; the stream is a subscriber of the
//! same hub as `/ws`.

use super::nullable::Nullable;
use super::types::{IdentCheck, JsonObject};
use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::feed::page::{self, PageQuery};
use crate::feed::{sse, Filter};
use poem::web::Data;
use poem::Request;
use poem_openapi::param::{Header, Query};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::{ApiResponse, Object, OpenApi, ResponseContent};
use std::time::Duration;

/// Entries allowed in one filter list (as on `/ws`).
const MAX_LIST: usize = 1000;
/// A page's events hold at most this many bytes of JSON (always at least
/// one event).
const PAGE_BYTES: usize = 4 * 1024 * 1024;
/// Rows a page looks at before it answers (matching or not).
const PAGE_ROWS: usize = 10_000;

/// A page of events.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct EventPage {
    /// Oldest first; each exactly as `/ws` pushes it:
    /// `{"event":TYPE,"id":N,"createdAt":T, ...}`.
    pub events: Vec<JsonObject>,
    pub count: i64,
    /// Pass as `after` for the next page; null once the page reached the
    /// newest final event.
    pub next_after: Nullable<i64>,
}

/// A `text/event-stream` body: for each event `id: <id>`, `event: <type>`
/// and `data: <the event's JSON, as /ws pushes it>`, then a blank line; a
/// `: ping` comment at least every 15 s.
pub struct EventStreamBody(poem::Body);

impl Payload for EventStreamBody {
    const CONTENT_TYPE: &'static str = "text/event-stream";

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            description: Some(
                "Server-Sent Events: `id: <id>`, `event: <type>`, `data: <event JSON>` per event; \
                 `: ping` comments",
            ),
            ..MetaSchema::new("string")
        }))
    }
}

impl poem::IntoResponse for EventStreamBody {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("text/event-stream")
            .header("cache-control", "no-cache")
            // reverse proxies pass events on at once instead of buffering
            .header("x-accel-buffering", "no")
            .body(self.0)
    }
}

/// The page, or the stream.
#[derive(ResponseContent)]
pub enum EventsContent {
    Page(Json<EventPage>),
    Stream(EventStreamBody),
}

#[derive(ApiResponse)]
pub enum EventsResponse {
    /// A JSON page, or (with `Accept: text/event-stream`) an endless stream.
    #[oai(status = 200)]
    Ok(EventsContent),
}

/// One comma-separated filter list (absent or empty: everything).
fn list(name: &str, raw: Option<String>) -> Result<Vec<String>, ApiError> {
    use poem_openapi::validation::Validator;
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let items: Vec<String> = raw
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if items.len() > MAX_LIST {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("`{name}` has more than {MAX_LIST} entries"),
        ));
    }
    if let Some(bad) = items.iter().find(|i| !IdentCheck.check(i)) {
        return Err(ApiError::new(
            400,
            "invalid_request",
            format!("`{name}` entries are {IdentCheck}"),
            serde_json::json!({"parameter": name, "value": bad}),
        ));
    }
    Ok(items)
}

/// Whether the client asked for Server-Sent Events.
fn wants_stream(req: &Request) -> bool {
    req.headers()
        .get_all(poem::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/event-stream"))
}

pub struct EventsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Events")]
impl EventsApi {
    /// Events after `after`, oldest first, filtered as `/ws` filters (lists
    /// are comma-separated). Only final events are listed: no event with a
    /// lower id can appear later. With `Accept: text/event-stream` the
    /// answer is a Server-Sent Events stream that replays from `after` (or
    /// the `Last-Event-ID` header) and then follows live events; without
    /// either it starts at the live edge.
    #[oai(path = "/events", method = "get", operation_id = "listEvents")]
    #[allow(clippy::too_many_arguments)]
    async fn events(
        &self,
        req: &Request,
        auth: Auth,
        state: Data<&AppState>,
        /// The last id seen (`nextAfter` of the previous page, or an event's id).
        #[oai(validator(minimum(value = "0")))]
        after: Query<Option<i64>>,
        /// Page size (1–100, default 50); not used by the stream.
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
        limit: Query<Option<i32>>,
        /// Agent names (an event matches when any of its agents is listed).
        agents: Query<Option<String>>,
        /// Thread ids.
        threads: Query<Option<String>>,
        /// Message payload types.
        #[oai(name = "payloadTypes")]
        payload_types: Query<Option<String>>,
        /// Event types, e.g. `message,credits.changed`.
        events: Query<Option<String>>,
        /// Graph ids.
        graphs: Query<Option<String>>,
        /// User ids.
        users: Query<Option<String>>,
        /// The stream resumes after this id (sent by browsers on reconnect;
        /// takes precedence over `after`).
        #[oai(name = "Last-Event-ID", validator(minimum(value = "0")))]
        last_event_id: Header<Option<i64>>,
    ) -> ApiResult<EventsResponse> {
        auth.require(Role::Reader)?;
        let filter = Filter {
            agents: list("agents", agents.0)?,
            threads: list("threads", threads.0)?,
            payload_types: list("payloadTypes", payload_types.0)?,
            events: list("events", events.0)?,
            graphs: list("graphs", graphs.0)?,
            users: list("users", users.0)?,
        };
        if wants_stream(req) {
            let resume = last_event_id.0.or(after.0);
            let body = sse::open(&state, auth, filter, resume)?;
            return Ok(EventsResponse::Ok(EventsContent::Stream(EventStreamBody(
                body,
            ))));
        }
        let after = after.0.unwrap_or(0);
        let limit = limit.0.unwrap_or(50).clamp(1, 100) as usize;
        let upto = tokio::time::timeout(Duration::from_secs(10), state.hub.watermark())
            .await
            .map_err(|_| {
                ApiError::new(
                    503,
                    "database_unavailable",
                    "the feed relay has not started yet; retry shortly",
                    serde_json::json!({}),
                )
            })?;
        let q = PageQuery {
            filter: &filter,
            bound_user: auth.user_id.as_deref(),
            after,
            upto,
            limit,
            max_bytes: PAGE_BYTES,
            max_rows: PAGE_ROWS,
        };
        let page = page::read(&state.pool, &q).await?;
        let mut events = Vec::with_capacity(page.events.len());
        for ev in &page.events {
            let v = serde_json::from_str(&ev.control_json)
                .map_err(|e| ApiError::from(crate::db::DbError::decode(e.to_string())))?;
            events.push(JsonObject(v));
        }
        let next_after = (page.scanned_to < upto).then_some(page.scanned_to.max(after));
        Ok(EventsResponse::Ok(EventsContent::Page(Json(EventPage {
            count: events.len() as i64,
            events,
            next_after: next_after.into(),
        }))))
    }
}
