//! Agents domain (docs/agents.md): registry, capabilities, organism, threads,
//! messages and the durable inbox, against the real database — through the
//! SQL functions and through HTTP. The shared helpers are here; the tests,
//! one module per area.

use crate::support::{error_code, TestApp};
use agentplane::db;
use serde_json::{json, Value};
use std::collections::HashSet;

mod inbox;
mod input;
mod lifecycle;
mod messages;
mod registry;

/// Registers "greeter" (an agent with peer "shouter" and a config) and
/// "shouter" (a non-agent capability).
async fn register_pair(app: &TestApp) {
    let (s, b) = app
        .put(
            "/api/v1/agents/greeter",
            json!({
                "description": "Greets people",
                "isAgent": true,
                "peers": ["shouter"],
                "payloadClass": "GreetingPayload",
                "rootTag": "greeting",
                "schemaXsd": "<xs:schema/>",
                "exampleXml": "<greeting>hi</greeting>",
                "config": {
                    "modelProvider": "xai",
                    "modelName": "grok-4.1",
                    "systemPrompt": "You greet.",
                    "temperature": 0.7,
                    "maxTokens": 512,
                    "timeoutSeconds": 30,
                    "maxRetries": 3
                }
            }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app
        .put(
            "/api/v1/agents/shouter",
            json!({"description": "Shouts", "isAgent": false, "peers": [], "payloadClass": "ShoutPayload"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
}

/// Bodies of the events of `ty`, in id order.
async fn events(app: &TestApp, ty: &str) -> Vec<Value> {
    let c = app.db.client().await;
    c.query(
        "SELECT jsonb_build_object('body', body, 'agents', to_jsonb(agents), \
         'threadId', thread_id, 'payloadType', payload_type) \
         FROM feed.events WHERE type = $1 ORDER BY id",
        &[&ty],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| r.get(0))
    .collect()
}

/// Row counts of every table the domain writes, plus the event log.
async fn counts(app: &TestApp) -> Vec<i64> {
    let c = app.db.client().await;
    let mut out = Vec::new();
    for t in [
        "agents.agents",
        "agents.threads",
        "agents.messages",
        "agents.inbox",
        "feed.events",
    ] {
        out.push(
            c.query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
        );
    }
    out
}

async fn inject(app: &TestApp, body: Value) -> (u16, Value) {
    app.post("/api/v1/inject", body).await
}

async fn claim(app: &TestApp, agent: &str, max: i64, vis: i64) -> Vec<Value> {
    let (s, b) = app
        .post(
            &format!("/api/v1/agents/{agent}/inbox/claim"),
            json!({"max": max, "visibilitySeconds": vis}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    b["messages"].as_array().unwrap().clone()
}

async fn queue_depth(app: &TestApp, agent: &str) -> i64 {
    let (s, b) = app.get(&format!("/api/v1/agents/{agent}")).await;
    assert_eq!(s, 200, "{b}");
    b["queueDepth"].as_i64().unwrap()
}

async fn m_first(app: &TestApp, thread_id: &str) -> Value {
    let (_, m) = app
        .get(&format!("/api/v1/threads/{thread_id}/messages"))
        .await;
    m["messages"][0].clone()
}
