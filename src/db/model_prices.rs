//! Model prices: thin calls to usage.list_prices and usage.set_price
//! (sql/usage.sql). Every function returns the API's JSON shape.

use super::{call_json, DbError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde_json::Value;

/// `usage.list_prices()` → `{modelPrices}`
pub async fn list(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.list_prices()", &[]).await
}

/// A new price version as `usage.set_price` takes it (USD per million
/// tokens; None: the part's default price; `tiers` as the API's JSON).
#[derive(Debug, Clone)]
pub struct NewPrice<'a> {
    pub provider: &'a str,
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
    pub cached_prompt_per_million: Option<f64>,
    pub cache_write_per_million: Option<f64>,
    pub reasoning_per_million: Option<f64>,
    pub tiers: Option<Value>,
    pub effective_from: Option<DateTime<Utc>>,
}

/// `usage.set_price(...)` → the new version.
pub async fn set(pool: &Pool, model: &str, p: &NewPrice<'_>) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.set_price($1, $2, $3::float8::numeric, $4::float8::numeric,
                                $5::float8::numeric, $6::float8::numeric, $7::float8::numeric,
                                $8, $9)",
        &[
            &model,
            &p.provider,
            &p.prompt_per_million,
            &p.completion_per_million,
            &p.cached_prompt_per_million,
            &p.cache_write_per_million,
            &p.reasoning_per_million,
            &p.tiers,
            &p.effective_from,
        ],
    )
    .await
}
