//! Agent variants: thin calls to the variants.* SQL functions (sql/variants/).
//! Every function returns the API's camelCase JSON as built by SQL.

use super::DbError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tokio_postgres::types::ToSql;
use tokio_postgres::GenericClient;

async fn call(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Value, DbError> {
    Ok(client.query_one(sql, params).await?.try_get(0)?)
}

/// `variants.create(agent, {name, slug?, ...config})`.
pub async fn create(
    client: &impl GenericClient,
    agent: &str,
    body: &Value,
) -> Result<Value, DbError> {
    call(client, "SELECT variants.create($1, $2)", &[&agent, body]).await
}

/// `variants.clone(agent, source, name, slug, overrides)`.
pub async fn clone(
    client: &impl GenericClient,
    agent: &str,
    source: Option<&str>,
    name: &str,
    slug: Option<&str>,
    overrides: &Value,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT variants.clone($1, $2, $3, $4, $5)",
        &[&agent, &source, &name, &slug, overrides],
    )
    .await
}

pub async fn list(client: &impl GenericClient, agent: &str) -> Result<Value, DbError> {
    call(client, "SELECT variants.list($1)", &[&agent]).await
}

pub async fn get(client: &impl GenericClient, agent: &str, slug: &str) -> Result<Value, DbError> {
    call(client, "SELECT variants.get($1, $2)", &[&agent, &slug]).await
}

/// `variants.patch(agent, slug, patch)`: only the keys present change.
pub async fn patch(
    client: &impl GenericClient,
    agent: &str,
    slug: &str,
    patch: &Value,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT variants.patch($1, $2, $3)",
        &[&agent, &slug, patch],
    )
    .await
}

pub async fn delete(
    client: &impl GenericClient,
    agent: &str,
    slug: &str,
) -> Result<Value, DbError> {
    call(client, "SELECT variants.delete($1, $2)", &[&agent, &slug]).await
}

pub async fn activate(
    client: &impl GenericClient,
    agent: &str,
    slug: &str,
) -> Result<Value, DbError> {
    call(client, "SELECT variants.activate($1, $2)", &[&agent, &slug]).await
}

pub async fn deactivate(client: &impl GenericClient, agent: &str) -> Result<Value, DbError> {
    call(client, "SELECT variants.deactivate($1)", &[&agent]).await
}

pub async fn resolved_config(client: &impl GenericClient, agent: &str) -> Result<Value, DbError> {
    call(client, "SELECT variants.resolved_config($1)", &[&agent]).await
}

/// One run reported by a runtime.
#[derive(Debug, Clone, Default)]
pub struct PerformanceInput {
    pub success: bool,
    pub latency_ms: f64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub quality_score: Option<f64>,
    pub error: Option<String>,
    pub variant_slug: Option<String>,
    pub at: Option<DateTime<Utc>>,
}

pub async fn log_performance(
    client: &impl GenericClient,
    agent: &str,
    p: &PerformanceInput,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT variants.log_performance($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &[
            &agent,
            &p.success,
            &p.latency_ms,
            &p.prompt_tokens,
            &p.completion_tokens,
            &p.cost,
            &p.quality_score,
            &p.error,
            &p.variant_slug,
            &p.at,
        ],
    )
    .await
}

pub async fn metrics(
    client: &impl GenericClient,
    agent: &str,
    slug: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT variants.metrics($1, $2, $3, $4)",
        &[&agent, &slug, &start, &end],
    )
    .await
}

pub async fn history(
    client: &impl GenericClient,
    agent: &str,
    slug: &str,
    bucket: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT variants.history($1, $2, $3, $4, $5)",
        &[&agent, &slug, &bucket, &start, &end],
    )
    .await
}

pub async fn compare(
    client: &impl GenericClient,
    agent: &str,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call(
        client,
        "SELECT variants.compare($1, $2, $3)",
        &[&agent, &start, &end],
    )
    .await
}
