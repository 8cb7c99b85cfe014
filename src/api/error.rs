//! The one error body (docs/api.md), for every failure the API can produce.

use crate::db::DbError;
use poem::Response;
use poem_openapi::{payload::Json, ApiResponse, Object};
use serde_json::{json, Value};

/// `{"error":{"code","message","details"}}`
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorInfo,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorInfo {
    /// Stable snake_case code, e.g. `insufficient_credits`.
    pub code: String,
    /// A human sentence.
    pub message: String,
    /// Extra facts about the error; `{}` when there is nothing to add.
    pub details: Value,
}

/// Every error an operation can answer. Each operation documents all of them.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// Malformed or invalid input.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid API key.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Not enough credits (`insufficient_credits`).
    #[oai(status = 402)]
    PaymentRequired(Json<ErrorBody>),
    /// The key lacks the role, or is bound to another user.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// Unknown resource.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// Conflict: duplicate, or the resource is in the wrong state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// Request body too large.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Budget exhausted or rate limited.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>),
    /// Unexpected server fault.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database is unavailable.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

impl ApiError {
    /// Builds the error for `status` (unknown statuses become 500).
    pub fn new(status: u16, code: &str, message: impl Into<String>, details: Value) -> ApiError {
        let body = Json(ErrorBody {
            error: ErrorInfo {
                code: code.to_string(),
                message: message.into(),
                details: if details.is_object() {
                    details
                } else {
                    json!({})
                },
            },
        });
        match status {
            400 => ApiError::BadRequest(body),
            401 => ApiError::Unauthorized(body),
            402 => ApiError::PaymentRequired(body),
            403 => ApiError::Forbidden(body),
            404 => ApiError::NotFound(body),
            409 => ApiError::Conflict(body),
            413 => ApiError::PayloadTooLarge(body),
            429 => ApiError::TooManyRequests(body),
            503 => ApiError::Unavailable(body),
            _ => ApiError::Internal(body),
        }
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, code, message, json!({}))
    }

    pub fn not_found(code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(404, code, message, json!({}))
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(401, "unauthorized", message, json!({}))
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "forbidden", message, json!({}))
    }

    /// The body, for logging and tests.
    pub fn body(&self) -> &ErrorBody {
        match self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b)
            | ApiError::PaymentRequired(b)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::PayloadTooLarge(b)
            | ApiError::TooManyRequests(b)
            | ApiError::Internal(b)
            | ApiError::Unavailable(b) => &b.0,
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        let m = e.mapped();
        if m.status >= 500 {
            tracing::error!(error = %e, "database call failed");
        }
        ApiError::new(m.status, &m.code, m.message, m.details)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Turns any error response that is not already our JSON body (poem's
/// parse errors, unknown routes, 405, 413 from the size limit) into the
/// uniform body, keeping its status.
pub async fn uniform_error(err: poem::Error) -> Response {
    let status = err.status();
    let message = err.to_string();
    let resp = err.into_response();
    let is_ours = resp
        .content_type()
        .is_some_and(|ct| ct.starts_with("application/json"));
    if is_ours {
        return resp;
    }
    let (status, code) = match status.as_u16() {
        400 => (400, "invalid_request"),
        401 => (401, "unauthorized"),
        403 => (403, "forbidden"),
        404 => (404, "not_found"),
        405 => (405, "method_not_allowed"),
        413 => (413, "payload_too_large"),
        // A body in a format we do not read is bad input, not a server fault.
        415 => (400, "unsupported_media_type"),
        s if s < 500 => (s, "invalid_request"),
        503 => (503, "unavailable"),
        _ => (500, "internal_error"),
    };
    let message = if message.is_empty() {
        status_text(status)
    } else {
        message
    };
    let body = json!({"error": {"code": code, "message": message, "details": {}}});
    Response::builder()
        .status(
            poem::http::StatusCode::from_u16(status)
                .unwrap_or(poem::http::StatusCode::INTERNAL_SERVER_ERROR),
        )
        .content_type("application/json; charset=utf-8")
        .body(body.to_string())
}

fn status_text(status: u16) -> String {
    poem::http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("error")
        .to_string()
}
