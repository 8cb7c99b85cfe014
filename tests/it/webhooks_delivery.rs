//! Webhook delivery against a local receiver that checks every signature:
//! retries, order, exactly-once across two servers and a stop, disabling
//! after the failure window, enabling, deletion and filters.

use crate::support::receiver::Receiver;
use crate::support::{TestDb, TestServer};
use agentplane::config::Config;
use serde_json::{json, Value};
use std::time::Duration;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Short retry delays and a short tick, so that tests do not wait minutes.
fn fast(cfg: &mut Config) {
    cfg.webhook_retry_delays = vec![ms(50), ms(100)];
    cfg.webhook_poll = ms(50);
}

/// Emits `n` events of type `usage.reset` (each in its own transaction)
/// for `user`; returns their ids.
async fn emit(db: &tokio_postgres::Client, n: usize, user: Option<&str>) -> Vec<i64> {
    let mut ids = Vec::new();
    for i in 0..n {
        let row = db
            .query_one(
                "SELECT feed.emit_data('usage.reset', jsonb_build_object('n', $1::int), $2)",
                &[&(i as i32), &user],
            )
            .await
            .expect("emit");
        ids.push(row.get(0));
    }
    ids
}

/// Creates an endpoint for `rx` (with `extra` fields) and hands it the secret.
async fn hook(srv: &TestServer, rx: &Receiver, extra: Value) -> String {
    let mut body = json!({"url": rx.url()});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let (s, made) = srv.post("/api/v1/webhooks", body).await;
    assert_eq!(s, 201, "{made}");
    rx.set_secret(made["secret"].as_str().expect("secret"));
    made["id"].as_str().expect("id").to_string()
}

async fn wait_for(what: &str, secs: u64, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(ms(20)).await;
    }
}

#[tokio::test]
async fn every_event_arrives_once_in_order_after_retries() {
    let srv = TestServer::start_with(fast).await;
    let rx = Receiver::start().await;
    let id = hook(&srv, &rx, json!({})).await;
    rx.fail_next(3);
    let db = srv.db.client().await;
    let ids = emit(&db, 20, None).await;
    assert_eq!(rx.wait_accepted(20, 30).await, ids);
    let last = ids.last().copied();
    wait_for("the deliveries are recorded", 20, async || {
        srv.get(&format!("/api/v1/webhooks/{id}")).await.1["position"].as_i64() == last
    })
    .await;
    tokio::time::sleep(ms(300)).await;
    assert_eq!(rx.accepted(), ids, "no event twice");
    assert_eq!(rx.bad(), 0, "every signature checks out");

    // the first event failed three times before it was delivered
    let hits = rx.hits();
    assert_eq!(
        hits.iter()
            .take(4)
            .map(|h| (h.id, h.accepted))
            .collect::<Vec<_>>(),
        vec![
            (ids[0], false),
            (ids[0], false),
            (ids[0], false),
            (ids[0], true)
        ]
    );
    // the body is the event as /ws pushes it
    let body = &hits[3].body;
    assert_eq!(body["event"], json!("usage.reset"));
    assert_eq!(body["id"], json!(ids[0]));
    assert_eq!(body["data"], json!({"n": 0}));
    assert!(body["createdAt"].is_string(), "{body}");

    // every attempt is listed, oldest first, in pages
    let (s, page) = srv
        .get(&format!("/api/v1/webhooks/{id}/deliveries?limit=1000"))
        .await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(page["count"], json!(23));
    let d = page["deliveries"].as_array().expect("deliveries");
    for (i, attempt) in d.iter().take(4).enumerate() {
        assert_eq!(attempt["eventId"], json!(ids[0]));
        assert_eq!(attempt["attempt"], json!(i + 1));
        assert_eq!(attempt["delivered"], json!(i == 3));
        assert_eq!(
            attempt["responseStatus"],
            json!(if i == 3 { 204 } else { 500 })
        );
    }
    assert_eq!(d[2]["error"], json!("HTTP 500"));
    assert_eq!(d[3]["error"], Value::Null);
    assert_eq!(
        d[4]["attempt"],
        json!(1),
        "a delivered event's next starts at 1"
    );
    let (_, first) = srv
        .get(&format!("/api/v1/webhooks/{id}/deliveries?limit=2"))
        .await;
    assert_eq!(first["count"], json!(2));
    let after = first["nextAfter"].as_i64().expect("nextAfter");
    let (_, rest) = srv
        .get(&format!(
            "/api/v1/webhooks/{id}/deliveries?after={after}&limit=1000"
        ))
        .await;
    assert_eq!(rest["count"], json!(21));
    assert_eq!(rest["deliveries"][0], d[2]);
}

#[tokio::test]
async fn two_servers_and_restarts_deliver_each_event_once() {
    let db = TestDb::new().await;
    let a = TestServer::on(db.handle(), fast).await;
    let b = TestServer::on(db.handle(), fast).await;
    let rx = Receiver::start().await;
    hook(&a, &rx, json!({})).await;
    let client = db.client().await;
    let mut ids = emit(&client, 100, None).await;
    assert_eq!(rx.wait_accepted(100, 30).await, ids);
    // one server stops (giving its leases back): the other continues from
    // the recorded position
    a.stop().await;
    ids.extend(emit(&client, 20, None).await);
    assert_eq!(rx.wait_accepted(120, 30).await, ids);
    // and a server started later continues where the last one stopped
    b.stop().await;
    ids.extend(emit(&client, 20, None).await);
    let c = TestServer::on(db.handle(), fast).await;
    assert_eq!(rx.wait_accepted(140, 30).await, ids);
    tokio::time::sleep(ms(300)).await;
    assert_eq!(rx.accepted(), ids, "no event twice");
    assert_eq!(rx.bad(), 0);
    c.stop().await;
}

#[tokio::test]
async fn failing_endpoint_is_disabled_then_enable_resumes() {
    let srv = TestServer::start_with(|cfg| {
        fast(cfg);
        cfg.webhook_disable_after = ms(400);
    })
    .await;
    let rx = Receiver::start().await;
    rx.fail_all(true);
    let id = hook(&srv, &rx, json!({})).await;
    let db = srv.db.client().await;
    let ids = emit(&db, 3, None).await;
    wait_for("the endpoint is disabled", 20, async || {
        srv.get(&format!("/api/v1/webhooks/{id}")).await.1["enabled"] == json!(false)
    })
    .await;
    let (_, ep) = srv.get(&format!("/api/v1/webhooks/{id}")).await;
    assert!(ep["disabledAt"].is_string(), "{ep}");
    let row = db
        .query_one(
            "SELECT id, body FROM feed.events WHERE type = 'webhook.disabled'",
            &[],
        )
        .await
        .expect("one webhook.disabled event");
    let disabled_event: i64 = row.get(0);
    let disabled_body: Value = row.get(1);
    assert_eq!(disabled_body["data"]["webhookId"], json!(id));
    assert_eq!(disabled_body["data"]["eventId"], json!(ids[0]));
    assert!(rx.accepted().is_empty());
    let hits = rx.hits();
    assert!(hits.len() >= 2, "retried: {hits:?}");
    assert!(
        hits.iter().all(|h| h.id == ids[0]),
        "nothing past the first event"
    );
    // no attempt after disabling
    tokio::time::sleep(ms(300)).await;
    assert_eq!(rx.hits().len(), hits.len());

    rx.fail_all(false);
    let (s, ep) = srv
        .post(&format!("/api/v1/webhooks/{id}/enable"), json!({}))
        .await;
    assert_eq!(s, 200, "{ep}");
    assert_eq!(
        (&ep["enabled"], &ep["disabledAt"]),
        (&json!(true), &Value::Null)
    );
    let mut want = ids.clone();
    want.push(disabled_event);
    assert_eq!(rx.wait_accepted(4, 20).await, want);
    wait_for("the deliveries are recorded", 20, async || {
        srv.get(&format!("/api/v1/webhooks/{id}")).await.1["position"] == json!(disabled_event)
    })
    .await;
    let (_, page) = srv
        .get(&format!("/api/v1/webhooks/{id}/deliveries?limit=1000"))
        .await;
    let first: Vec<i64> = page["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .filter(|d| d["eventId"] == json!(ids[0]))
        .map(|d| d["attempt"].as_i64().unwrap_or(0))
        .collect();
    // attempts count up while failing; after enabling they start again
    assert_eq!(*first.last().expect("attempts"), 1, "{first:?}");
    assert!(first.len() >= 3, "{first:?}");
    assert_eq!(rx.bad(), 0);
}

#[tokio::test]
async fn deleting_an_endpoint_stops_its_deliveries() {
    let srv = TestServer::start_with(fast).await;
    let rx = Receiver::start().await;
    let id = hook(&srv, &rx, json!({})).await;
    let db = srv.db.client().await;
    let ids = emit(&db, 2, None).await;
    assert_eq!(rx.wait_accepted(2, 20).await, ids);
    let (s, _) = srv
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, 200);
    emit(&db, 5, None).await;
    tokio::time::sleep(ms(600)).await;
    assert_eq!(rx.hits().len(), 2, "{:?}", rx.hits());
    let n: i64 = db
        .query_one("SELECT count(*) FROM webhooks.deliveries", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 0, "its attempts went with it");
}

#[tokio::test]
async fn filters_choose_the_events() {
    let srv = TestServer::start_with(fast).await;
    let rx = Receiver::start().await;
    hook(
        &srv,
        &rx,
        json!({"users": ["alice"], "events": ["usage.reset"]}),
    )
    .await;
    let db = srv.db.client().await;
    emit(&db, 2, Some("bob")).await;
    emit(&db, 1, None).await;
    let want = emit(&db, 2, Some("alice")).await;
    db.execute(
        "SELECT feed.emit_data('organism', '{}'::jsonb, 'alice')",
        &[],
    )
    .await
    .expect("other type");
    let last = emit(&db, 1, Some("alice")).await;
    let want: Vec<i64> = want.into_iter().chain(last).collect();
    assert_eq!(rx.wait_accepted(3, 20).await, want);
    tokio::time::sleep(ms(300)).await;
    assert_eq!(rx.accepted(), want);
}
