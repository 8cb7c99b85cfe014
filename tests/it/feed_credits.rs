//! A credit movement's `credits.changed` event names its ledger row; the feed
//! renders the body from that row. End to end: HTTP movements on a running
//! server, the events on a WebSocket, and a `since` replay.

use crate::support::ws::{connect, recv, send};
use crate::support::TestServer;
use serde_json::{json, Value};

async fn post(srv: &TestServer, path: &str, body: Value) -> Value {
    let (status, value) = srv.post(path, body).await;
    assert_eq!(status, 200, "{path}: {value}");
    value
}

#[tokio::test]
async fn movements_reach_subscribers_rendered_from_the_ledger() {
    let srv = TestServer::start().await;
    let mut ws = connect(&srv.ws_url("/ws")).await;
    assert_eq!(recv(&mut ws).await["event"], "connected");
    send(
        &mut ws,
        json!({"cmd": "subscribe", "events": ["credits.changed"]}),
    )
    .await;
    assert_eq!(recv(&mut ws).await["event"], "subscribed");

    let credits = "/api/v1/users/ann/credits";
    let top_up = post(&srv, &format!("{credits}/top-up"), json!({"amount": 7})).await;
    let spent = post(
        &srv,
        &format!("{credits}/spend"),
        json!({"blockId": "llm", "amount": 3}),
    )
    .await;

    // first touch: the month's refill (1,000 by default), then the two movements
    let refill = recv(&mut ws).await;
    assert_eq!(refill["data"]["kind"], "refill", "{refill}");
    let first_id = refill["id"].as_i64().expect("event id");
    let expected = [
        (
            top_up["transactionId"].clone(),
            "top_up",
            7,
            top_up["balance"].clone(),
            None,
        ),
        (
            spent["transactionId"].clone(),
            "usage",
            -3,
            spent["balance"].clone(),
            Some("llm"),
        ),
    ];
    let mut live = vec![refill];
    for (tx, kind, amount, balance, block) in expected {
        let ev = recv(&mut ws).await;
        assert_eq!(ev["event"], "credits.changed", "{ev}");
        assert_eq!(ev["userId"], "ann", "{ev}");
        let data = &ev["data"];
        assert_eq!(data["transactionId"], tx, "{ev}");
        assert_eq!(data["kind"], kind, "{ev}");
        assert_eq!(data["amount"], amount, "{ev}");
        assert_eq!(data["balance"], balance, "{ev}");
        assert_eq!(data["blockId"], json!(block), "{ev}");
        assert!(
            data["period"].as_str().is_some_and(|p| p.len() == 10),
            "{ev}"
        );
        live.push(ev);
    }

    // a replay from before the refill renders the same events
    let mut again = connect(&srv.ws_url("/ws")).await;
    assert_eq!(recv(&mut again).await["event"], "connected");
    send(
        &mut again,
        json!({"cmd": "subscribe", "events": ["credits.changed"], "since": first_id - 1}),
    )
    .await;
    let mut replayed = Vec::new();
    while replayed.len() < live.len() {
        let ev = recv(&mut again).await;
        if ev["event"] == "credits.changed" {
            replayed.push(ev);
        }
    }
    assert_eq!(replayed, live);
}
