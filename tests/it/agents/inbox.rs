//! The durable inbox: claims, visibility timeouts, acks, pause and resume.

use super::*;

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
