//! Model prices: thin calls to usage.list_prices and usage.set_price
//! (sql/usage.sql). Every function returns the API's JSON shape.

use super::{call_json, DbError};
use deadpool_postgres::Pool;
use serde_json::Value;

/// `usage.list_prices()` → `{modelPrices}`
pub async fn list(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT usage.list_prices()", &[]).await
}

/// `usage.set_price(model, provider, prompt, completion)` → the new version.
pub async fn set(
    pool: &Pool,
    model: &str,
    provider: &str,
    prompt_per_million: f64,
    completion_per_million: f64,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT usage.set_price($1, $2, $3::float8::numeric, $4::float8::numeric)",
        &[
            &model,
            &provider,
            &prompt_per_million,
            &completion_per_million,
        ],
    )
    .await
}
