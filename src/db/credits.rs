//! Credits: thin calls to the credits.* SQL functions (sql/credits/).
//! Most functions answer JSON already in the API's camelCase shape.

use super::{call_json, DbError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

/// What a spend answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spent {
    pub transaction_id: i64,
    pub cost: i64,
    pub balance: i64,
}

/// The arguments of `credits.spend` (owned: a spend may wait in the spend
/// queue, src/db/spend_queue.rs, after its request handler was dropped).
#[derive(Debug, Clone, Default)]
pub struct SpendArgs {
    pub block_id: String,
    pub input: Option<Value>,
    pub duration_seconds: Option<f64>,
    pub amount: Option<i64>,
    pub validate_balance: bool,
    pub idempotency_key: Option<String>,
    pub metadata: Option<Value>,
    pub at: Option<DateTime<Utc>>,
}

/// `credits.spend`: one round trip.
pub async fn spend(pool: &Pool, user_id: &str, a: &SpendArgs) -> Result<Spent, DbError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT * FROM credits.spend($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .await?;
    let row = client
        .query_one(
            &stmt,
            &[
                &user_id,
                &a.block_id,
                &a.input,
                &a.duration_seconds,
                &a.amount,
                &a.validate_balance,
                &a.idempotency_key,
                &a.metadata,
                &a.at,
            ],
        )
        .await?;
    spent(&row)
}

/// `credits.spend_batch`: several spends of one user, in order, in one
/// transaction (all or nothing), one round trip.
pub async fn spend_batch(
    pool: &Pool,
    user_id: &str,
    spends: &[&SpendArgs],
) -> Result<Vec<Spent>, DbError> {
    let block_ids: Vec<&str> = spends.iter().map(|a| a.block_id.as_str()).collect();
    let inputs: Vec<Option<&Value>> = spends.iter().map(|a| a.input.as_ref()).collect();
    let durations: Vec<Option<f64>> = spends.iter().map(|a| a.duration_seconds).collect();
    let amounts: Vec<Option<i64>> = spends.iter().map(|a| a.amount).collect();
    let validate: Vec<bool> = spends.iter().map(|a| a.validate_balance).collect();
    let keys: Vec<Option<&str>> = spends
        .iter()
        .map(|a| a.idempotency_key.as_deref())
        .collect();
    let metadata: Vec<Option<&Value>> = spends.iter().map(|a| a.metadata.as_ref()).collect();
    let at: Vec<Option<DateTime<Utc>>> = spends.iter().map(|a| a.at).collect();
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT * FROM credits.spend_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .await?;
    let rows = client
        .query(
            &stmt,
            &[
                &user_id, &block_ids, &inputs, &durations, &amounts, &validate, &keys, &metadata,
                &at,
            ],
        )
        .await?;
    if rows.len() != spends.len() {
        return Err(DbError::decode(format!(
            "credits.spend_batch answered {} rows for {} spends",
            rows.len(),
            spends.len()
        )));
    }
    rows.iter().map(spent).collect()
}

fn spent(row: &tokio_postgres::Row) -> Result<Spent, DbError> {
    Ok(Spent {
        transaction_id: row.try_get(0)?,
        cost: row.try_get(1)?,
        balance: row.try_get(2)?,
    })
}

pub async fn put_user(
    pool: &Pool,
    user_id: &str,
    refill_amount: i64,
    refill_policy: &str,
    thresholds: Option<&[i64]>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.put_user($1, $2, $3, $4)",
        &[&user_id, &refill_amount, &refill_policy, &thresholds],
    )
    .await
}

pub async fn get_user(pool: &Pool, user_id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT credits.get_user($1)", &[&user_id]).await
}

pub async fn get_credits(
    pool: &Pool,
    user_id: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call_json(pool, "SELECT credits.get_credits($1, $2)", &[&user_id, &at]).await
}

pub async fn top_up(
    pool: &Pool,
    user_id: &str,
    amount: i64,
    idempotency_key: Option<&str>,
    metadata: Option<&Value>,
    at: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.top_up($1, $2, $3, $4, $5)",
        &[&user_id, &amount, &idempotency_key, &metadata, &at],
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub async fn adjust(
    pool: &Pool,
    user_id: &str,
    amount: i64,
    kind: &str,
    reason: &str,
    idempotency_key: Option<&str>,
    metadata: Option<&Value>,
    at: Option<DateTime<Utc>>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.adjust($1, $2, $3, $4, $5, $6, $7)",
        &[
            &user_id,
            &amount,
            &kind,
            &reason,
            &idempotency_key,
            &metadata,
            &at,
        ],
    )
    .await
}

pub async fn list_transactions(
    pool: &Pool,
    user_id: &str,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    kind: Option<&str>,
    limit: i32,
    after: Option<i64>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.list_transactions($1, $2, $3, $4, $5, $6)",
        &[&user_id, &from, &to, &kind, &limit, &after],
    )
    .await
}

pub async fn set_active(
    pool: &Pool,
    user_id: &str,
    transaction_id: i64,
    active: bool,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.set_active($1, $2, $3)",
        &[&user_id, &transaction_id, &active],
    )
    .await
}

/// The arguments of `credits.hold`.
#[derive(Debug, Clone, Default)]
pub struct HoldArgs<'a> {
    pub amount: Option<i64>,
    pub block_id: Option<&'a str>,
    pub input: Option<&'a Value>,
    pub duration_seconds: Option<f64>,
    pub ttl_seconds: Option<i32>,
    pub idempotency_key: Option<&'a str>,
}

pub async fn hold(pool: &Pool, user_id: &str, a: &HoldArgs<'_>) -> Result<Value, DbError> {
    let id = Uuid::new_v4();
    call_json(
        pool,
        "SELECT credits.hold($1, $2, $3, $4, $5, $6, $7, $8)",
        &[
            &user_id,
            &id,
            &a.amount,
            &a.block_id,
            &a.input,
            &a.duration_seconds,
            &a.ttl_seconds,
            &a.idempotency_key,
        ],
    )
    .await
}

pub async fn settle(
    pool: &Pool,
    user_id: &str,
    hold_id: Uuid,
    amount: i64,
    allow_debt: bool,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.settle($1, $2, $3, $4)",
        &[&user_id, &hold_id, &amount, &allow_debt],
    )
    .await
}

pub async fn release(pool: &Pool, user_id: &str, hold_id: Uuid) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.release($1, $2)",
        &[&user_id, &hold_id],
    )
    .await
}

pub async fn put_block_costs(pool: &Pool, block_id: &str, costs: &Value) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.put_block_costs($1, $2)",
        &[&block_id, &costs],
    )
    .await
}

pub async fn get_block_costs(pool: &Pool, block_id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT credits.get_block_costs($1)", &[&block_id]).await
}

pub async fn list_block_costs(pool: &Pool, limit: i32, offset: i32) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT credits.list_block_costs($1, $2)",
        &[&limit, &offset],
    )
    .await
}
