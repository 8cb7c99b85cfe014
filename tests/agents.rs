//! Agents domain (docs/agents.md): registry, capabilities, organism, threads,
//! messages and the durable inbox, against the real database — through the
//! SQL functions and through HTTP.

mod common;

use agentplane::db;
use common::{error_code, TestApp};
use serde_json::{json, Value};
use std::collections::HashSet;

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

#[tokio::test]
async fn registry_capabilities_and_organism_counts() {
    let app = TestApp::new().await;
    register_pair(&app).await;

    let (s, b) = app.get("/api/v1/organism").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["agentCount"], 2);
    assert_eq!(b["name"], "agentplane");
    assert_eq!(b["status"], "running");
    assert_eq!(b["identityConfigured"], true);
    assert_eq!(b["activeThreads"], 0);
    assert_eq!(b["totalMessages"], 0);

    let (s, g) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(s, 200);
    assert_eq!(g["name"], "greeter");
    assert_eq!(g["description"], "Greets people");
    assert_eq!(g["isAgent"], true);
    assert_eq!(g["peers"], json!(["shouter"]));
    assert_eq!(g["payloadClass"], "GreetingPayload");
    assert_eq!(g["state"], "idle");
    assert_eq!(g["currentThread"], Value::Null);
    assert_eq!(g["queueDepth"], 0);
    assert_eq!(g["messageCount"], 0);
    assert!(g["lastActivity"].is_string());

    let (s, c) = app.get("/api/v1/agents/greeter/config").await;
    assert_eq!(s, 200);
    assert_eq!(c["name"], "greeter");
    assert_eq!(c["peers"], json!(["shouter"]));
    assert_eq!(c["payloadClass"], "GreetingPayload");
    let cfg = &c["config"];
    assert_eq!(cfg["modelProvider"], "xai");
    assert_eq!(cfg["modelName"], "grok-4.1");
    assert_eq!(cfg["systemPrompt"], "You greet.");
    assert_eq!(cfg["temperature"], 0.7);
    assert_eq!(cfg["maxTokens"], 512);
    assert_eq!(cfg["timeoutSeconds"], 30);
    assert_eq!(cfg["maxRetries"], 3);
    assert_eq!(cfg["contextWindow"], Value::Null);
    assert!(cfg.as_object().unwrap().contains_key("userPromptTemplate"));

    // re-registering without config keeps the config; with one replaces it
    let (s, _) = app
        .put(
            "/api/v1/agents/greeter",
            json!({"description": "Greets", "isAgent": true, "peers": ["shouter"], "payloadClass": "GreetingPayload",
                   "rootTag": "greeting", "schemaXsd": "<xs:schema/>", "exampleXml": "<greeting>hi</greeting>"}),
        )
        .await;
    assert_eq!(s, 200);
    let (_, c) = app.get("/api/v1/agents/greeter/config").await;
    assert_eq!(c["description"], "Greets");
    assert_eq!(c["config"]["modelName"], "grok-4.1");

    // capabilities: sorted by name, whatever the registration order
    let (s, _) = app
        .put("/api/v1/agents/aardvark", json!({"description": "first"}))
        .await;
    assert_eq!(s, 200);
    let (s, caps) = app.get("/api/v1/capabilities").await;
    assert_eq!(s, 200);
    assert_eq!(caps["count"], 3);
    let names: Vec<&str> = caps["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["aardvark", "greeter", "shouter"]);
    let greeter = &caps["capabilities"][1];
    assert_eq!(greeter["rootTag"], "greeting");
    assert_eq!(greeter["peers"], json!(["shouter"]));
    assert_eq!(greeter["isAgent"], true);

    let (s, d) = app.get("/api/v1/capabilities/greeter").await;
    assert_eq!(s, 200);
    assert_eq!(d["payloadClass"], "GreetingPayload");
    assert_eq!(d["schemaXsd"], "<xs:schema/>");
    assert_eq!(d["exampleXml"], "<greeting>hi</greeting>");
    let (s, d) = app.get("/api/v1/capabilities/shouter").await;
    assert_eq!(s, 200);
    assert_eq!(d["isAgent"], false);
    let obj = d.as_object().unwrap();
    assert!(obj.contains_key("exampleXml") && d["exampleXml"].is_null());

    let (s, list) = app.get("/api/v1/agents").await;
    assert_eq!(s, 200);
    assert_eq!(list["count"], 3);
    assert_eq!(list["agents"][0]["name"], "aardvark");

    // unknown names → 404
    for path in [
        "/api/v1/agents/nobody",
        "/api/v1/agents/nobody/config",
        "/api/v1/capabilities/nobody",
    ] {
        let (s, b) = app.get(path).await;
        assert_eq!((s, error_code(&b)), (404, "agent_not_found"), "{path}");
    }
    for path in [
        "/api/v1/agents/nobody/pause",
        "/api/v1/agents/nobody/resume",
    ] {
        let (s, _) = app.post(path, json!({})).await;
        assert_eq!(s, 404, "{path}");
    }
    let (s, _) = app
        .put("/api/v1/agents/nobody/state", json!({"state": "idle"}))
        .await;
    assert_eq!(s, 404);
    let (s, _) = app.delete("/api/v1/agents/nobody").await;
    assert_eq!(s, 404);

    // registrations wrote agent_state events
    let ev = events(&app, "agent_state").await;
    assert_eq!(ev.len(), 4);
    assert_eq!(ev[0]["body"]["agent"], "greeter");
    assert_eq!(ev[0]["body"]["state"], "idle");
    assert_eq!(ev[0]["agents"], json!(["greeter"]));
}

#[tokio::test]
async fn state_reports_and_agent_removal() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let (s, b) = app
        .put(
            "/api/v1/agents/greeter/state",
            json!({"state": "processing", "currentThread": "t-1"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["state"], "processing");
    assert_eq!(b["currentThread"], "t-1");
    let ev = events(&app, "agent_state").await;
    let last = &ev.last().unwrap()["body"];
    assert_eq!(
        *last,
        json!({"agent": "greeter", "state": "processing", "currentThread": "t-1"})
    );

    // a message to greeter sits in its inbox; removing greeter drops the
    // inbox but keeps the history
    let (s, inj) = inject(&app, json!({"to": "greeter", "payload": {"x": 1}})).await;
    assert_eq!(s, 200);
    let (s, b) = app.delete("/api/v1/agents/greeter").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"success": true, "name": "greeter"}));
    let (s, _) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(s, 404);
    let c = app.db.client().await;
    let inbox: i64 = c
        .query_one("SELECT count(*) FROM agents.inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(inbox, 0);
    let (s, m) = app
        .get(&format!(
            "/api/v1/threads/{}/messages",
            inj["threadId"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, 200);
    assert_eq!(m["total"], 1);
    let removed = events(&app, "agent_removed").await;
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["body"]["agent"], "greeter");
}

#[tokio::test]
async fn inject_and_list_messages() {
    let app = TestApp::new().await;
    register_pair(&app).await;

    let (s, b) = inject(&app, json!({"to": "greeter", "payload": {"text": "hello"}})).await;
    assert_eq!(s, 200, "{b}");
    let thread_id = b["threadId"].as_str().unwrap().to_string();
    let message_id = b["messageId"].as_str().unwrap().to_string();
    assert!(
        uuid::Uuid::parse_str(&thread_id).is_ok(),
        "server-made thread id"
    );
    assert!(uuid::Uuid::parse_str(&message_id).is_ok());

    let (s, t) = app.get(&format!("/api/v1/threads/{thread_id}")).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["status"], "active");
    assert_eq!(t["messageCount"], 1);
    assert_eq!(t["participants"], json!(["api", "greeter"]));
    assert_eq!(t["error"], Value::Null);

    let (s, m) = app
        .get(&format!("/api/v1/threads/{thread_id}/messages"))
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["count"], 1);
    let msg = &m["messages"][0];
    assert_eq!(msg["id"], message_id.as_str());
    assert_eq!(msg["threadId"], thread_id.as_str());
    assert_eq!(msg["from"], "api");
    assert_eq!(msg["to"], "greeter");
    assert_eq!(msg["payloadType"], "inject");
    assert_eq!(msg["payload"], json!({"text": "hello"}));
    assert!(msg["timestamp"].is_string());

    let (s, m) = app.get("/api/v1/messages?agent=greeter").await;
    assert_eq!(s, 200);
    assert_eq!(m["total"], 1);
    assert_eq!(m["offset"], 0);
    assert_eq!(m["limit"], 50);
    assert_eq!(m["messages"][0]["id"], message_id.as_str());

    // agent-to-agent in a client-named thread; agent matches sender too
    let (s, b) = inject(
        &app,
        json!({"to": "greeter", "payload": {"n": 1}, "threadId": "conv-1", "from": "user:7", "payloadType": "Greeting"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["threadId"], "conv-1");
    let (s, b) = app
        .post(
            "/api/v1/messages",
            json!({"threadId": "conv-1", "from": "greeter", "to": "shouter", "payloadType": "Shout", "payload": {"loud": true}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["from"], "greeter");
    assert_eq!(b["threadId"], "conv-1");
    let (_, t) = app.get("/api/v1/threads/conv-1").await;
    assert_eq!(t["messageCount"], 2);
    assert_eq!(t["participants"], json!(["greeter", "user:7", "shouter"]));
    let (_, m) = app.get("/api/v1/messages?agent=greeter").await;
    assert_eq!(m["total"], 3);
    assert_eq!(m["messages"][0]["payloadType"], "Shout", "newest first");
    let (_, m) = app.get("/api/v1/messages?agent=shouter").await;
    assert_eq!(m["total"], 1);
    let (_, m) = app
        .get("/api/v1/messages?threadId=conv-1&limit=1&offset=1")
        .await;
    assert_eq!(
        (m["total"].as_i64(), m["count"].as_i64()),
        (Some(2), Some(1))
    );
    assert_eq!(m["messages"][0]["payloadType"], "Greeting");
    let (_, g) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(g["messageCount"], 3);
    assert_eq!(g["queueDepth"], 2);
    let (_, o) = app.get("/api/v1/organism").await;
    assert_eq!(
        (o["activeThreads"].as_i64(), o["totalMessages"].as_i64()),
        (Some(2), Some(3))
    );

    // unknown target → 400, nothing written
    let before = counts(&app).await;
    let (s, b) = inject(&app, json!({"to": "nobody", "payload": {}})).await;
    assert_eq!((s, error_code(&b)), (400, "unknown_agent"));
    let (s, b) = app
        .post(
            "/api/v1/messages",
            json!({"threadId": "conv-1", "from": "greeter", "to": "nobody", "payloadType": "X", "payload": {}}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (400, "unknown_agent"));
    assert_eq!(counts(&app).await, before);

    // events: thread created, one message event per message with subjects
    let msgs = events(&app, "message").await;
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["agents"], json!(["api", "greeter"]));
    assert_eq!(msgs[0]["threadId"], thread_id.as_str());
    assert_eq!(msgs[0]["payloadType"], "inject");
    let (mut ev_msg, mut api_msg) = (
        msgs[0]["body"]["message"].clone(),
        m_first(&app, &thread_id).await,
    );
    let ts = |v: &mut Value| {
        let t = v["timestamp"].take();
        chrono::DateTime::parse_from_rfc3339(t.as_str().unwrap()).unwrap()
    };
    assert_eq!(ts(&mut ev_msg), ts(&mut api_msg));
    assert_eq!(ev_msg, api_msg, "the event carries the MessageInfo");
    let th = events(&app, "thread_updated").await;
    assert_eq!(th.len(), 2);
    assert_eq!(th[0]["body"]["threadId"], thread_id.as_str());
    assert_eq!(th[0]["body"]["status"], "active");
}

async fn m_first(app: &TestApp, thread_id: &str) -> Value {
    let (_, m) = app
        .get(&format!("/api/v1/threads/{thread_id}/messages"))
        .await;
    m["messages"][0].clone()
}

#[tokio::test]
async fn inject_sql_and_rust_interfaces() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let pool = app.db.pool();
    let r = db::agents::inject(&pool, "greeter", &json!({"a": 1}), Some("ws-1"), None, None)
        .await
        .unwrap();
    assert_eq!(r["threadId"], "ws-1");
    assert!(r["messageId"].is_string());
    let c = app.db.client().await;
    let v: Value = c
        .query_one(
            "SELECT agents.inject('shouter', '{\"b\":2}'::jsonb, p_from => 'greeter', p_payload_type => 'Shout')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(v["threadId"].is_string() && v["messageId"].is_string());
    let err = db::agents::inject(&pool, "nobody", &json!({}), None, None, None)
        .await
        .unwrap_err();
    assert_eq!(err.mapped().status, 400);

    let snap = db::agents::feed_snapshot(&pool).await.unwrap();
    assert_eq!(snap["organism"]["status"], "running");
    assert_eq!(snap["organism"]["agentCount"], 2);
    assert_eq!(snap["organism"]["activeThreads"], 2);
    assert_eq!(snap["organism"]["totalMessages"], 2);
    assert_eq!(snap["agents"].as_array().unwrap().len(), 2);
    assert_eq!(snap["agents"][0]["name"], "greeter");
    assert_eq!(snap["agents"][0]["queueDepth"], 1);
    let threads = snap["threads"].as_array().unwrap();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[0]["id"], v["threadId"], "newest activity first");

    // at most 100 threads in the snapshot
    c.batch_execute(
        "INSERT INTO agents.threads (id) SELECT 'bulk-' || g FROM generate_series(1, 120) g",
    )
    .await
    .unwrap();
    let snap = db::agents::feed_snapshot(&pool).await.unwrap();
    assert_eq!(snap["threads"].as_array().unwrap().len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claimers_each_message_once() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let pool = app.db.pool();
    for i in 0..100 {
        db::agents::inject(&pool, "greeter", &json!({"i": i}), None, None, None)
            .await
            .unwrap();
    }
    assert_eq!(queue_depth(&app, "greeter").await, 100);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let v = db::agents::claim(&pool, "greeter", 3, 300).await.unwrap();
                let msgs = v["messages"].as_array().unwrap().clone();
                if msgs.is_empty() {
                    break;
                }
                got.extend(
                    msgs.into_iter()
                        .map(|m| m["id"].as_str().unwrap().to_string()),
                );
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(all.len(), 100, "each message claimed exactly once");
    assert_eq!(unique.len(), 100);
    // claimed but not acked: still queued
    assert_eq!(queue_depth(&app, "greeter").await, 100);
    // every message was read exactly once
    let c = app.db.client().await;
    let reads: i64 = c
        .query_one("SELECT sum(read_count)::bigint FROM agents.inbox", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(reads, 100);
    // concurrent acks empty the queue
    let mut acks = Vec::new();
    for id in all {
        let pool = pool.clone();
        acks.push(tokio::spawn(async move {
            db::agents::ack(&pool, uuid::Uuid::parse_str(&id).unwrap())
                .await
                .unwrap()
        }));
    }
    for a in acks {
        assert_eq!(a.await.unwrap()["acked"], true);
    }
    assert_eq!(queue_depth(&app, "greeter").await, 0);
}

#[tokio::test]
async fn visibility_timeout_and_ack() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let (_, inj) = inject(&app, json!({"to": "greeter", "payload": {"x": 1}})).await;
    let id = inj["messageId"].as_str().unwrap().to_string();

    let got = claim(&app, "greeter", 10, 1).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["id"], id.as_str());
    assert_eq!(got[0]["payload"], json!({"x": 1}));
    assert!(
        claim(&app, "greeter", 10, 1).await.is_empty(),
        "invisible while claimed"
    );
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let again = claim(&app, "greeter", 10, 30).await;
    assert_eq!(again.len(), 1, "unacked message comes back");
    assert_eq!(again[0]["id"], id.as_str());

    let (s, b) = app
        .post(&format!("/api/v1/messages/{id}/ack"), json!({}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["acked"], true);
    assert_eq!(queue_depth(&app, "greeter").await, 0);
    let (s, b) = app
        .post(&format!("/api/v1/messages/{id}/ack"), json!({}))
        .await;
    assert_eq!(
        (s, b["acked"].as_bool()),
        (200, Some(false)),
        "second ack is a no-op"
    );
    let (s, b) = app
        .post(
            &format!("/api/v1/messages/{}/ack", uuid::Uuid::new_v4()),
            json!({}),
        )
        .await;
    assert_eq!((s, error_code(&b)), (404, "message_not_found"));
    let (s, _) = app.post("/api/v1/messages/not-a-uuid/ack", json!({})).await;
    assert_eq!(s, 400);
    assert_eq!(events(&app, "inbox.acked").await.len(), 1);
    assert_eq!(events(&app, "inbox.claimed").await.len(), 2);
}

#[tokio::test]
async fn pause_holds_the_inbox_and_resume_delivers() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let (s, b) = app.post("/api/v1/agents/greeter/pause", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b,
        json!({"success": true, "agent": "greeter", "state": "paused"})
    );
    let (_, g) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(g["state"], "paused");

    for i in 1..=3 {
        let (s, _) = inject(&app, json!({"to": "greeter", "payload": {"i": i}})).await;
        assert_eq!(s, 200, "a paused agent's inbox keeps filling");
        assert!(claim(&app, "greeter", 10, 30).await.is_empty());
        assert_eq!(queue_depth(&app, "greeter").await, i);
    }
    // a runtime reporting another state does not unpause it
    let (s, b) = app
        .put("/api/v1/agents/greeter/state", json!({"state": "idle"}))
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("paused")));
    assert!(claim(&app, "greeter", 10, 30).await.is_empty());

    let (s, b) = app.post("/api/v1/agents/greeter/resume", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(
        b,
        json!({"success": true, "agent": "greeter", "state": "idle"})
    );
    let got = claim(&app, "greeter", 10, 30).await;
    assert_eq!(got.len(), 3);
    let order: Vec<i64> = got
        .iter()
        .map(|m| m["payload"]["i"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [1, 2, 3], "oldest first");

    // reporting `paused` pauses too
    let (s, b) = app
        .put("/api/v1/agents/shouter/state", json!({"state": "paused"}))
        .await;
    assert_eq!((s, b["state"].as_str()), (200, Some("paused")));

    let states: Vec<String> = events(&app, "agent_state")
        .await
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["body"]["agent"].as_str().unwrap(),
                e["body"]["state"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            "greeter:idle",
            "shouter:idle",
            "greeter:paused",
            "greeter:paused",
            "greeter:idle",
            "shouter:paused"
        ]
    );
}

#[tokio::test]
async fn threads_complete_kill_and_filters() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    for t in ["t-a", "t-b", "t-c"] {
        let (s, _) = inject(&app, json!({"to": "greeter", "payload": {}, "threadId": t})).await;
        assert_eq!(s, 200);
    }
    let (s, _) = app
        .post(
            "/api/v1/messages",
            json!({"threadId": "t-c", "from": "greeter", "to": "shouter", "payloadType": "Shout", "payload": {}}),
        )
        .await;
    assert_eq!(s, 200);

    let (s, l) = app.get("/api/v1/threads").await;
    assert_eq!(s, 200);
    assert_eq!(
        (l["total"].as_i64(), l["count"].as_i64()),
        (Some(3), Some(3))
    );
    assert_eq!(l["threads"][0]["id"], "t-c", "newest activity first");
    let (_, l) = app.get("/api/v1/threads?agent=shouter").await;
    assert_eq!(l["total"], 1);
    let (_, l) = app.get("/api/v1/threads?limit=2&offset=2").await;
    assert_eq!(
        (
            l["total"].as_i64(),
            l["count"].as_i64(),
            l["limit"].as_i64(),
            l["offset"].as_i64()
        ),
        (Some(3), Some(1), Some(2), Some(2))
    );

    let (s, b) = app.post("/api/v1/threads/t-a/kill", json!({})).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b, json!({"success": true, "threadId": "t-a"}));
    let (s, b) = app
        .post(
            "/api/v1/threads/t-b/complete",
            json!({"status": "completed"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["status"], "completed");
    let (s, b) = app
        .post(
            "/api/v1/threads/t-c/complete",
            json!({"status": "error", "error": "model timed out"}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["error"], "model timed out");

    for (status, id) in [("killed", "t-a"), ("completed", "t-b"), ("error", "t-c")] {
        let (s, l) = app.get(&format!("/api/v1/threads?status={status}")).await;
        assert_eq!(s, 200);
        assert_eq!(l["total"], 1, "{status}");
        assert_eq!(l["threads"][0]["id"], id);
        assert_eq!(l["threads"][0]["status"], status);
    }
    let (_, l) = app.get("/api/v1/threads?status=active").await;
    assert_eq!(l["total"], 0);
    let (s, b) = app.get("/api/v1/threads?status=bogus").await;
    assert_eq!(s, 400, "{b}");
    error_code(&b);

    // kill dropped t-a's undelivered message; t-b's stays queued
    assert_eq!(queue_depth(&app, "greeter").await, 2);
    // ended threads take no more messages and cannot end twice
    let (s, b) = inject(
        &app,
        json!({"to": "greeter", "payload": {}, "threadId": "t-a"}),
    )
    .await;
    assert_eq!((s, error_code(&b)), (409, "thread_not_active"));
    let (s, b) = app.post("/api/v1/threads/t-a/kill", json!({})).await;
    assert_eq!((s, error_code(&b)), (409, "thread_not_active"));
    let (s, _) = app
        .post("/api/v1/threads/t-b/complete", json!({"status": "error"}))
        .await;
    assert_eq!(s, 409);
    let (s, _) = app
        .post(
            "/api/v1/threads/t-x/complete",
            json!({"status": "completed"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = app
        .post("/api/v1/threads/t-c/complete", json!({"status": "killed"}))
        .await;
    assert_eq!(s, 400);
    let (s, b) = app.get("/api/v1/threads/none").await;
    assert_eq!((s, error_code(&b)), (404, "thread_not_found"));
    let (s, _) = app.get("/api/v1/threads/none/messages").await;
    assert_eq!(s, 404);

    let th: Vec<String> = events(&app, "thread_updated")
        .await
        .iter()
        .map(|e| {
            format!(
                "{}:{}:{}",
                e["body"]["threadId"].as_str().unwrap(),
                e["body"]["status"].as_str().unwrap(),
                e["body"]["messageCount"]
            )
        })
        .collect();
    assert_eq!(
        th,
        [
            "t-a:active:0",
            "t-b:active:0",
            "t-c:active:0",
            "t-a:killed:1",
            "t-b:completed:1",
            "t-c:error:2"
        ]
    );
}

#[tokio::test]
async fn organism_stop_and_start() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let service = app.key("service", None).await;
    let (s, b) = app
        .call(
            "POST",
            "/api/v1/organism/stop",
            Some(&service),
            Some(&json!({})),
        )
        .await;
    assert_eq!(
        (s, error_code(&b)),
        (403, "forbidden"),
        "service cannot stop"
    );

    let (s, c) = app.get("/api/v1/organism/config").await;
    assert_eq!(s, 200);
    assert_eq!(c["name"], "agentplane");
    assert_eq!(c["port"], 8080);

    app.put(
        "/api/v1/agents/greeter/state",
        json!({"state": "processing", "currentThread": "t1"}),
    )
    .await;
    let (s, b) = app.post("/api/v1/organism/stop", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"success": true, "status": "stopping"}));
    let (_, o) = app.get("/api/v1/organism").await;
    assert_eq!(o["status"], "stopping");

    let before = counts(&app).await;
    let (s, b) = inject(&app, json!({"to": "greeter", "payload": {}})).await;
    assert_eq!((s, error_code(&b)), (409, "organism_stopped"));
    let (s, _) = app
        .post(
            "/api/v1/messages",
            json!({"threadId": "t", "from": "greeter", "to": "shouter", "payloadType": "X", "payload": {}}),
        )
        .await;
    assert_eq!(s, 409);
    assert_eq!(counts(&app).await, before);

    // once no agent is processing the organism is stopped
    app.put("/api/v1/agents/greeter/state", json!({"state": "idle"}))
        .await;
    let (_, o) = app.get("/api/v1/organism").await;
    assert_eq!(o["status"], "stopped");
    let (s, _) = inject(&app, json!({"to": "greeter", "payload": {}})).await;
    assert_eq!(s, 409);

    let (s, b) = app.post("/api/v1/organism/start", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(b, json!({"success": true, "status": "running"}));
    let (s, b) = inject(&app, json!({"to": "greeter", "payload": {}})).await;
    assert_eq!(s, 200, "{b}");
    // starting a running organism is a no-op
    let (s, _) = app.post("/api/v1/organism/start", json!({})).await;
    assert_eq!(s, 200);

    let st: Vec<Value> = events(&app, "organism")
        .await
        .iter()
        .map(|e| e["body"]["data"]["status"].clone())
        .collect();
    assert_eq!(st, [json!("stopping"), json!("stopped"), json!("running")]);
}

#[tokio::test]
async fn roles() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let reader = app.key("reader", None).await;
    let service = app.key("service", None).await;
    let before = counts(&app).await;
    let body = json!({"to": "greeter", "payload": {}});
    let (s, _) = app
        .call("POST", "/api/v1/inject", Some(&reader), Some(&body))
        .await;
    assert_eq!(s, 403, "reader cannot inject");
    let (s, _) = app.call("POST", "/api/v1/inject", None, Some(&body)).await;
    assert_eq!(s, 401);
    for (method, path, b) in [
        ("PUT", "/api/v1/agents/x", json!({})),
        ("DELETE", "/api/v1/agents/greeter", Value::Null),
        (
            "PUT",
            "/api/v1/agents/greeter/state",
            json!({"state": "idle"}),
        ),
        ("POST", "/api/v1/agents/greeter/pause", json!({})),
        ("POST", "/api/v1/agents/greeter/inbox/claim", json!({})),
        ("POST", "/api/v1/organism/start", json!({})),
    ] {
        let b = if b.is_null() { None } else { Some(&b) };
        let (s, _) = app.call(method, path, Some(&reader), b).await;
        assert_eq!(s, 403, "{method} {path}");
    }
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/organism/start",
            Some(&service),
            Some(&json!({})),
        )
        .await;
    assert_eq!(s, 403);
    assert_eq!(counts(&app).await, before);
    for path in [
        "/api/v1/agents",
        "/api/v1/agents/greeter",
        "/api/v1/agents/greeter/config",
        "/api/v1/capabilities",
        "/api/v1/threads",
        "/api/v1/messages",
        "/api/v1/organism",
        "/api/v1/organism/config",
    ] {
        let (s, b) = app.call("GET", path, Some(&reader), None).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let (s, b) = app
        .call("POST", "/api/v1/inject", Some(&service), Some(&body))
        .await;
    assert_eq!(s, 200, "service injects: {b}");
    let (s, _) = app
        .call(
            "POST",
            "/api/v1/agents/greeter/inbox/claim",
            Some(&service),
            Some(&json!({"max": 5, "visibilitySeconds": 10})),
        )
        .await;
    assert_eq!(s, 200);
}

#[tokio::test]
async fn bad_input_is_4xx_and_writes_nothing() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let (_, _) = inject(
        &app,
        json!({"to": "greeter", "payload": {}, "threadId": "t1"}),
    )
    .await;
    let before = counts(&app).await;
    let big = "x".repeat(100_001);
    let cases: Vec<(&str, String, Value)> = vec![
        ("PUT", "/api/v1/agents/bad%20name".into(), json!({})),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"temperature": 2.5}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"temperature": -0.1}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"maxTokens": 0}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"maxRetries": 11}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"timeoutSeconds": 0}}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"config": {"maxTokens": 3_000_000_000i64}}),
        ),
        ("PUT", "/api/v1/agents/a".into(), json!({"config": "nope"})),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"peers": ["ok", "not ok"]}),
        ),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"peers": "shouter"}),
        ),
        ("PUT", "/api/v1/agents/a".into(), json!({"isAgent": "yes"})),
        (
            "PUT",
            "/api/v1/agents/a".into(),
            json!({"description": big}),
        ),
        ("PUT", "/api/v1/agents/a".into(), json!([1, 2])),
        (
            "PUT",
            "/api/v1/agents/greeter/state".into(),
            json!({"state": "sleeping"}),
        ),
        (
            "PUT",
            "/api/v1/agents/greeter/state".into(),
            json!({"state": "idle", "currentThread": "a b"}),
        ),
        ("PUT", "/api/v1/agents/greeter/state".into(), json!({})),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": [1]}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": "text"}),
        ),
        ("POST", "/api/v1/inject".into(), json!({"to": "greeter"})),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "threadId": "bad id"}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "threadId": ""}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "from": "a b"}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "greeter", "payload": {}, "payloadType": "x y"}),
        ),
        (
            "POST",
            "/api/v1/inject".into(),
            json!({"to": "", "payload": {}}),
        ),
        (
            "POST",
            "/api/v1/messages".into(),
            json!({"threadId": "t1", "from": "greeter", "to": "shouter", "payload": {}}),
        ),
        (
            "POST",
            "/api/v1/messages".into(),
            json!({"threadId": "t1", "from": "greeter", "to": "shouter", "payloadType": "X", "payload": 3}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"max": 0}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"max": 101}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"visibilitySeconds": 0}),
        ),
        (
            "POST",
            "/api/v1/agents/greeter/inbox/claim".into(),
            json!({"max": "ten"}),
        ),
        (
            "POST",
            "/api/v1/threads/t1/complete".into(),
            json!({"status": "active"}),
        ),
        ("POST", "/api/v1/threads/t1/complete".into(), json!({})),
        ("GET", "/api/v1/threads?limit=0".into(), Value::Null),
        ("GET", "/api/v1/threads?limit=101".into(), Value::Null),
        ("GET", "/api/v1/threads?offset=-1".into(), Value::Null),
        ("GET", "/api/v1/threads?status=ACTIVE".into(), Value::Null),
        ("GET", "/api/v1/messages?limit=abc".into(), Value::Null),
        (
            "GET",
            "/api/v1/threads/t1/messages?limit=1000".into(),
            Value::Null,
        ),
    ];
    for (method, path, body) in &cases {
        let b = if body.is_null() { None } else { Some(body) };
        let (s, resp) = app.call(method, path, Some(common::ADMIN_KEY), b).await;
        assert_eq!(s, 400, "{method} {path} {body}: {resp}");
        error_code(&resp);
    }
    // malformed JSON
    let resp = app
        .client
        .post("/api/v1/inject")
        .header("Authorization", format!("Bearer {}", common::ADMIN_KEY))
        .content_type("application/json")
        .body("{\"to\": ")
        .send()
        .await;
    assert_eq!(resp.0.status().as_u16(), 400);
    assert_eq!(counts(&app).await, before, "nothing written");

    // the SQL functions refuse bad input on their own too
    let c = app.db.client().await;
    for sql in [
        "SELECT agents.register('bad name', '{}')",
        "SELECT agents.register('a', '{\"config\": {\"temperature\": 9}}')",
        "SELECT agents.inject('greeter', '[1]')",
        "SELECT agents.claim('greeter', 0, 10)",
        "SELECT agents.list_threads('bogus', NULL, 10, 0)",
        "SELECT agents.report_state('greeter', 'sleeping')",
    ] {
        let err = c.query_one(sql, &[]).await.unwrap_err();
        let mapped = db::DbError::from(err).mapped();
        assert_eq!(mapped.status, 400, "{sql}: {mapped:?}");
    }
    assert_eq!(counts(&app).await, before, "nothing written");
}

/// The AgentConfig rules have one home in SQL: `agents.register` called
/// directly refuses a bad config with the same 400 (code and details) as the
/// variants functions, and writes nothing.
#[tokio::test]
async fn register_and_variants_share_the_config_rules() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let c = app.db.client().await;
    let before = counts(&app).await;
    let config_sql = "SELECT agents.get_config('greeter')::text";
    let was: String = c.query_one(config_sql, &[]).await.unwrap().get(0);
    let code = |err: tokio_postgres::Error| {
        let m = db::DbError::from(err).mapped();
        (m.status, m.code, m.details)
    };
    for (field, value) in [
        ("temperature", json!(2.5)),
        ("temperature", json!(-0.1)),
        ("maxTokens", json!(0)),
        ("maxTokens", json!(1.5)),
        ("maxTokens", json!("512")),
        ("contextWindow", json!(-1)),
        ("inputTokenLimit", json!(2_147_483_648_i64)),
        ("tokenBudget", json!(-1)),
        ("timeoutSeconds", json!(0)),
        ("maxRetries", json!(11)),
        ("systemPrompt", json!(7)),
        ("modelName", json!("x".repeat(100_001))),
        ("notAConfigField", json!(1)),
    ] {
        let mut create = json!({ "name": "v" });
        create[field] = value.clone();
        let want = code(
            c.query_one("SELECT variants.create('greeter', $1)", &[&create])
                .await
                .unwrap_err(),
        );
        assert_eq!(want.0, 400, "{field}: {want:?}");
        let body = json!({ "config": { field: value } });
        for agent in ["greeter", "newcomer"] {
            let got = code(
                c.query_one("SELECT agents.register($1, $2)", &[&agent, &body])
                    .await
                    .unwrap_err(),
            );
            assert_eq!(got, want, "{agent} {field}={value}");
        }
    }
    let now: String = c.query_one(config_sql, &[]).await.unwrap().get(0);
    assert_eq!(now, was, "the agent's config is unchanged");
    assert_eq!(counts(&app).await, before, "nothing written");

    // a good config is stored normalised (integers as integers), and null or
    // missing fields are cleared
    let v = c
        .query_one(
            "SELECT agents.get_config(agents.register('greeter', $1) ->> 'name') -> 'config'",
            &[&json!({"config": {"maxTokens": 100.0, "temperature": 1, "modelName": null}})],
        )
        .await
        .unwrap()
        .get::<_, Value>(0);
    assert_eq!(v["maxTokens"], json!(100));
    assert_eq!(v["temperature"].as_f64(), Some(1.0));
    assert_eq!(v["modelName"], Value::Null);
    assert_eq!(v["systemPrompt"], Value::Null);
}

/// Variants name their agent the way `agents.must_get` does: an unknown or
/// malformed agent name is a 404 agent_not_found from every variants function.
#[tokio::test]
async fn variants_find_their_agent_like_agents_must_get() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let c = app.db.client().await;
    for name in ["nobody", "bad name", ""] {
        let want = db::DbError::from(
            c.query_one("SELECT agents.get($1)", &[&name])
                .await
                .unwrap_err(),
        )
        .mapped();
        assert_eq!((want.status, want.code.as_str()), (404, "agent_not_found"));
        for sql in [
            "SELECT variants.list($1)",
            "SELECT variants.create($1, '{\"name\": \"v\"}')",
            "SELECT variants.clone($1, NULL, 'v', NULL, '{}')",
            "SELECT variants.get($1, 'v')",
            "SELECT variants.patch($1, 'v', '{}')",
            "SELECT variants.delete($1, 'v')",
            "SELECT variants.activate($1, 'v')",
            "SELECT variants.deactivate($1)",
            "SELECT variants.resolved_config($1)",
            "SELECT variants.metrics($1, 'v', NULL, NULL)",
            "SELECT variants.compare($1, NULL, NULL)",
        ] {
            let got = db::DbError::from(c.query_one(sql, &[&name]).await.unwrap_err()).mapped();
            assert_eq!(got, want, "{sql} with {name:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_injects_into_one_new_thread() {
    let app = TestApp::new().await;
    register_pair(&app).await;
    let pool = app.db.pool();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            // crossing directions, so agent rows are locked both ways
            let (to, from) = if i % 2 == 0 {
                ("greeter", "shouter")
            } else {
                ("shouter", "greeter")
            };
            db::agents::inject(&pool, to, &json!({"i": i}), Some("race"), Some(from), None)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap()["threadId"], "race");
    }
    let (_, t) = app.get("/api/v1/threads/race").await;
    assert_eq!(t["messageCount"], 20);
    assert_eq!(t["participants"].as_array().unwrap().len(), 2);
    assert_eq!(
        events(&app, "thread_updated").await.len(),
        1,
        "created once"
    );
    assert_eq!(events(&app, "message").await.len(), 20);
    let (_, g) = app.get("/api/v1/agents/greeter").await;
    assert_eq!(
        (g["messageCount"].as_i64(), g["queueDepth"].as_i64()),
        (Some(20), Some(10))
    );
}

#[tokio::test]
async fn names_with_slashes_are_percent_encoded_in_paths() {
    let app = TestApp::new().await;
    let (s, b) = app
        .put("/api/v1/agents/team%2Fgreeter", json!({"description": "d"}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["name"], "team/greeter");
    let (s, b) = app.get("/api/v1/agents/team%2Fgreeter").await;
    assert_eq!((s, b["name"].as_str()), (200, Some("team/greeter")));
    let (s, b) = inject(
        &app,
        json!({"to": "team/greeter", "payload": {}, "threadId": "a/b"}),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = app.get("/api/v1/threads/a%2Fb").await;
    assert_eq!((s, b["id"].as_str()), (200, Some("a/b")));
    let (s, b) = app.get("/api/v1/messages?agent=team%2Fgreeter").await;
    assert_eq!((s, b["total"].as_i64()), (200, Some(1)));
}
