//! Webhook endpoints and their delivery: thin calls to the webhooks.* SQL
//! functions (sql/webhooks/). Management calls return the API's camelCase
//! JSON as built by SQL; the worker's calls return typed rows.

use super::feed::StoredEvent;
use super::DbError;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;
use uuid::Uuid;

async fn call(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Value, DbError> {
    Ok(client.query_one(sql, params).await?.try_get(0)?)
}

/// What `create` is given (checked for shape by the API).
pub struct NewEndpoint<'a> {
    pub id: Uuid,
    pub url: &'a str,
    pub events: &'a [String],
    pub users: &'a [String],
    pub agents: &'a [String],
    pub description: Option<&'a str>,
    pub secret: &'a str,
}

pub async fn create(client: &impl GenericClient, e: &NewEndpoint<'_>) -> Result<Value, DbError> {
    call(
        client,
        "SELECT webhooks.create($1, $2, $3, $4, $5, $6, $7)",
        &[
            &e.id,
            &e.url,
            &e.events,
            &e.users,
            &e.agents,
            &e.description,
            &e.secret,
        ],
    )
    .await
}

pub async fn list(client: &impl GenericClient) -> Result<Value, DbError> {
    call(client, "SELECT webhooks.list()", &[]).await
}

pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Value, DbError> {
    call(client, "SELECT webhooks.get($1)", &[&id]).await
}

pub async fn delete(client: &impl GenericClient, id: Uuid) -> Result<Value, DbError> {
    call(client, "SELECT webhooks.delete($1)", &[&id]).await
}

pub async fn enable(client: &impl GenericClient, id: Uuid) -> Result<Value, DbError> {
    call(client, "SELECT webhooks.enable($1)", &[&id]).await
}

pub async fn deliveries(
    client: &impl GenericClient,
    id: Uuid,
    after: Option<i64>,
    limit: i32,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT webhooks.deliveries($1, $2, $3)",
        &[&id, &after, &limit],
    )
    .await
}

/// An endpoint a worker has leased.
#[derive(Debug, Clone)]
pub struct Claimed {
    pub id: Uuid,
    pub url: String,
    pub secret: String,
    pub position: i64,
    pub failures: i32,
}

/// Leases up to `limit` due endpoints behind `horizon` for `owner`
/// (`running`: those it is delivering to already).
pub async fn claim(
    client: &impl GenericClient,
    owner: Uuid,
    lease: Duration,
    horizon: i64,
    limit: i32,
    running: &[Uuid],
) -> Result<Vec<Claimed>, DbError> {
    let lease = lease.as_secs_f64();
    let rows = client
        .query(
            "SELECT id, url, secret, endpoint_position, failures \
             FROM webhooks.claim($1, make_interval(secs => $2), $3, $4, $5)",
            &[&owner, &lease, &horizon, &limit, &running],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Claimed {
                id: r.try_get(0)?,
                url: r.try_get(1)?,
                secret: r.try_get(2)?,
                position: r.try_get(3)?,
                failures: r.try_get(4)?,
            })
        })
        .collect()
}

/// Gives back every lease `owner` holds; returns how many.
pub async fn release(client: &impl GenericClient, owner: Uuid) -> Result<i32, DbError> {
    Ok(client
        .query_one("SELECT webhooks.release($1)", &[&owner])
        .await?
        .try_get(0)?)
}

/// The next events for an endpoint, and how far they cover.
#[derive(Debug, Deserialize)]
pub struct NextEvents {
    pub events: Vec<StoredEvent>,
    pub upto: i64,
}

pub async fn next_events(
    client: &impl GenericClient,
    id: Uuid,
    after: i64,
    upto: i64,
    limit: i32,
) -> Result<NextEvents, DbError> {
    let v = call(
        client,
        "SELECT webhooks.next_events($1, $2, $3, $4)",
        &[&id, &after, &upto, &limit],
    )
    .await?;
    serde_json::from_value(v).map_err(DbError::decode)
}

/// The retry schedule and the lease, as `record` needs them.
pub struct RecordRules {
    pub lease: Duration,
    pub delays: Vec<Duration>,
    pub disable_after: Duration,
}

/// What `record` answered.
#[derive(Debug, Deserialize)]
pub struct Recorded {
    /// The worker still holds the endpoint (else it stops).
    pub held: bool,
    pub enabled: bool,
}

/// Records attempts (`[{eventId, attempt, at, responseStatus, error,
/// durationMs, delivered}]`) and the position reached.
pub async fn record(
    client: &impl GenericClient,
    id: Uuid,
    owner: Uuid,
    attempts: &Value,
    position: i64,
    rules: &RecordRules,
) -> Result<Recorded, DbError> {
    let lease = rules.lease.as_secs_f64();
    let delays: Vec<f64> = rules.delays.iter().map(Duration::as_secs_f64).collect();
    let disable_after = rules.disable_after.as_secs_f64();
    let v = call(
        client,
        "SELECT webhooks.record($1, $2, $3, $4, make_interval(secs => $5), \
         ARRAY(SELECT make_interval(secs => d) FROM unnest($6::float8[]) d), \
         make_interval(secs => $7))",
        &[
            &id,
            &owner,
            attempts,
            &position,
            &lease,
            &delays,
            &disable_after,
        ],
    )
    .await?;
    serde_json::from_value(v).map_err(DbError::decode)
}

/// Deletes up to `batch` delivery attempts older than `older_than`.
pub async fn prune_deliveries(
    client: &impl GenericClient,
    older_than: Duration,
    batch: i32,
) -> Result<i32, DbError> {
    let secs = older_than.as_secs_f64();
    Ok(client
        .query_one(
            "SELECT webhooks.prune_deliveries(make_interval(secs => $1), $2)",
            &[&secs, &batch],
        )
        .await?
        .try_get(0)?)
}

/// Event ids the enabled endpoints are behind `horizon`, summed.
pub async fn backlog(client: &impl GenericClient, horizon: i64) -> Result<i64, DbError> {
    Ok(client
        .query_one("SELECT webhooks.backlog($1)", &[&horizon])
        .await?
        .try_get(0)?)
}
