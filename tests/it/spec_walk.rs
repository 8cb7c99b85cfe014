//! One walk through every operation of the OpenAPI document, each answering
//! a success, twice over: first with the fewest fields (so the answers carry
//! their nulls), then with every field (so they carry values). The shared
//! HTTP helper checks each answer against `openapi/openapi.json`
//! (tests/it/support/spec.rs); the walk ends by asserting that no operation of
//! the document was left out.

use crate::support::{spec, TestApp};
use serde_json::{json, Value};

/// The body of a 2xx answer (any other status fails the walk).
async fn ok(reply: impl std::future::Future<Output = (u16, Value)>) -> Value {
    let (status, body) = reply.await;
    assert!((200..300).contains(&status), "{status}: {body}");
    body
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Keys, organism, health, agents, capabilities, threads, messages, inbox.
async fn agents_and_messages(app: &TestApp, name: &str, full: bool) {
    ok(app.get("/health")).await;
    let key = ok(app.post(
        "/api/v1/keys",
        if full {
            json!({"name": "r", "role": "reader", "userId": "alice"})
        } else {
            json!({"name": "r", "role": "reader"})
        },
    ))
    .await;
    ok(app.get("/api/v1/keys")).await;
    ok(app.get("/api/v1/keys/me")).await;
    ok(app.delete(&format!("/api/v1/keys/{}", s(&key["id"])))).await;
    ok(app.get("/api/v1/organism")).await;
    ok(app.get("/api/v1/organism/config")).await;
    ok(app.post("/api/v1/organism/stop", json!({}))).await;
    ok(app.post("/api/v1/organism/start", json!({}))).await;

    let registration = if full {
        json!({"description": "d", "isAgent": true, "peers": ["p"], "payloadClass": "C",
               "rootTag": "r", "schemaXsd": "<xs/>", "exampleXml": "<r/>",
               "config": crate::support::variants::agent_config()})
    } else {
        json!({})
    };
    let agents = format!("/api/v1/agents/{name}");
    ok(app.put(&agents, registration)).await;
    ok(app.get("/api/v1/agents")).await;
    ok(app.get(&agents)).await;
    ok(app.get(&format!("{agents}/config"))).await;
    ok(app.get("/api/v1/capabilities")).await;
    ok(app.get(&format!("/api/v1/capabilities/{name}"))).await;

    let inject = if full {
        json!({"to": name, "payload": {"text": "hi"}, "threadId": format!("{name}-t"),
               "from": "user", "payloadType": "Greeting"})
    } else {
        json!({"to": name, "payload": {}})
    };
    let injected = ok(app.post("/api/v1/inject", inject)).await;
    let thread = s(&injected["threadId"]);
    let state = if full {
        json!({"state": "processing", "currentThread": thread})
    } else {
        json!({"state": "idle"})
    };
    ok(app.put(&format!("{agents}/state"), state)).await;
    ok(app.get(&agents)).await;
    ok(app.post(
        "/api/v1/messages",
        json!({"threadId": thread, "from": name, "to": name, "payloadType": "Reply",
               "payload": {"n": 1}}),
    ))
    .await;
    ok(app.get(&format!("/api/v1/messages?agent={name}"))).await;
    let claim = if full {
        json!({"max": 10, "visibilitySeconds": 30})
    } else {
        json!({})
    };
    let claimed = ok(app.post(&format!("{agents}/inbox/claim"), claim)).await;
    let message = s(&claimed["messages"][0]["id"]);
    ok(app.post(&format!("/api/v1/messages/{message}/ack"), json!({}))).await;
    ok(app.post(&format!("{agents}/pause"), json!({}))).await;
    ok(app.post(&format!("{agents}/resume"), json!({}))).await;

    ok(app.get("/api/v1/threads")).await;
    ok(app.get(&format!("/api/v1/threads/{thread}"))).await;
    ok(app.get(&format!("/api/v1/threads/{thread}/messages"))).await;
    let end = if full {
        json!({"status": "error", "error": "boom"})
    } else {
        json!({"status": "completed"})
    };
    ok(app.post(&format!("/api/v1/threads/{thread}/complete"), end)).await;
    ok(app.get(&format!("/api/v1/threads/{thread}"))).await;
    let other = ok(app.post("/api/v1/inject", json!({"to": name, "payload": {}}))).await;
    ok(app.post(
        &format!("/api/v1/threads/{}/kill", s(&other["threadId"])),
        json!({}),
    ))
    .await;
}

/// Variants, their activation, metrics, history and the resolved config.
async fn variants(app: &TestApp, name: &str, full: bool) {
    let base = format!("/api/v1/agents/{name}/variants");
    ok(app.get(&format!("/api/v1/agents/{name}/resolved-config"))).await;
    let mut create = json!({"name": "Fast one"});
    if full {
        create["slug"] = json!("fast");
        for (k, v) in crate::support::variants::agent_config()
            .as_object()
            .into_iter()
            .flatten()
        {
            create[k] = v.clone();
        }
    }
    let created = ok(app.post(&base, create)).await;
    let slug = s(&created["slug"]);
    ok(app.get(&base)).await;
    ok(app.get(&format!("{base}/{slug}"))).await;
    let clone = if full {
        json!({"source": slug, "name": "Copy", "slug": "copy",
               "overrides": {"temperature": 1.5, "modelName": null}})
    } else {
        json!({"name": "Copy"})
    };
    let copy = s(&ok(app.post(&format!("{base}/clone"), clone)).await["slug"]);
    ok(app.patch(&format!("{base}/{copy}"), json!({"maxRetries": null}))).await;
    // Metrics before any run: the averages and percentiles are null.
    ok(app.get(&format!("{base}/{slug}/metrics"))).await;
    ok(app.get(&format!("{base}/compare"))).await;
    ok(app.post(&format!("{base}/{slug}/activate"), json!({}))).await;
    ok(app.get(&format!("/api/v1/agents/{name}/resolved-config"))).await;
    let run = if full {
        json!({"success": false, "latencyMs": 12.5, "promptTokens": 10, "completionTokens": 5,
               "cost": 0.01, "qualityScore": 0.5, "error": "timeout", "variantSlug": slug,
               "at": "2026-01-05T10:00:00Z"})
    } else {
        json!({"success": true, "latencyMs": 3})
    };
    ok(app.post(&format!("/api/v1/agents/{name}/performance"), run)).await;
    let range = "start=2026-01-01T00:00:00Z&end=2027-01-01T00:00:00Z";
    ok(app.get(&format!("{base}/{slug}/metrics?{range}"))).await;
    ok(app.get(&format!("{base}/{slug}/history?bucket=day&{range}"))).await;
    ok(app.get(&format!("{base}/compare?{range}"))).await;
    ok(app.post(&format!("{base}/deactivate"), json!({}))).await;
    // Deactivating again is a no-op whose answer names no variant.
    ok(app.post(&format!("{base}/deactivate"), json!({}))).await;
    ok(app.delete(&format!("{base}/{copy}"))).await;
}

/// Users, credits, holds and block prices.
async fn credits(app: &TestApp, user: &str, full: bool) {
    let put = if full {
        json!({"refillAmount": 500, "refillPolicy": "top_up_to", "lowBalanceThresholds": [100]})
    } else {
        json!({"refillAmount": 1000, "refillPolicy": "reset"})
    };
    ok(app.put(&format!("/api/v1/users/{user}"), put)).await;
    ok(app.get(&format!("/api/v1/users/{user}"))).await;
    let costs = if full {
        json!({"costs": [{"costType": "run", "amount": 5, "filter": {"k": "v"}},
                         {"costType": "byte", "amount": 1}]})
    } else {
        json!({"costs": []})
    };
    ok(app.put(&format!("/api/v1/block-costs/{user}-block"), costs)).await;
    ok(app.get(&format!("/api/v1/block-costs/{user}-block"))).await;
    ok(app.get("/api/v1/block-costs")).await;

    let credits = format!("/api/v1/users/{user}/credits");
    ok(app.get(&credits)).await;
    let spend = if full {
        json!({"blockId": format!("{user}-block"), "input": {"k": "v"}, "durationSeconds": 1.5,
               "validateBalance": true, "idempotencyKey": "s1", "metadata": {"run": 1}})
    } else {
        json!({"blockId": "free", "amount": 3})
    };
    ok(app.post(&format!("{credits}/spend"), spend)).await;
    let top_up = if full {
        json!({"amount": 10, "idempotencyKey": "t1", "metadata": {}})
    } else {
        json!({"amount": 10})
    };
    let topped = ok(app.post(&format!("{credits}/top-up"), top_up)).await;
    ok(app.post(
        &format!("{credits}/adjust"),
        json!({"amount": -2, "kind": "adjustment", "reason": "walk"}),
    ))
    .await;
    let tx = s(&topped["transactionId"]);
    ok(app.post(
        &format!("{credits}/transactions/{tx}/deactivate"),
        json!({}),
    ))
    .await;
    ok(app.post(&format!("{credits}/transactions/{tx}/activate"), json!({}))).await;

    let hold = if full {
        json!({"blockId": format!("{user}-block"), "input": {"k": "v"}, "ttlSeconds": 60,
               "idempotencyKey": "h1"})
    } else {
        json!({"amount": 4})
    };
    let held = ok(app.post(&format!("{credits}/holds"), hold)).await;
    let settle = if full {
        json!({"amount": 6, "allowDebt": true})
    } else {
        json!({"amount": 4})
    };
    let hold_id = s(&held["holdId"]);
    ok(app.post(&format!("{credits}/holds/{hold_id}/settle"), settle)).await;
    let other = ok(app.post(&format!("{credits}/holds"), json!({"amount": 1}))).await;
    let other_id = s(&other["holdId"]);
    ok(app.post(&format!("{credits}/holds/{other_id}/release"), json!({}))).await;
    // Refill, spend, top-up, adjustment and settled hold: every kind of row.
    ok(app.get(&format!("{credits}/transactions?limit=100"))).await;
    ok(app.get(&format!("{credits}/transactions?limit=1"))).await;
}

/// Usage records, budgets, totals, history, prices and node executions.
async fn usage(app: &TestApp, tag: &str, full: bool) {
    let thread = format!("{tag}-thread");
    let record = if full {
        json!({"threadId": thread, "agentId": "bot", "model": "gpt-4o", "provider": "openai",
               "promptTokens": 100, "completionTokens": 50, "latencyMs": 800,
               "userId": "alice", "variantId": "v1", "metadata": {"k": 1},
               "at": "2026-03-01T00:00:00Z", "cachedPromptTokens": 50,
               "cacheWriteTokens": 10, "reasoningTokens": 20})
    } else {
        // An unknown model has no price: its cost is null.
        json!({"threadId": thread, "model": "no-such-model", "promptTokens": 1,
               "completionTokens": 1})
    };
    ok(app.post("/api/v1/usage/records", record.clone())).await;
    ok(app.post("/api/v1/usage/records/batch", json!({"records": [record]}))).await;
    let estimate = if full {
        json!({"estimatedTokens": 10})
    } else {
        json!({})
    };
    ok(app.post(&format!("/api/v1/usage/threads/{thread}/check"), estimate)).await;
    ok(app.get("/api/v1/usage")).await;
    ok(app.get("/api/v1/usage/threads")).await;
    ok(app.get(&format!("/api/v1/usage/threads/{thread}"))).await;
    ok(app.put(
        &format!("/api/v1/usage/threads/{thread}"),
        json!({"maxTokens": 5000}),
    ))
    .await;
    ok(app.get("/api/v1/usage/agents/bot")).await;
    ok(app.get("/api/v1/usage/models/gpt-4o")).await;
    ok(app.get("/api/v1/usage/history?limit=1")).await;
    ok(app.get("/api/v1/usage/history")).await;
    ok(app.get("/api/v1/usage/daily")).await;
    let range = json!({"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"});
    if full {
        ok(app.post(
            "/api/v1/usage/reprice",
            json!({"start": "2026-01-01T00:00:00Z", "end": "2027-01-01T00:00:00Z",
                   "model": "gpt-4o", "dryRun": true}),
        ))
        .await;
    }
    ok(app.post("/api/v1/usage/reprice", range)).await;
    ok(app.post("/api/v1/usage/reset", json!({}))).await;
    ok(app.get("/api/v1/usage")).await;
    ok(app.get("/api/v1/model-prices")).await;
    ok(app.put(
        &format!("/api/v1/model-prices/{tag}-model"),
        if full {
            json!({"provider": "p", "promptPerMillion": 1, "completionPerMillion": 2,
                   "cachedPromptPerMillion": 0.5, "cacheWritePerMillion": 1.5,
                   "reasoningPerMillion": 3, "effectiveFrom": "2026-01-01T00:00:00Z",
                   "tiers": [{"abovePromptTokens": 1000, "promptPerMillion": 2,
                              "completionPerMillion": 4, "cachedPromptPerMillion": 1}]})
        } else {
            json!({"provider": "p", "promptPerMillion": 1, "completionPerMillion": 2})
        },
    ))
    .await;

    let mut node = json!({"graphId": "g", "graphVersion": 1, "graphExecId": format!("{tag}-ge"),
                          "nodeId": "n", "blockId": "b", "status": "QUEUED",
                          "addTime": "2026-03-01T00:00:00Z"});
    if full {
        node["inputData"] = json!({"a": 1});
        node["outputData"] = json!({"b": 2});
        node["status"] = json!("COMPLETED");
        for k in ["queueTime", "startTime", "endTime"] {
            node[k] = json!("2026-03-01T00:00:01Z");
        }
    }
    ok(app.put(&format!("/api/v1/executions/nodes/{tag}-node"), node)).await;
    ok(app.get(&format!("/api/v1/executions/{tag}-ge/nodes"))).await;
}

/// Webhook endpoints and their delivery attempts (written here directly:
/// the in-process app runs no delivery worker).
async fn webhooks(app: &TestApp, tag: &str, full: bool) {
    let body = if full {
        json!({"url": format!("https://example.com/{tag}"), "events": ["usage", "message"],
               "users": ["alice"], "agents": ["bot"], "description": "billing"})
    } else {
        json!({"url": format!("http://127.0.0.1:9/{tag}")})
    };
    let created = ok(app.post("/api/v1/webhooks", body)).await;
    let id = s(&created["id"]);
    ok(app.get("/api/v1/webhooks")).await;
    let db = app.db.client().await;
    let (status, error) = if full {
        (Some(500), Some("HTTP 500"))
    } else {
        (None, None)
    };
    db.execute(
        "INSERT INTO webhooks.deliveries (endpoint_id, event_id, attempt, at, response_status, \
         error, duration_ms, delivered) VALUES ($1::text::uuid, 1, 1, now(), $2, $3, 3, $4)",
        &[&id, &status, &error, &!full],
    )
    .await
    .expect("delivery row");
    if full {
        db.execute(
            "UPDATE webhooks.endpoints SET enabled = false, disabled_at = now() \
             WHERE id = $1::text::uuid",
            &[&id],
        )
        .await
        .expect("disable");
    }
    ok(app.get(&format!("/api/v1/webhooks/{id}"))).await;
    ok(app.get(&format!("/api/v1/webhooks/{id}/deliveries"))).await;
    ok(app.get(&format!("/api/v1/webhooks/{id}/deliveries?after=0&limit=1"))).await;
    ok(app.post(&format!("/api/v1/webhooks/{id}/enable"), json!({}))).await;
    ok(app.delete(&format!("/api/v1/webhooks/{id}"))).await;
}

#[tokio::test]
async fn every_operation_answers_as_the_document_says() {
    let app = TestApp::new().await;
    // no relay runs here: every id written is taken as final
    app.state.hub.start_at(1 << 40);
    for (tag, full) in [("sparse", false), ("full", true)] {
        agents_and_messages(&app, &format!("{tag}-agent"), full).await;
        variants(&app, &format!("{tag}-agent"), full).await;
        credits(&app, &format!("{tag}-user"), full).await;
        usage(&app, tag, full).await;
        let events = ok(app.get(if full {
            "/api/v1/events?after=0&limit=100&events=message,usage&agents=full-agent"
        } else {
            "/api/v1/events"
        }))
        .await;
        assert!(events["count"].as_i64() > Some(0), "{events}");
        webhooks(&app, tag, full).await;
        ok(app.delete(&format!("/api/v1/agents/{tag}-agent"))).await;
    }
    assert_eq!(
        spec::operations_not_succeeded(),
        Vec::<String>::new(),
        "operations of the document the walk did not reach"
    );
}

/// The `/ws` `connected` message carries the organism exactly as
/// `GET /api/v1/organism` answers it (same keys, same values but uptime).
#[tokio::test]
async fn ws_connected_organism_is_the_organism_resource() {
    let srv = crate::support::TestServer::start().await;
    let (status, mut organism) = srv.get("/api/v1/organism").await;
    assert_eq!(status, 200, "{organism}");
    let mut ws = crate::support::ws::connect(&srv.ws_url("/ws")).await;
    let mut hello = crate::support::ws::recv(&mut ws).await;
    assert_eq!(hello["event"], "connected", "{hello}");
    let sent = hello["organism"].take();
    assert!(sent["uptimeSeconds"].is_i64(), "{sent}");
    let mut sent = sent;
    for o in [&mut organism, &mut sent] {
        o["uptimeSeconds"] = json!(0);
    }
    assert_eq!(sent, organism);
}

/// The served document is the committed one, and its request examples are
/// requests the server accepts.
#[tokio::test]
async fn the_documented_examples_are_accepted() {
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/openapi.json"))
            .expect("openapi.json"),
    )
    .expect("json");
    let example = |schema: &str| {
        let e = doc["components"]["schemas"][schema]["example"].clone();
        assert!(e.is_object(), "{schema} has no example");
        e
    };
    let app = TestApp::new().await;
    // What the server serves is the committed document.
    assert_eq!(ok(app.get("/openapi.json")).await, doc);
    ok(app.put("/api/v1/agents/greeter", json!({}))).await;
    ok(app.post("/api/v1/inject", example("InjectRequest"))).await;
    ok(app.post("/api/v1/usage/records", example("UsageRecordIn"))).await;
    ok(app.post("/api/v1/users/alice/credits/spend", example("SpendRequest"))).await;
    ok(app.post("/api/v1/agents/greeter/variants", example("CreateVariant"))).await;
}

/// JSON numbers at the edge of the f64 range are kept in jsonb as NUMERIC
/// and come back from PostgreSQL as hundreds of digits, which serde_json
/// refuses ("number out of range": every later read of the row was a 503)
/// unless its `float_roundtrip` feature is on. The server turns it on; test
/// builds also get it from the `jsonschema` dev-dependency, so this test
/// guards the behaviour rather than the feature line.
#[tokio::test]
async fn stored_extreme_numbers_read_back() {
    let app = TestApp::new().await;
    let metadata = json!({"min": f64::MIN, "max": f64::MAX, "tiny": 4.2e-229});
    ok(app.post(
        "/api/v1/usage/records",
        json!({"threadId": "t", "model": "gpt-4o", "promptTokens": 1, "completionTokens": 1,
               "metadata": metadata}),
    ))
    .await;
    let history = ok(app.get("/api/v1/usage/history")).await;
    assert_eq!(history["records"][0]["metadata"], metadata);
    ok(app.post(
        "/api/v1/users/u/credits/top-up",
        json!({"amount": 1, "metadata": metadata}),
    ))
    .await;
    let page = ok(app.get("/api/v1/users/u/credits/transactions")).await;
    assert_eq!(page["transactions"][0]["metadata"], metadata);
}
