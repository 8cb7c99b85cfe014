//! `GET /api/v1/events` as a JSON page: paging, filters, visibility of
//! bound keys, bad input, and that only final events are listed.

use crate::support::ws::{connect, recv, send};
use crate::support::{error_code, TestDb, TestServer, ADMIN_KEY};
use serde_json::{json, Value};
use std::time::Duration;

/// Emits a `ty` event with `data.n = n` for `user` / `agent`; returns its id.
pub async fn emit(db: &TestDb, ty: &str, n: i64, user: Option<&str>, agent: Option<&str>) -> i64 {
    db.client()
        .await
        .query_one(
            "SELECT feed.emit_data($1, jsonb_build_object('n', $2::bigint), $3, $4)",
            &[&ty, &n, &user, &agent],
        )
        .await
        .unwrap()
        .get(0)
}

/// GET with `key`: status and body (checked against the spec).
async fn get(srv: &TestServer, path: &str, key: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .get(srv.http_url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    crate::support::spec::check("GET", path, status, &body);
    (status, body)
}

/// Pages through `query` until the page that reaches the newest final
/// event; waits until the event `until` is listed.
async fn all_events(srv: &TestServer, query: &str, key: &str, until: i64) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut out: Vec<Value> = Vec::new();
        let mut after = 0;
        let mut reached = false;
        loop {
            let (s, b) = get(srv, &format!("/api/v1/events?after={after}&{query}"), key).await;
            assert_eq!(s, 200, "{b}");
            let events = b["events"].as_array().unwrap();
            assert_eq!(b["count"], events.len());
            out.extend(events.iter().cloned());
            reached |= events.iter().any(|e| e["id"].as_i64() >= Some(until));
            match b["nextAfter"].as_i64() {
                Some(n) => {
                    assert!(n > after, "nextAfter moves on");
                    after = n;
                }
                None => break,
            }
        }
        if reached {
            return out;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "event {until} never listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

#[tokio::test]
async fn pages_are_oldest_first_and_exactly_what_ws_pushes() {
    let srv = TestServer::start().await;
    let mut want = Vec::new();
    for n in 0..7 {
        want.push(emit(&srv.db, "test.page", n, None, None).await);
    }
    let last = *want.last().unwrap();
    let events = all_events(&srv, "limit=3&events=test.page", ADMIN_KEY, last).await;
    assert_eq!(ids(&events), want, "every event once, in id order");
    // limit is honoured and nextAfter continues the keyset
    let (_, first) = get(&srv, "/api/v1/events?limit=3&events=test.page", ADMIN_KEY).await;
    assert_eq!(first["count"], 3);
    assert_eq!(first["nextAfter"], json!(want[2]));

    // the same JSON /ws pushes for a replay
    let mut ws = connect(&srv.ws_url("/ws")).await;
    assert_eq!(recv(&mut ws).await["event"], "connected");
    send(
        &mut ws,
        json!({"cmd": "subscribe", "events": ["test.page"], "since": 0}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["event"], "subscribed");
    for e in &events {
        assert_eq!(&recv(&mut ws).await, e);
    }
    assert_eq!(events[0]["event"], "test.page");
    assert_eq!(events[0]["data"], json!({"n": 0}));
    assert!(events[0]["createdAt"].is_string());
}

#[tokio::test]
async fn filters_and_bound_keys_see_what_ws_shows() {
    let srv = TestServer::start().await;
    let a = emit(&srv.db, "test.f", 1, Some("u1"), Some("echo")).await;
    let b = emit(&srv.db, "test.f", 2, Some("u2"), Some("other")).await;
    let c = emit(&srv.db, "test.f", 3, None, Some("echo")).await;
    let d = emit(&srv.db, "test.g", 4, Some("u1"), None).await;
    let all = all_events(&srv, "events=test.f,test.g", ADMIN_KEY, d).await;
    assert_eq!(ids(&all), vec![a, b, c, d]);
    let q = |q: &str| format!("events=test.f,test.g&{q}");
    assert_eq!(
        ids(&all_events(&srv, &q("users=u1"), ADMIN_KEY, d).await),
        vec![a, d]
    );
    let only_f = all_events(&srv, "events=test.f&agents=echo", ADMIN_KEY, c).await;
    assert_eq!(ids(&only_f), vec![a, c]);
    let (s, none) = get(
        &srv,
        "/api/v1/events?events=test.f&users=u1,u2&agents=nobody",
        ADMIN_KEY,
    )
    .await;
    assert_eq!(s, 200);
    assert_eq!(none["count"], 0);

    // a key bound to u1 sees u1's events and user-less ones, never u2's,
    // whatever it filters on
    let (s, key) = srv
        .post(
            "/api/v1/keys",
            json!({"name": "u1", "role": "reader", "userId": "u1"}),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let seen = all_events(&srv, &q(""), &key, d).await;
    assert_eq!(ids(&seen), vec![a, c, d]);
    let (s, asked) = get(&srv, "/api/v1/events?users=u2&events=test.f", &key).await;
    assert_eq!(s, 200);
    assert_eq!(asked["count"], 0, "{asked}");
}

#[tokio::test]
async fn bad_input_and_access() {
    let srv = TestServer::start().await;
    for bad in [
        "limit=0",
        "limit=101",
        "limit=x",
        "after=-1",
        "after=abc",
        "events=has%20space",
        "users=%00",
    ] {
        let (s, b) = get(&srv, &format!("/api/v1/events?{bad}"), ADMIN_KEY).await;
        assert_eq!(s, 400, "{bad}: {b}");
        error_code(&b);
    }
    let many = vec!["a"; 1001].join(",");
    let (s, b) = get(&srv, &format!("/api/v1/events?agents={many}"), ADMIN_KEY).await;
    assert_eq!(s, 400, "{b}");
    let resp = reqwest::get(srv.http_url("/api/v1/events")).await.unwrap();
    assert_eq!(resp.status(), 401);
    let (s, b) = get(&srv, "/api/v1/events", "not-a-key").await;
    assert_eq!(s, 401, "{b}");
    // any role reads the feed
    let (_, key) = srv
        .post("/api/v1/keys", json!({"name": "r", "role": "reader"}))
        .await;
    let (s, b) = get(&srv, "/api/v1/events", key["key"].as_str().unwrap()).await;
    assert_eq!(s, 200, "{b}");
    // an `after` past the newest event is an empty last page
    let (s, b) = get(&srv, "/api/v1/events?after=999999999", ADMIN_KEY).await;
    assert_eq!(
        (s, b["count"].clone(), b["nextAfter"].clone()),
        (200, json!(0), Value::Null)
    );
}

#[tokio::test]
async fn only_final_events_are_listed() {
    let srv = TestServer::start().await;
    // a transaction takes an id and stays open; a later one commits
    let slow = srv.db.client().await;
    slow.batch_execute("BEGIN").await.unwrap();
    let early: i64 = slow
        .query_one("SELECT feed.emit_data('test.final', '{}')", &[])
        .await
        .unwrap()
        .get(0);
    let late = emit(&srv.db, "test.final", 2, None, None).await;
    assert!(late > early);
    // the committed later event is not final while the earlier id may still appear
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, page) = get(&srv, "/api/v1/events?events=test.final", ADMIN_KEY).await;
    assert_eq!(page["count"], 0, "{page}");
    slow.batch_execute("COMMIT").await.unwrap();
    let events = all_events(&srv, "events=test.final", ADMIN_KEY, late).await;
    assert_eq!(ids(&events), vec![early, late]);
}
