//! Threads (complete, kill, filters) and the organism (stop, start).

use super::*;

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
