//! The event log: the relay step, replay reads and retention pruning
//! (sql/events.sql).

use super::DbError;
use deadpool_postgres::Pool;
use serde::Deserialize;
use serde_json::Value;

/// One stored event, as `feed.event_json` renders it.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StoredEvent {
    pub id: i64,
    #[serde(rename = "type")]
    pub ty: String,
    pub user_id: Option<String>,
    #[serde(default)]
    pub agents: Vec<String>,
    pub thread_id: Option<String>,
    pub payload_type: Option<String>,
    pub graph_id: Option<String>,
    pub graph_exec_id: Option<String>,
    pub body: Value,
    pub created_at: String,
}

/// The relay's state between steps (see `feed.relay_poll`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RelayCursor {
    /// Ids up to here are final.
    pub cut: i64,
    /// A checkpoint waiting for the transactions running at its instant.
    pub pending: Option<(i64, Vec<i64>)>,
}

fn decode_events(v: Value) -> Result<Vec<StoredEvent>, DbError> {
    serde_json::from_value(v).map_err(DbError::decode)
}

/// One relay step: advances the cut and reads up to `limit` events after
/// `after` (none when `after` is `None`).
pub async fn relay_poll(
    client: &tokio_postgres::Client,
    after: Option<i64>,
    cursor: &mut RelayCursor,
    limit: i32,
) -> Result<Vec<StoredEvent>, DbError> {
    let (pend_seq, pend_xip) = match &cursor.pending {
        Some((s, x)) => (Some(*s), Some(x.clone())),
        None => (None, None),
    };
    let row = client
        .query_one(
            "SELECT cut, pend_seq, pend_xip, events FROM feed.relay_poll($1, $2, $3, $4, $5)",
            &[&after, &cursor.cut, &pend_seq, &pend_xip, &limit],
        )
        .await?;
    let cut: i64 = row.try_get(0)?;
    let seq: Option<i64> = row.try_get(1)?;
    let xip: Option<Vec<i64>> = row.try_get(2)?;
    cursor.cut = cut;
    cursor.pending = seq.map(|s| (s, xip.unwrap_or_default()));
    decode_events(row.try_get(3)?)
}

/// Stored events in `(after, upto]`, id order, at most `limit`.
pub async fn read_range(
    pool: &Pool,
    after: i64,
    upto: i64,
    limit: i32,
) -> Result<Vec<StoredEvent>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT feed.read_range($1, $2, $3)",
            &[&after, &upto, &limit],
        )
        .await?;
    decode_events(row.try_get(0)?)
}

/// Deletes up to `batch` events older than `older_than`; returns how many.
pub async fn prune(
    pool: &Pool,
    older_than: std::time::Duration,
    batch: i32,
) -> Result<i32, DbError> {
    let client = pool.get().await?;
    let secs = older_than.as_secs_f64();
    let row = client
        .query_one(
            "SELECT feed.prune(make_interval(secs => $1), $2)",
            &[&secs, &batch],
        )
        .await?;
    Ok(row.try_get(0)?)
}
