//! What the console's browser test needs around the browser: the data its
//! views show, keys, and moving through the page as a user does.

use crate::support::browser::Browser;
use crate::support::TestServer;
use serde_json::json;
use std::time::Duration;

pub const ORGANISM: &str = "console-test";
pub const USER: &str = "ada";
pub const AGENT: &str = "planner";
/// How long the page may take to show what it fetched (generous: the
/// machine may be busy). The feed's promise is separate: 5 s.
pub const PATIENCE: u64 = 20;
/// A spend must reach the feed panel within this many seconds.
pub const FEED_LATENCY: u64 = 5;
pub const VIEWS: &[&str] = &["feed", "credits", "usage", "agents", "variants"];

pub async fn ok(
    reply: impl std::future::Future<Output = (u16, serde_json::Value)>,
) -> serde_json::Value {
    let (status, body) = reply.await;
    assert!((200..300).contains(&status), "{status}: {body}");
    body
}

/// What the views show: a user with credits and a ledger, usage on two days
/// (today and three days ago), a thread at 95 % of its budget, an agent with
/// two variants that have runs.
pub async fn seed(server: &TestServer) -> [String; 2] {
    ok(server.put(
        &format!("/api/v1/users/{USER}"),
        json!({"refillAmount": 1000, "refillPolicy": "reset"}),
    ))
    .await;
    ok(server.post(
        &format!("/api/v1/users/{USER}/credits/spend"),
        json!({"blockId": "llm", "input": {}, "amount": 7, "idempotencyKey": "seed"}),
    ))
    .await;
    // an open hold: it lowers `available`, not the balance
    ok(server.post(
        &format!("/api/v1/users/{USER}/credits/holds"),
        json!({"amount": 20, "ttlSeconds": 3600}),
    ))
    .await;
    ok(server.put(
        &format!("/api/v1/agents/{AGENT}"),
        json!({"description": "plans"}),
    ))
    .await;
    ok(server.put("/api/v1/agents/writer", json!({}))).await;
    let today = chrono::Utc::now();
    let earlier = today - chrono::Duration::days(3);
    for (at, thread, prompt) in [(earlier, "t-calm", 100), (today, "t-hot", 900)] {
        ok(server.post(
            "/api/v1/usage/records",
            json!({"threadId": thread, "agentId": AGENT, "model": "gpt-4o", "provider": "openai",
                   "promptTokens": prompt, "completionTokens": 50, "latencyMs": 700,
                   "userId": USER, "at": at.to_rfc3339()}),
        ))
        .await;
    }
    ok(server.put("/api/v1/usage/threads/t-hot", json!({"maxTokens": 1000}))).await;
    let variants = format!("/api/v1/agents/{AGENT}/variants");
    for (name, slug) in [("Fast", "fast"), ("Careful", "careful")] {
        ok(server.post(&variants, json!({"name": name, "slug": slug}))).await;
        for (success, latency) in [(true, 120.0), (true, 340.0), (false, 900.0)] {
            ok(server.post(
                &format!("/api/v1/agents/{AGENT}/performance"),
                json!({"success": success, "latencyMs": latency, "variantSlug": slug,
                       "promptTokens": 10, "completionTokens": 5, "cost": 0.002}),
            ))
            .await;
        }
    }
    [earlier, today].map(|d| d.format("%Y-%m-%d").to_string())
}

/// A key of `role` made through the API.
pub async fn key(server: &TestServer, role: &str) -> String {
    let b = ok(server.post("/api/v1/keys", json!({"name": role, "role": role}))).await;
    b["key"].as_str().expect("key").to_string()
}

pub async fn open_view(b: &Browser, view: &str) {
    b.click(&format!("#tab-{view}")).await;
    b.wait_for(
        &format!("!document.getElementById('view-{view}').hidden"),
        PATIENCE,
        &format!("the {view} view"),
    )
    .await;
}

pub async fn sign_in(b: &Browser, key: &str) {
    b.wait_for(
        "!document.getElementById('login').hidden",
        PATIENCE,
        "the key form",
    )
    .await;
    b.type_into("#key-input", key).await;
    b.click("#key-form button[type=submit]").await;
    b.wait_for(
        &format!("document.getElementById('org-name').textContent === '{ORGANISM}'"),
        PATIENCE,
        "the organism's name",
    )
    .await;
    b.wait_for(
        "document.getElementById('live').textContent === 'live'",
        PATIENCE,
        "the live feed",
    )
    .await;
}

/// Screenshots of every view at laptop and phone width (views must be
/// loaded: each is opened and given time to draw).
pub async fn screenshots(b: &Browser, tag: &str) {
    for (size, (w, h)) in [("laptop", (1280, 900)), ("phone", (390, 844))] {
        b.resize(w, h).await;
        for view in VIEWS {
            open_view(b, view).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            b.screenshot(&format!("{tag}-{view}-{size}")).await;
        }
    }
    b.resize(1280, 900).await;
}
