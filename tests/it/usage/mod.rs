//! Usage metering and thread budgets (docs/usage.md), against a real database:
//! the SQL functions directly and the HTTP API through the real router.
//! The shared helpers are here; the tests, one module per area.

use crate::support::{column, error_code, TestApp, TestDb};
use agentplane::db::usage::{self as usage_db, NewRecord};
use agentplane::db::usage_columns::RecordColumns;
use serde_json::{json, Value};

mod batches;
mod breakdown;
mod budgets;
mod history;
mod pricing;
mod property;
mod records;
mod reprice;

fn rec(thread: &str, agent: Option<&str>, model: &str, p: i64, c: i64) -> NewRecord {
    NewRecord {
        thread_id: thread.into(),
        agent_id: agent.map(Into::into),
        model: model.into(),
        prompt_tokens: p,
        completion_tokens: c,
        latency_ms: Some(10),
        ..Default::default()
    }
}

/// `records` as one batch.
fn batch(records: &[NewRecord]) -> RecordColumns {
    RecordColumns::from(records)
}

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// The threads of records whose price version, provider or cost is not
/// what `usage.price_at` at the record's time gives (cost recomputed here in
/// numeric, half up to 6 decimals); `provider` is the SQL for the provider
/// expected (`p` is the price row, `r` the record).
async fn mispriced(client: &tokio_postgres::Client, provider: &str) -> Vec<String> {
    column(
        client,
        &format!(
            // (The records read first: on Citus, a statement sent to the
            // shards cannot call a function that reads another table.)
            "WITH r AS MATERIALIZED (SELECT * FROM usage.records)
             SELECT r.thread_id FROM r
                 LEFT JOIN LATERAL usage.price_at(r.model, r.created_at) p ON true
                 WHERE r.price_id IS DISTINCT FROM p.id
                    OR r.provider IS DISTINCT FROM {provider}
                    OR r.cost IS DISTINCT FROM
                       round((r.prompt_tokens * p.prompt_per_million
                              + r.completion_tokens * p.completion_per_million) / 1000000, 6)"
        ),
    )
    .await
}

/// How many records have a cost (a known model).
async fn priced(client: &tokio_postgres::Client) -> i64 {
    count(
        client,
        "SELECT count(*) FROM usage.records WHERE cost IS NOT NULL",
    )
    .await
}

/// The one text value `sql` selects.
async fn text(client: &tokio_postgres::Client, sql: &str) -> String {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

/// Rows written by the usage domain anywhere (records, budgets, rollups, events).
async fn written(app: &TestApp) -> i64 {
    let c = app.db.client().await;
    count(
        &c,
        "SELECT (SELECT count(*) FROM usage.records) + (SELECT count(*) FROM usage.thread_budgets) \
         + (SELECT count(*) FROM usage.agent_rollup) + (SELECT count(*) FROM usage.model_rollup) \
         + (SELECT count(*) FROM usage.daily_rollup) + (SELECT count(*) FROM feed.events)",
    )
    .await
}

async fn post_record(app: &TestApp, body: Value) -> Value {
    let (s, b) = app.post("/api/v1/usage/records", body).await;
    assert_eq!(s, 200, "{b}");
    b
}

/// Every record of `GET /usage/history?{query}`, following `nextAfter` from
/// page to page.
async fn history_pages(app: &TestApp, query: &str) -> Vec<Value> {
    let mut records = Vec::new();
    let mut path = format!("/api/v1/usage/history?{query}");
    loop {
        let (s, h) = app.get(&path).await;
        assert_eq!(s, 200, "{h}");
        records.extend(h["records"].as_array().unwrap().iter().cloned());
        match h["nextAfter"].as_i64() {
            Some(n) => path = format!("/api/v1/usage/history?{query}&after={n}"),
            None => return records,
        }
    }
}
