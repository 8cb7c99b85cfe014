//! Usage metering and thread budgets: thin calls to the usage.* SQL functions
//! (sql/usage.sql). Every function returns the API's JSON shape.

use super::{call_json, usage_columns::RecordColumns, DbError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

/// One usage record as the SQL writer takes it (a batch goes as
/// `RecordColumns`).
#[derive(Debug, Clone, Default)]
pub struct NewRecord {
    pub thread_id: String,
    pub agent_id: Option<String>,
    pub model: String,
    pub provider: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub latency_ms: Option<i64>,
    pub user_id: Option<String>,
    pub variant_id: Option<String>,
    pub metadata: Option<Value>,
    pub at: Option<DateTime<Utc>>,
    /// The breakdown, part of `prompt_tokens` / `completion_tokens` (None: 0).
    pub cached_prompt_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
}

/// `usage.record(...)` → `{id, totalTokens, cost, budget}`
pub async fn record(pool: &Pool, r: &NewRecord) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.record($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &r.thread_id,
            &r.agent_id,
            &r.model,
            &r.provider,
            &r.prompt_tokens,
            &r.completion_tokens,
            &r.latency_ms,
            &r.user_id,
            &r.variant_id,
            &r.metadata,
            &r.at,
            &r.cached_prompt_tokens,
            &r.cache_write_tokens,
            &r.reasoning_tokens,
        ],
    )
    .await
}

/// `usage.record_batch(...)` with one array per field → `{inserted, totalCost}`.
pub async fn record_batch(pool: &Pool, records: &RecordColumns) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.record_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        &[
            &records.thread_ids(),
            &records.agent_ids(),
            &records.models(),
            &records.providers(),
            &records.prompt_tokens(),
            &records.completion_tokens(),
            &records.latency_ms(),
            &records.user_ids(),
            &records.variant_ids(),
            &records.metadata(),
            &records.at(),
            &records.cached_prompt_tokens(),
            &records.cache_write_tokens(),
            &records.reasoning_tokens(),
        ],
    )
    .await
}

/// When a fold is due (`usage.fold_due`): at least `min_records` records
/// wait, or no batch came for `quiet`, or the oldest has waited `max_age`.
#[derive(Debug, Clone, Copy)]
pub struct FoldDue {
    pub min_records: i32,
    pub quiet: std::time::Duration,
    pub max_age: std::time::Duration,
}

/// Usage records written but not folded yet (`usage.unfolded_records`).
pub async fn unfolded_records(pool: &Pool) -> Result<i64, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one("SELECT usage.unfolded_records()", &[])
        .await?;
    Ok(row.try_get(0)?)
}

/// `usage.fold(max_records[, due])` → records folded into budgets and
/// rollups (0 when none waited, another fold is running, or it is not due).
pub async fn fold(pool: &Pool, max_records: i32, due: Option<FoldDue>) -> Result<i32, DbError> {
    let client = pool.get().await?;
    let row = client
        .query_one(
            "SELECT usage.fold($1, $2, make_interval(secs => $3), make_interval(secs => $4))",
            &[
                &max_records,
                &due.map(|d| d.min_records),
                &due.map(|d| d.quiet.as_secs_f64()),
                &due.map(|d| d.max_age.as_secs_f64()),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// `usage.check_budget(thread, estimated)` → `{allowed, budget}` or 429.
pub async fn check_budget(pool: &Pool, thread_id: &str, estimated: i64) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.check_budget($1, $2)",
        &[&thread_id, &estimated],
    )
    .await
}

/// `usage.get_budget(thread)` → ThreadBudget or 404.
pub async fn get_budget(pool: &Pool, thread_id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.get_budget($1)", &[&thread_id]).await
}

/// `usage.set_budget(thread, maxTokens)` → ThreadBudget.
pub async fn set_budget(pool: &Pool, thread_id: &str, max_tokens: i64) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.set_budget($1, $2)",
        &[&thread_id, &max_tokens],
    )
    .await
}

/// `usage.list_budgets(limit, offset)` → `{threads, count, total, offset, limit, defaultMaxTokens}`.
pub async fn list_budgets(pool: &Pool, limit: i32, offset: i32) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.list_budgets($1, $2)",
        &[&limit, &offset],
    )
    .await
}

/// `usage.overview()` → `{usage:{totals, byAgent, byModel, activeThreads}}`.
pub async fn overview(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.overview()", &[]).await
}

pub async fn agent_totals(pool: &Pool, agent_id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.agent_totals($1)", &[&agent_id]).await
}

pub async fn model_totals(pool: &Pool, model: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.model_totals($1)", &[&model]).await
}

/// `usage.reprice(start, end, model, dryRun)` →
/// `{repriceId, records, changed, previousCost, newCost, difference}`.
pub async fn reprice(
    pool: &Pool,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    model: Option<&str>,
    dry_run: bool,
) -> Result<Value, DbError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = '{REPRICE_TIMEOUT}'"
    ))
    .await?;
    let stmt = tx
        .prepare_cached("SELECT usage.reprice($1, $2, $3, $4)")
        .await?;
    let answer: Value = tx
        .query_one(&stmt, &[&start, &end, &model, &dry_run])
        .await?
        .try_get(0)?;
    tx.commit().await?;
    Ok(answer)
}

/// How long a reprice may run. It is one transaction over every record of
/// its range (that is what makes it atomic), at about 100,000 records a
/// second on a small machine: ten million records take longer than the
/// STATEMENT_TIMEOUT every other call keeps.
pub const REPRICE_TIMEOUT: &str = "15min";

/// `usage.reset()` → `{success, message, epoch}`.
pub async fn reset(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.reset()", &[]).await
}

/// Filters of the history.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub agent_id: Option<String>,
    pub model: Option<String>,
    pub thread_id: Option<String>,
    pub limit: i32,
    pub after: Option<i64>,
    /// Only this user's records (a key bound to the user).
    pub user_id: Option<String>,
}

/// `usage.history(...)` → `{records, count, nextAfter}`.
pub async fn history(pool: &Pool, q: &HistoryQuery) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.history($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &q.start,
            &q.end,
            &q.agent_id,
            &q.model,
            &q.thread_id,
            &q.limit,
            &q.after,
            &q.user_id,
        ],
    )
    .await
}

/// `usage.daily(start, end)` → `{days, count}`.
pub async fn daily(
    pool: &Pool,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.daily($1, $2)", &[&start, &end]).await
}

/// `usage.daily_for_user(start, end, user)`: [`daily`] over one user's records.
pub async fn daily_for_user(
    pool: &Pool,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    user_id: &str,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.daily_for_user($1, $2, $3)",
        &[&start, &end, &user_id],
    )
    .await
}
