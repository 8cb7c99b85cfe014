//! Agent variants (docs/variants.md) through HTTP: CRUD, slugs, clone, activation,
//! resolution, performance, metrics, history, compare, reporting view.
//! Property and concurrency tests are in variants_props. The shared helpers
//! are here; the tests, one module per area.

use crate::support::variants::agent_config;
use crate::support::{error_code, TestApp};
use serde_json::{json, Value};

mod activation;
mod crud;
mod input;
mod metrics;

const CONFIG_KEYS: [&str; 12] = [
    "modelProvider",
    "modelName",
    "systemPrompt",
    "userPromptTemplate",
    "promptVersion",
    "temperature",
    "maxTokens",
    "contextWindow",
    "inputTokenLimit",
    "tokenBudget",
    "timeoutSeconds",
    "maxRetries",
];

/// Registers an agent directly in agents.agents (the registry API is another domain).
async fn add_agent(app: &TestApp, name: &str) {
    crate::support::variants::add_agent(&app.db.client().await, name).await;
}

fn config_of(v: &Value) -> Value {
    let mut m = serde_json::Map::new();
    for k in CONFIG_KEYS {
        m.insert(k.to_string(), v[k].clone());
    }
    Value::Object(m)
}

async fn count_rows(app: &TestApp, sql: &str) -> i64 {
    app.db
        .client()
        .await
        .query_one(sql, &[])
        .await
        .unwrap()
        .get(0)
}

async fn variant_rows(app: &TestApp) -> i64 {
    count_rows(app, "SELECT count(*) FROM variants.variants").await
}

async fn events(app: &TestApp, ty: &str) -> Vec<Value> {
    app.db
        .client()
        .await
        .query(
            "SELECT body FROM feed.events WHERE type = $1 ORDER BY id",
            &[&ty],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Value>(0))
        .collect()
}

const V: &str = "/api/v1/agents/bot/variants";
