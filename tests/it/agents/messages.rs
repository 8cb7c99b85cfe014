//! Injecting messages: HTTP, SQL and Rust interfaces, concurrent injects into
//! a new thread, listing.

use super::*;

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
