//! Credits: bad input of every kind, and the filter-matching property.

use crate::support::credits::*;
use crate::support::{error_code, TestApp, TestDb};
use serde_json::{json, Value};

mod filter_property;
mod http;
mod sql;

/// Everything the credits domain has written, as one fingerprint per table.
async fn credits_state(c: &tokio_postgres::Client) -> Vec<String> {
    let mut out = Vec::new();
    for (table, order) in [
        ("credits.transactions", "id"),
        ("credits.balances", "user_id, bucket"),
        ("credits.users", "user_id"),
        ("credits.holds", "id"),
        ("credits.block_costs", "block_id"),
        ("credits.low_balance_alerts", "user_id, period, threshold"),
        ("feed.events", "id"),
    ] {
        let sql = format!(
            "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(t::text, ',' ORDER BY {order})), '') \
             FROM {table} t"
        );
        let v: String = c.query_one(sql.as_str(), &[]).await.unwrap().get(0);
        out.push(format!("{table}: {v}"));
    }
    out
}
