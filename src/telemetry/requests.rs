//! Per request: a request id (taken from `x-request-id` or made, and
//! echoed), the request counter and duration histogram by operationId, and
//! one log line.
//!
//! Two layers: [`tag_operation`] sits inside the error handling, where
//! poem-openapi's `OperationId` is still attached to failed requests too,
//! and notes it; [`observe`] sits outside everything, so it sees the final
//! status of every answer (errors rendered by the uniform error handler
//! included).

use super::{HTTP_DURATION, HTTP_REQUESTS};
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// The header that carries the request id both ways.
pub const REQUEST_ID: &str = "x-request-id";

/// Where the inner layer leaves the operationId for the outer one.
#[derive(Clone, Default)]
struct OperationSlot(Arc<OnceLock<&'static str>>);

/// Routes outside the OpenAPI document get fixed labels; any other path
/// (unknown routes included) is `unknown`, so labels stay bounded.
fn route_label(path: &str) -> &'static str {
    match path {
        "/ws" => "ws",
        "/ws/messages" => "wsMessages",
        "/ws/executions" => "wsExecutions",
        "/metrics" => "metrics",
        "/openapi.json" => "openapiDocument",
        "/asyncapi.json" => "asyncapiDocument",
        p if p == "/console" || p.starts_with("/console/") => "console",
        p if p == "/docs" || p.starts_with("/docs/") => "docs",
        _ => "unknown",
    }
}

/// A request id the client sent, when it is usable: 1–128 visible ASCII
/// characters (it goes into logs and back into a header).
fn given_id(req: &Request) -> Option<String> {
    let v = req.headers().get(REQUEST_ID)?.to_str().ok()?;
    let ok = (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| v.to_string())
}

/// The inner layer: notes the operationId of the answer or error.
pub async fn tag_operation<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let slot = req.extensions().get::<OperationSlot>().cloned();
    let res = ep.call(req).await.map(IntoResponse::into_response);
    if let Some(slot) = slot {
        let id = match &res {
            Ok(r) => r.data::<OperationId>(),
            Err(e) => e.data::<OperationId>(),
        };
        if let Some(id) = id {
            let _ = slot.0.set(id.0);
        }
    }
    res
}

/// The outer layer: request id, metrics and the log line.
pub async fn observe<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = given_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let slot = OperationSlot::default();
    req.extensions_mut().insert(slot.clone());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let mut resp = match ep.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    let operation = slot.0.get().copied().unwrap_or_else(|| route_label(&path));
    let status = resp.status().as_u16();
    let elapsed = started.elapsed();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    metrics::counter!(HTTP_REQUESTS, "operation" => operation, "status" => status.to_string())
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "operation" => operation).record(elapsed.as_secs_f64());
    tracing::info!(
        target: "agentplane::request",
        operation,
        method = %method,
        path = %path,
        status,
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        request_id = %request_id,
        "request"
    );
    Ok(resp)
}
