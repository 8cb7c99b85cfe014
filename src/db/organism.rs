//! The organism row: this deployment's status.

use super::{call_json, DbError};
use deadpool_postgres::Pool;

/// `agents.organism_status()` as JSON (status, startedAt, counts).
pub async fn status(pool: &Pool) -> Result<serde_json::Value, DbError> {
    call_json(pool, "SELECT agents.organism_status()", &[]).await
}

/// Whether the database answers at all (for /health).
pub async fn ping(pool: &Pool) -> bool {
    match pool.get().await {
        Ok(c) => c.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    }
}

/// `agents.organism_stop()`: `{success, status}`.
pub async fn stop(pool: &Pool) -> Result<serde_json::Value, DbError> {
    call_json(pool, "SELECT agents.organism_stop()", &[]).await
}

/// `agents.organism_start()`: `{success, status}`.
pub async fn start(pool: &Pool) -> Result<serde_json::Value, DbError> {
    call_json(pool, "SELECT agents.organism_start()", &[]).await
}
