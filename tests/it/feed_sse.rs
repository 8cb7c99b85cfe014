//! `GET /api/v1/events` as Server-Sent Events: live delivery, resuming with
//! `Last-Event-ID` across a server restart, visibility of bound keys, slow
//! clients and revoked keys.

use crate::feed_events::emit;
use crate::support::sse::{self, SseEvent};
use crate::support::{TestDb, TestServer, ADMIN_KEY};
use serde_json::json;
use std::time::Duration;

fn ids(events: &[SseEvent]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

#[tokio::test]
async fn live_events_arrive_in_the_ws_shape() {
    let srv = TestServer::start().await;
    let mut stream = sse::open(
        &srv.http_url("/api/v1/events?events=test.live"),
        Some(ADMIN_KEY),
        &[],
    )
    .await;
    let a = emit(&srv.db, "test.live", 1, Some("u1"), None).await;
    emit(&srv.db, "test.other", 2, None, None).await;
    let b = emit(&srv.db, "test.live", 3, None, Some("echo")).await;
    let first = stream.next().await.expect("an event");
    assert_eq!((first.id, first.ty.as_str()), (a, "test.live"));
    assert_eq!(first.data["event"], "test.live");
    assert_eq!(first.data["id"], a);
    assert_eq!(first.data["userId"], "u1");
    assert_eq!(first.data["data"], json!({"n": 1}));
    assert_eq!(stream.next().await.expect("an event").id, b);
}

#[tokio::test]
async fn resume_with_last_event_id_across_a_restart_has_no_gap_or_duplicate() {
    let db = TestDb::new().await;
    let srv = TestServer::on(db.handle(), |_| {}).await;
    let url = |srv: &TestServer| srv.http_url("/api/v1/events?events=test.r&after=0");
    let mut stream = sse::open(&url(&srv), Some(ADMIN_KEY), &[]).await;
    let mut want = Vec::new();
    for n in 0..20 {
        want.push(emit(&db, "test.r", n, None, None).await);
    }
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(stream.next().await.expect("an event"));
    }
    drop(stream);
    srv.stop().await;
    // written while no server runs
    for n in 20..30 {
        want.push(emit(&db, "test.r", n, None, None).await);
    }
    let srv = TestServer::on(db.handle(), |_| {}).await;
    let last = got.last().unwrap().id;
    // `after=0` in the URL is overridden by the header a browser sends
    let mut stream = sse::open(
        &url(&srv),
        Some(ADMIN_KEY),
        &[("Last-Event-ID", last.to_string())],
    )
    .await;
    // and more while it replays
    let writer = {
        let db = db.handle();
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 30..60 {
                ids.push(emit(&db, "test.r", n, None, None).await);
            }
            ids
        })
    };
    want.extend(writer.await.unwrap());
    while got.len() < want.len() {
        got.push(stream.next().await.expect("an event"));
    }
    assert_eq!(ids(&got), want);
    // and nothing after
    emit(&db, "test.r", 99, None, None).await;
    let extra = stream.next().await.unwrap();
    assert_eq!(extra.data["data"]["n"], 99);
}

#[tokio::test]
async fn a_bound_key_streams_only_its_user() {
    let srv = TestServer::start().await;
    let (_, key) = srv
        .post(
            "/api/v1/keys",
            json!({"name": "u1", "role": "reader", "userId": "u1"}),
        )
        .await;
    let key = key["key"].as_str().unwrap().to_string();
    let a = emit(&srv.db, "test.v", 1, Some("u1"), None).await;
    emit(&srv.db, "test.v", 2, Some("u2"), None).await;
    // replay from the table and live alike
    let mut stream = sse::open(
        &srv.http_url("/api/v1/events?events=test.v&after=0"),
        Some(&key),
        &[],
    )
    .await;
    emit(&srv.db, "test.v", 3, Some("u2"), None).await;
    let c = emit(&srv.db, "test.v", 4, None, None).await;
    emit(&srv.db, "test.v", 5, Some("u2"), None).await;
    let d = emit(&srv.db, "test.v", 6, Some("u1"), None).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(stream.next().await.expect("an event").id);
    }
    assert_eq!(got, vec![a, c, d]);
}

#[tokio::test]
async fn a_revoked_key_ends_its_stream() {
    let srv = TestServer::start_with(|c| c.key_recheck = Duration::from_secs(1)).await;
    let (_, key) = srv
        .post("/api/v1/keys", json!({"name": "r", "role": "reader"}))
        .await;
    let mut stream = sse::open(
        &srv.http_url("/api/v1/events"),
        Some(key["key"].as_str().unwrap()),
        &[],
    )
    .await;
    // revoked in the database, as another server would
    srv.db
        .client()
        .await
        .execute(
            "SELECT auth.revoke_key($1::text::uuid, false)",
            &[&key["id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    assert!(stream.next().await.is_none(), "the stream ended");
}

#[tokio::test]
async fn a_client_that_does_not_read_is_ended() {
    let srv = TestServer::start_with(|c| c.ws_queue = 8).await;
    let mut stream = sse::open(
        &srv.http_url("/api/v1/events?events=test.slow"),
        Some(ADMIN_KEY),
        &[],
    )
    .await;
    // big events: the socket buffers fill and the queue overflows. 50 MB in
    // all, past what loopback socket buffers may grow to (tcp_rmem's maximum
    // is 32 MB on some machines).
    let client = srv.db.client().await;
    let mut last = 0;
    for _ in 0..250 {
        last = client
            .query_one(
                "SELECT feed.emit_data('test.slow', jsonb_build_object('pad', repeat('x', 200000)))",
                &[],
            )
            .await
            .unwrap()
            .get(0);
    }
    // give the relay time to hand everything to the hub
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = stream.until_end().await;
    assert!(
        got.last().map(|e| e.id) < Some(last),
        "the stream was ended before the last event"
    );
    // the same client resumes from its last id and gets the rest
    let from = got.last().map(|e| e.id).unwrap_or(0);
    let mut again = sse::open(
        &srv.http_url(&format!("/api/v1/events?events=test.slow&after={from}")),
        Some(ADMIN_KEY),
        &[],
    )
    .await;
    let mut next = from;
    while next < last {
        let e = again.next().await.expect("an event");
        assert!(e.id > next);
        next = e.id;
    }
}

#[tokio::test]
async fn stream_refusals() {
    let srv = TestServer::start().await;
    let r = sse::request(&srv.http_url("/api/v1/events"), None, &[]).await;
    assert_eq!(r.status(), 401);
    let r = sse::request(
        &srv.http_url("/api/v1/events?events=bad%20x"),
        Some(ADMIN_KEY),
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = sse::request(
        &srv.http_url("/api/v1/events"),
        Some(ADMIN_KEY),
        &[("Last-Event-ID", "nope".to_string())],
    )
    .await;
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn open_mode_streams_end_when_the_first_key_is_made() {
    let srv = TestServer::start_with(|c| {
        c.admin_key = None;
        c.key_recheck = Duration::from_secs(1);
    })
    .await;
    let mut stream = sse::open(&srv.http_url("/api/v1/events"), None, &[]).await;
    let resp = reqwest::Client::new()
        .post(srv.http_url("/api/v1/keys"))
        .json(&json!({"name": "first", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(stream.next().await.is_none(), "the stream ended");
}

#[tokio::test]
async fn an_idle_stream_gets_a_ping_within_15_seconds() {
    let srv = TestServer::start().await;
    let mut resp = sse::request(&srv.http_url("/api/v1/events"), Some(ADMIN_KEY), &[]).await;
    assert_eq!(resp.status(), 200);
    let chunk = tokio::time::timeout(Duration::from_secs(20), resp.chunk())
        .await
        .expect("a ping in time")
        .expect("stream open")
        .expect("a chunk");
    assert_eq!(&chunk[..], b": ping\n\n");
}
