//! WebSocket subscribers for spend with subscribers, and feed latency over
//! WebSockets and over the Server-Sent Events stream.

use crate::harness::*;
use futures_util::{SinkExt, StreamExt};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::Message;

pub enum Filter {
    /// Subscriber i follows the credit events of user `bu{i+1}`: a dashboard
    /// watching one customer, while the spend load covers 10,000 users.
    OneUserEach,
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(addr: &str, subscribe: serde_json::Value) -> Ws {
    let url = format!("ws://{addr}/ws?token={ADMIN_KEY}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    // `connected`, then our subscription's `subscribed`
    let _ = ws.next().await;
    ws.send(Message::Text(subscribe.to_string()))
        .await
        .expect("subscribe");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"subscribed\"") => break,
            Some(Ok(_)) => continue,
            other => panic!("no subscribed answer: {other:?}"),
        }
    }
    ws
}

pub struct Subscribers {
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Subscribers {
    pub async fn connect(addr: &str, n: usize, filter: Filter) -> Subscribers {
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..n {
            let sub = match filter {
                Filter::OneUserEach => {
                    serde_json::json!({"cmd": "subscribe", "users": [format!("bu{}", i + 1)]})
                }
            };
            let mut ws = open(addr, sub).await;
            let (stop, received) = (stop.clone(), received.clone());
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                        Ok(Some(Ok(Message::Text(_)))) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Some(Ok(_))) | Err(_) => {}
                        Ok(_) => break,
                    }
                }
                let _ = ws.close(None).await;
            }));
        }
        Subscribers {
            stop,
            received,
            tasks,
        }
    }

    /// Disconnects everyone; returns how many events they received.
    pub async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        self.received.load(Ordering::Relaxed)
    }
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// How the latency subscribers receive events.
#[derive(Clone, Copy)]
pub enum Via {
    Ws,
    Sse,
}

/// The (seq, receive time) pairs a subscriber collects until `stop`.
type Received = tokio::task::JoinHandle<Vec<(usize, u64)>>;

/// A `/ws` subscriber of `bench.tick`, connected before this returns.
async fn ws_receiver(addr: &str, stop: Arc<AtomicBool>) -> Received {
    let mut ws = open(
        addr,
        serde_json::json!({"cmd": "subscribe", "events": ["bench.tick"]}),
    )
    .await;
    tokio::spawn(async move {
        let mut pending = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
                Ok(Some(Ok(Message::Text(t)))) => {
                    let at = now_us();
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap_or_default();
                    if let Some(seq) = v["data"]["seq"].as_u64() {
                        pending.push((seq as usize, at));
                    }
                }
                Ok(Some(Ok(_))) | Err(_) => {}
                Ok(_) => break,
            }
        }
        pending
    })
}

/// A `GET /api/v1/events` stream of `bench.tick`, open before this returns.
async fn sse_receiver(addr: &str, stop: Arc<AtomicBool>) -> Received {
    let mut resp = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/events?events=bench.tick"))
        .bearer_auth(ADMIN_KEY)
        .header("Accept", "text/event-stream")
        .send()
        .await
        .expect("stream");
    assert_eq!(resp.status(), 200, "stream refused");
    tokio::spawn(async move {
        let mut pending = Vec::new();
        let mut buf = String::new();
        while !stop.load(Ordering::Relaxed) {
            match tokio::time::timeout(Duration::from_millis(200), resp.chunk()).await {
                Ok(Ok(Some(bytes))) => {
                    let at = now_us();
                    buf.push_str(&String::from_utf8_lossy(&bytes));
                    while let Some(end) = buf.find('\n') {
                        let line: String = buf.drain(..=end).collect();
                        if let Some(json) = line.strip_prefix("data: ") {
                            let v: serde_json::Value =
                                serde_json::from_str(json.trim_end()).unwrap_or_default();
                            if let Some(seq) = v["data"]["seq"].as_u64() {
                                pending.push((seq as usize, at));
                            }
                        }
                    }
                }
                Err(_) => {}
                Ok(_) => break,
            }
        }
        pending
    })
}

/// Feed latency: events written at 1,000/s (each in its own transaction,
/// carrying its commit-acknowledged time), 100 subscribers `via` WebSockets
/// or event streams; returns p50 and p99 of receive time − commit time in
/// ms, and the number of deliveries.
pub async fn latency(db: &BenchDb, addr: &str, secs: u64, via: Via) -> (f64, f64, u64) {
    let commit_times: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(Vec::new()));
    let samples: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut subs = Vec::new();
    for _ in 0..100 {
        let (commit_times, samples, stop) = (commit_times.clone(), samples.clone(), stop.clone());
        let pending = match via {
            Via::Ws => ws_receiver(addr, stop.clone()).await,
            Via::Sse => sse_receiver(addr, stop.clone()).await,
        };
        subs.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            let pending = pending.await.unwrap_or_default();
            let commits = commit_times.lock().map(|c| c.clone()).unwrap_or_default();
            for (seq, at) in pending {
                if let Some(c) = commits.get(seq).copied().filter(|c| *c > 0) {
                    mine.push(at.saturating_sub(c) as f64 / 1000.0);
                }
            }
            if let Ok(mut s) = samples.lock() {
                s.extend(mine);
            }
        }));
    }
    // 4 writers × 250 events/s, each event its own transaction.
    let total = (secs * 1000) as usize;
    if let Ok(mut c) = commit_times.lock() {
        c.resize(total, 0);
    }
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..4usize {
        let c = db.client().await;
        let commit_times = commit_times.clone();
        writers.push(tokio::spawn(async move {
            let stmt = c
                .prepare(
                    "SELECT feed.emit_data('bench.tick', jsonb_build_object('seq', $1::bigint))",
                )
                .await
                .expect("prepare");
            let mut seq = w;
            while seq < total {
                let due = started + Duration::from_micros(seq as u64 * 1000);
                tokio::time::sleep_until(due.into()).await;
                c.execute(&stmt, &[&(seq as i64)]).await.expect("emit");
                let at = now_us();
                if let Ok(mut ct) = commit_times.lock() {
                    ct[seq] = at;
                }
                seq += 4;
            }
        }));
    }
    for w in writers {
        let _ = w.await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for s in subs {
        let _ = s.await;
    }
    let mut all = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let n = all.len() as u64;
    let p50 = percentile(&mut all, 0.5);
    let p99 = percentile(&mut all, 0.99);
    (p50, p99, n)
}
