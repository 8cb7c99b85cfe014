//! The two agents-domain functions the feed needs, called as SQL so this
//! module does not depend on the agents domain's Rust code.

use crate::db::DbError;
use deadpool_postgres::Pool;
use serde_json::Value;

/// `agents.feed_snapshot()`: `{organism, agents, threads}` for `connected`.
pub async fn feed_snapshot(pool: &Pool) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT agents.feed_snapshot()", &[])
        .await?;
    Ok(row.try_get(0)?)
}

/// `agents.inject(to, payload, thread_id, from, payload_type)`: `{threadId, messageId}`.
pub async fn inject(
    pool: &Pool,
    to: &str,
    payload: &Value,
    thread_id: Option<&str>,
    from: Option<&str>,
    payload_type: Option<&str>,
) -> Result<Value, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT agents.inject($1, $2, $3, $4, $5)",
            &[&to, payload, &thread_id, &from, &payload_type],
        )
        .await?;
    Ok(row.try_get(0)?)
}
