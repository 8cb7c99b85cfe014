//! A WebSocket client for the live-feed tests (the feed_* modules).

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Generous bound for anything to arrive (not a timing assertion).
pub const WAIT: Duration = Duration::from_secs(30);

pub async fn connect(url: &str) -> Ws {
    let ws = tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
        .0;
    if let Some(local) = local_addr(&ws) {
        super::asyncapi::remember(local, url);
    }
    ws
}

fn local_addr(ws: &Ws) -> Option<std::net::SocketAddr> {
    match ws.get_ref() {
        tokio_tungstenite::MaybeTlsStream::Plain(s) => s.local_addr().ok(),
        _ => None,
    }
}

/// The next frame as `recv` returns it, with the name of the AsyncAPI
/// message it matched.
pub async fn recv_named(ws: &mut Ws) -> (Value, Option<String>) {
    let v = recv_raw(ws).await;
    let name = local_addr(ws)
        .and_then(super::asyncapi::channel_of)
        .map(|address| super::asyncapi::check_sent(&address, &v));
    (v, name)
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string())).await.expect("send");
}

/// The next JSON text frame (pings/pongs skipped), checked against the
/// messages openapi/asyncapi.json documents for the socket's channel.
pub async fn recv(ws: &mut Ws) -> Value {
    recv_named(ws).await.0
}

async fn recv_raw(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("nothing arrived")
            .expect("socket closed")
            .expect("socket error");
        match msg {
            Message::Text(t) => return serde_json::from_str(&t).expect("json"),
            Message::Close(c) => panic!("closed: {c:?}"),
            _ => continue,
        }
    }
}
