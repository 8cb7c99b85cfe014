//! The event log: the relay step, replay reads and retention pruning
//! (sql/feed.sql).

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
    /// Checkpoints (ascending) waiting for transactions running at their
    /// instant.
    pub checkpoints: Vec<i64>,
    /// Those transactions' xids, and for each the oldest checkpoint it
    /// holds back.
    pub xids: Vec<i64>,
    pub xid_first: Vec<i64>,
}

impl RelayCursor {
    /// Whether some checkpoint still waits (the relay then steps again soon).
    pub fn is_pending(&self) -> bool {
        !self.checkpoints.is_empty()
    }
}

fn decode_events(v: Value) -> Result<Vec<StoredEvent>, DbError> {
    serde_json::from_value(v).map_err(DbError::decode)
}

/// The relay step's query (`statement` of `relay_poll`: this text, or it
/// prepared).
pub const RELAY_POLL: &str = "SELECT cut, cands, xids, xid_first, events \
                              FROM feed.relay_poll($1, $2, $3, $4, $5, $6, $7)";

/// One relay step: advances the cut and reads up to `limit` events after
/// `after` (none when `after` is `None`), only those of `users` when given.
pub async fn relay_poll<S: tokio_postgres::ToStatement + ?Sized>(
    client: &tokio_postgres::Client,
    statement: &S,
    after: Option<i64>,
    cursor: &mut RelayCursor,
    limit: i32,
    users: Option<&[String]>,
) -> Result<Vec<StoredEvent>, DbError> {
    let row = client
        .query_one(
            statement,
            &[
                &after,
                &cursor.cut,
                &cursor.checkpoints,
                &cursor.xids,
                &cursor.xid_first,
                &limit,
                &users,
            ],
        )
        .await?;
    cursor.cut = row.try_get(0)?;
    cursor.checkpoints = row.try_get(1)?;
    cursor.xids = row.try_get(2)?;
    cursor.xid_first = row.try_get(3)?;
    decode_events(row.try_get(4)?)
}

/// Stored events in `(after, upto]`, id order, at most `limit`.
pub async fn read_range(
    pool: &Pool,
    after: i64,
    upto: i64,
    limit: i32,
) -> Result<Vec<StoredEvent>, DbError> {
    read_range_on(&**pool.get().await?, after, upto, limit).await
}

/// `read_range` limited to the events of `users` when given.
pub async fn read_range_of(
    pool: &Pool,
    after: i64,
    upto: i64,
    limit: i32,
    users: Option<&[String]>,
) -> Result<Vec<StoredEvent>, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT feed.read_range($1, $2, $3, $4)",
            &[&after, &upto, &limit, &users],
        )
        .await?;
    decode_events(row.try_get(0)?)
}

/// `read_range` on a given connection (the relay's).
pub async fn read_range_on(
    client: &tokio_postgres::Client,
    after: i64,
    upto: i64,
    limit: i32,
) -> Result<Vec<StoredEvent>, DbError> {
    let row = client
        .query_one(
            "SELECT feed.read_range($1, $2, $3)",
            &[&after, &upto, &limit],
        )
        .await?;
    decode_events(row.try_get(0)?)
}

/// A page of events holds at most this many bytes of bodies (as
/// `feed.page_bytes()` says); a page this close to it may have stopped
/// short of its row limit.
pub const PAGE_BYTES: usize = 8 * 1024 * 1024;

/// Whether events (of `users`, when given) lie in `(after, upto]`: a page
/// that stopped at its byte bound left some.
pub async fn has_more(
    client: &tokio_postgres::Client,
    after: i64,
    upto: i64,
    users: Option<&[String]>,
) -> Result<bool, DbError> {
    let row = client
        .query_one("SELECT feed.has_more($1, $2, $3)", &[&after, &upto, &users])
        .await?;
    Ok(row.try_get(0)?)
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
