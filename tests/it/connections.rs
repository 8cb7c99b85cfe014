//! The server's socket cannot be exhausted: connections are capped, and one
//! that never finishes its request headers is dropped.

use crate::support::TestServer;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// What the server answers on `stream` within `wait` (empty: nothing).
async fn answer(stream: &mut TcpStream, wait: Duration) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_trickled_request_is_dropped() {
    let server = TestServer::start_with(|c| c.http_header_timeout = Duration::from_secs(1)).await;
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if slow.write_all(b"X-Slow: y\r\n").await.is_err() {
            break;
        }
    }
    let got = answer(&mut slow, Duration::from_secs(10)).await;
    assert!(got.is_empty(), "a trickled request was answered: {got}");
    assert!(started.elapsed() < Duration::from_secs(15));
    // a prompt client is served
    let mut quick = TcpStream::connect(server.addr).await.unwrap();
    quick.write_all(HEALTH).await.unwrap();
    assert!(answer(&mut quick, Duration::from_secs(10))
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn connections_past_the_cap_wait_for_a_free_slot() {
    let server = TestServer::start_with(|c| c.http_max_connections = 2).await;
    let first = TcpStream::connect(server.addr).await.unwrap();
    let _second = TcpStream::connect(server.addr).await.unwrap();
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    third.write_all(HEALTH).await.unwrap();
    let mut got = vec![0u8; 64];
    let early = tokio::time::timeout(Duration::from_secs(1), third.read(&mut got)).await;
    assert!(early.is_err(), "served past the cap");
    drop(first);
    assert!(answer(&mut third, Duration::from_secs(20))
        .await
        .starts_with("HTTP/1.1 200"));
}
