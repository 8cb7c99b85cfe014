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
    tokio_tungstenite::connect_async(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
        .0
}

pub async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string())).await.expect("send");
}

/// The next JSON text frame (pings/pongs skipped).
pub async fn recv(ws: &mut Ws) -> Value {
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
