//! Database errors, and how SQLSTATEs become API errors.
//!
//! SQL functions raise business errors as SQLSTATE `AP<http status>` with
//! MESSAGE = sentence, DETAIL = snake_case code and HINT = JSON details (see
//! sql/common.sql). Constraint and data errors map to 400/409; connection
//! failures to 503.

use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("migration: {0}")]
    Migration(String),
    #[error("unexpected database result: {0}")]
    Decode(String),
    /// Too much work is already waiting (the spend queue of one user).
    #[error("busy: {0}")]
    Busy(String),
    /// The connection broke after a write was sent: it may or may not have
    /// committed. Retrying the same request with its idempotency key tells.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// One failure answered to several callers (the spend queue's batch).
    #[error("{0}")]
    Shared(std::sync::Arc<DbError>),
}

/// What the API layer needs to answer a failed database call.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedError {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Value,
}

impl DbError {
    pub fn decode(what: impl std::fmt::Display) -> DbError {
        DbError::Decode(what.to_string())
    }

    /// Whether the connection failed or broke, rather than the database
    /// refusing a statement: no server answer at all, or the server ending
    /// the session (SQLSTATE classes 08, connection exception, and 57P, an
    /// administrator's termination or a shutdown). A write under way when
    /// this happens may or may not have committed.
    pub fn connection_lost(&self) -> bool {
        match self {
            DbError::Pool(_) => true,
            DbError::Postgres(e) => e
                .as_db_error()
                .is_none_or(|db| session_ended(db.code().code())),
            _ => false,
        }
    }

    /// The HTTP status, code, message and details this error should produce.
    pub fn mapped(&self) -> MappedError {
        let unavailable = || MappedError {
            status: 503,
            code: "database_unavailable".into(),
            message: "the database is unavailable".into(),
            details: json!({}),
        };
        let internal = || MappedError {
            status: 500,
            code: "internal_error".into(),
            message: "internal error".into(),
            details: json!({}),
        };
        let pg = match self {
            DbError::Shared(inner) => return inner.mapped(),
            DbError::Busy(why) => {
                return MappedError {
                    status: 503,
                    code: "busy".into(),
                    message: why.clone(),
                    details: json!({}),
                }
            }
            DbError::Pool(_) => return unavailable(),
            DbError::OutcomeUnknown(_) => {
                return MappedError {
                    status: 503,
                    code: "outcome_unknown".into(),
                    message: "the connection to the database broke after the request was sent, \
                              so whether it was applied is unknown; send it again with the same \
                              idempotencyKey to learn the outcome"
                        .into(),
                    details: json!({}),
                }
            }
            DbError::Postgres(e) => e,
            _ => return internal(),
        };
        let Some(db) = pg.as_db_error() else {
            // No server error: the connection itself failed or was closed.
            return unavailable();
        };
        let state = db.code().code();
        if let Some(status) = state.strip_prefix("AP").and_then(|s| s.parse::<u16>().ok()) {
            return MappedError {
                status,
                code: db.detail().unwrap_or("error").to_string(),
                message: db.message().to_string(),
                details: db
                    .hint()
                    .and_then(|h| serde_json::from_str(h).ok())
                    .unwrap_or_else(|| json!({})),
            };
        }
        // PostgreSQL's own texts name constraints and echo the input; they
        // go to the log, and the client gets a sentence of ours.
        tracing::debug!(sqlstate = state, error = %db.message(), "database refused a statement");
        let (status, code, message) = match state {
            "23505" => (
                409,
                "conflict",
                "a resource with these values already exists",
            ),
            "23503" => (
                409,
                "conflict",
                "the request refers to a resource that does not exist",
            ),
            "23514" | "23502" | "23P01" => (
                400,
                "invalid_input",
                "the request breaks a rule of the data it would write",
            ),
            s if s.starts_with("22") => (400, "invalid_input", "a value in the request is invalid"),
            "40001" | "40P01" => (503, "retry", "the request met a concurrent one; retry it"),
            "57014" => (
                503,
                "statement_timeout",
                "the database took too long to answer; retry later",
            ),
            s if session_ended(s) || s.starts_with("53") => return unavailable(),
            _ => return internal(),
        };
        MappedError {
            status,
            code: code.into(),
            message: message.into(),
            details: json!({}),
        }
    }
}

/// SQLSTATEs of a session the server ended or lost.
fn session_ended(sqlstate: &str) -> bool {
    sqlstate.starts_with("08") || sqlstate.starts_with("57P")
}
