//! Webhook figures: delivery throughput to a local 2xx receiver over 10
//! endpoints (baseline: the same receiver fed by 10 plain sequential HTTP
//! clients), lag from commit to delivery, and the spend load with 10
//! endpoints active vs none.

use crate::harness::*;
use poem::web::Data;
use poem::{handler, http::StatusCode, Body, EndpointExt, Route};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The user the throughput and lag events belong to (the endpoints of
/// those phases follow only it).
const BENCH_USER: &str = "bench-hooks";

#[derive(Default)]
struct Seen {
    count: AtomicU64,
    /// (seq, arrival in microseconds since the Unix epoch), every endpoint's
    arrivals: Mutex<Vec<(u64, u64)>>,
}

pub struct Receiver {
    pub url: String,
    seen: Arc<Seen>,
    task: tokio::task::JoinHandle<()>,
}

#[handler]
async fn hook(body: Body, seen: Data<&Arc<Seen>>) -> StatusCode {
    let at = now_us();
    let bytes = body.into_bytes().await.unwrap_or_default();
    seen.count.fetch_add(1, Ordering::Relaxed);
    // the lag phase's events carry data.seq
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
        if let Some(seq) = v["data"]["seq"].as_u64() {
            if let Ok(mut a) = seen.arrivals.lock() {
                a.push((seq, at));
            }
        }
    }
    StatusCode::NO_CONTENT
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let seen = Arc::new(Seen::default());
        let app = Route::new()
            .at("/hook", poem::post(hook))
            .data(seen.clone());
        let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).expect("acceptor");
        let task = tokio::spawn(async move {
            let _ = poem::Server::new_with_acceptor(acceptor).run(app).await;
        });
        Receiver { url, seen, task }
    }

    fn count(&self) -> u64 {
        self.seen.count.load(Ordering::Relaxed)
    }

    pub fn stop(self) {
        self.task.abort();
    }
}

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

async fn create(base: &str, body: serde_json::Value) -> String {
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/webhooks"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .expect("create webhook");
    assert_eq!(r.status().as_u16(), 201, "create webhook");
    let v: serde_json::Value = r.json().await.expect("webhook");
    v["id"].as_str().expect("id").to_string()
}

async fn delete_all(base: &str, ids: &[String]) {
    let client = reqwest::Client::new();
    for id in ids {
        let _ = client
            .delete(format!("{base}/api/v1/webhooks/{id}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await;
    }
}

/// Ten endpoints on `rx`, each with `filter` fields for its index.
async fn ten(
    base: &str,
    rx: &Receiver,
    filter: impl Fn(usize) -> serde_json::Value,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..10 {
        let mut body = filter(i);
        body["url"] = format!("{}?e={i}", rx.url).into();
        ids.push(create(base, body).await);
    }
    ids
}

/// 10 clients POSTing event-sized bodies to the receiver one at a time, as
/// fast as it answers: what a sender without a database could reach.
async fn raw_rate(rx: &Receiver, secs: u64) -> f64 {
    let body =
        serde_json::json!({"event": "usage.reset", "id": 1, "createdAt": "2026-01-01T00:00:00Z",
                                  "userId": BENCH_USER, "data": {"n": 1}})
        .to_string();
    let before = rx.count();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (url, body) = (rx.url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let end = Instant::now() + Duration::from_secs(secs);
            while Instant::now() < end {
                let _ = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (rx.count() - before) as f64 / started.elapsed().as_secs_f64()
}

/// Returns (deliveries/s, raw POSTs/s, lag p50 ms, lag p99 ms, lag samples).
pub async fn throughput_and_lag(
    db: &BenchDb,
    base: &str,
    secs: u64,
) -> (f64, f64, f64, f64, usize) {
    let rx = Receiver::start().await;
    let raw = raw_rate(&rx, secs.div_ceil(2)).await;
    let ids = ten(base, &rx, |_| serde_json::json!({"users": [BENCH_USER]})).await;
    let client = db.client().await;

    // Throughput: a backlog of events committed at once, drained by the
    // ten endpoints' workers.
    let n = (300 * secs).max(1000) as i64;
    let before = rx.count();
    client
        .query_one(
            "SELECT count(feed.emit_data('usage.reset', jsonb_build_object('n', g), $2)) \
             FROM generate_series(1, $1::bigint) g",
            &[&n, &BENCH_USER],
        )
        .await
        .expect("backlog");
    let started = Instant::now();
    let want = before + 10 * n as u64;
    let deadline = started + Duration::from_secs(300);
    while rx.count() < want && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rate = (rx.count() - before) as f64 / started.elapsed().as_secs_f64();

    // Lag: 100 events/s, each its own transaction, commit to arrival at
    // the receiver (every one of the ten endpoints counts).
    let total = (secs * 100) as usize;
    let mut commits: Vec<u64> = Vec::with_capacity(total);
    let tick = Duration::from_millis(10);
    let started = Instant::now();
    for seq in 0..total {
        let due = started + tick * seq as u32;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            tokio::time::sleep(wait).await;
        }
        client
            .query_one(
                "SELECT feed.emit_data('usage.reset', jsonb_build_object('seq', $1::bigint), $2)",
                &[&(seq as i64), &BENCH_USER],
            )
            .await
            .expect("emit");
        commits.push(now_us());
    }
    // wait for the tail: every event at every endpoint
    let deadline = Instant::now() + Duration::from_secs(10);
    while rx.seen.arrivals.lock().map(|a| a.len()).unwrap_or(0) < 10 * total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // one sample per delivery (ten per event)
    let arrivals = rx
        .seen
        .arrivals
        .lock()
        .map(|a| a.clone())
        .unwrap_or_default();
    let mut lags: Vec<f64> = arrivals
        .iter()
        .filter_map(|(seq, at)| {
            let c = *commits.get(*seq as usize)?;
            Some(at.saturating_sub(c) as f64 / 1000.0)
        })
        .collect();
    let samples = lags.len();
    let p50 = percentile(&mut lags, 0.5);
    let p99 = percentile(&mut lags, 0.99);
    delete_all(base, &ids).await;
    rx.stop();
    (rate, raw, p50, p99, samples)
}

/// Ten endpoints, each following one of the spend load's users (as the
/// spend-with-subscribers figure's dashboards do), for the spend phase.
pub async fn spend_endpoints(base: &str) -> (Receiver, Vec<String>) {
    let rx = Receiver::start().await;
    let ids = ten(
        base,
        &rx,
        |i| serde_json::json!({"users": [format!("bu{}", i + 1)]}),
    )
    .await;
    (rx, ids)
}

pub async fn remove(base: &str, rx: Receiver, ids: Vec<String>) -> u64 {
    delete_all(base, &ids).await;
    let n = rx.count();
    rx.stop();
    n
}
