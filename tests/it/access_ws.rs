//! Long-lived connections follow their credential: a WebSocket closes with
//! 4001 once its key is revoked, or once open mode ends for one opened
//! without a key; foreign pages cannot open one while the server is open.

use crate::support::ws::{connect, recv, WAIT};
use crate::support::TestServer;
use futures_util::StreamExt;
use serde_json::json;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// Waits for the close frame and returns its code.
async fn close_code(ws: &mut crate::support::ws::Ws) -> u16 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("the socket was not closed in time");
        match msg {
            Some(Ok(Message::Close(Some(frame)))) => return frame.code.into(),
            Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return 0,
            Some(Ok(_)) => continue,
        }
    }
}

fn quick_recheck(c: &mut agentplane::config::Config) {
    c.key_recheck = Duration::from_secs(1);
}

#[tokio::test]
async fn a_revoked_key_closes_its_websocket() {
    let server = TestServer::start_with(quick_recheck).await;
    let (s, key) = server
        .post("/api/v1/keys", json!({"name": "r", "role": "reader"}))
        .await;
    assert_eq!(s, 201, "{key}");
    let mut ws = connect(&server.ws_url_with("/ws", key["key"].as_str().unwrap())).await;
    assert_eq!(recv(&mut ws).await["event"], "connected");
    let (s, b) = server
        .call(
            reqwest::Method::DELETE,
            &format!("/api/v1/keys/{}", key["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(close_code(&mut ws).await, 4001);
}

#[tokio::test]
async fn a_revocation_made_elsewhere_reaches_the_socket() {
    let server = TestServer::start_with(quick_recheck).await;
    let (_, key) = server
        .post("/api/v1/keys", json!({"name": "r", "role": "reader"}))
        .await;
    let mut ws = connect(&server.ws_url_with("/ws/messages", key["key"].as_str().unwrap())).await;
    // revoked straight in the database, as another server would
    server
        .db
        .client()
        .await
        .execute(
            "SELECT auth.revoke_key($1::text::uuid, false)",
            &[&key["id"].as_str().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(close_code(&mut ws).await, 4001);
}

#[tokio::test]
async fn open_mode_sockets_close_when_the_first_key_is_made() {
    let server = TestServer::start_with(|c| {
        quick_recheck(c);
        c.admin_key = None;
    })
    .await;
    let mut ws = connect(&format!("ws://{}/ws", server.addr)).await;
    assert_eq!(recv(&mut ws).await["event"], "connected");
    let resp = reqwest::Client::new()
        .post(server.http_url("/api/v1/keys"))
        .json(&json!({"name": "first", "role": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(close_code(&mut ws).await, 4001);
}

#[tokio::test]
async fn open_mode_refuses_websockets_from_foreign_pages() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start_with(|c| c.admin_key = None).await;
    let mut req = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 403)
        }
        other => panic!("expected 403, got {:?}", other.map(|r| r.1)),
    }
    let mut req = format!("ws://{}/ws", server.addr)
        .into_client_request()
        .unwrap();
    let own = format!("http://{}", server.addr);
    req.headers_mut().insert("Origin", own.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(recv(&mut ws).await["event"], "connected");
}
