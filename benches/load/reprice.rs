//! Repricing under ingest: `records` usage records, a price version dated
//! before them, then POST /usage/reprice over all of them while one client
//! keeps posting 1,000-record batches. Figures: records repriced per second,
//! and how long an ingest request took meanwhile against before (the
//! baseline, same run).

use crate::harness::*;
use crate::setup;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct RepriceFigures {
    pub records: i64,
    pub changed: i64,
    pub secs: f64,
    /// Ingest request latency (ms): median before the reprice, median and
    /// longest while it ran.
    pub before_p50_ms: f64,
    pub during_p50_ms: f64,
    pub during_max_ms: f64,
}

/// `load` records first unless the database already has some (the records
/// part loaded them).
pub async fn reprice(db: &BenchDb, base: &str, load: u64) -> RepriceFigures {
    let c = db.client().await;
    let have: i64 = c
        .query_one("SELECT count(*) FROM usage.batches", &[])
        .await
        .expect("count")
        .get(0);
    if have == 0 {
        let started = Instant::now();
        setup::load_usage_records(db, load).await;
        eprintln!(
            "reprice: loaded {load} usage records in {:.0}s",
            started.elapsed().as_secs_f64()
        );
    }
    // gpt-4o and claude-sonnet-4 cheaper from a day ago: half the records change
    c.batch_execute(
        "SELECT usage.set_price('gpt-4o', 'openai', 2, 8, 1, p_effective_from => now() - interval '1 day');
         SELECT usage.set_price('claude-sonnet-4', 'anthropic', 2.5, 12, 0.25, 3,
                                p_effective_from => now() - interval '1 day');",
    )
    .await
    .expect("past prices");

    // one ingest client, each request's (start, latency)
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<(Instant, f64)>>> = Arc::default();
    let ingest = {
        let (stop, samples, base) = (stop.clone(), samples.clone(), base.to_string());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let body = serde_json::to_vec(&setup::batch_body(100_000 + i, true)).expect("body");
                let t = Instant::now();
                let r = client
                    .post(format!("{base}/api/v1/usage/records/batch"))
                    .bearer_auth(ADMIN_KEY)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("batch");
                assert!(r.status().is_success(), "batch: {}", r.status());
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                samples.lock().expect("samples").push((t, ms));
                i += 1;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t0 = Instant::now();
    let now = chrono::Utc::now();
    let r: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/api/v1/usage/reprice"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({
            "start": (now - chrono::Duration::days(1)).to_rfc3339(),
            "end": (now - chrono::Duration::seconds(5)).to_rfc3339()}))
        .send()
        .await
        .expect("reprice")
        .json()
        .await
        .expect("reprice body");
    let secs = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    stop.store(true, Ordering::Relaxed);
    ingest.await.expect("ingest");
    eprintln!("reprice: {r}");
    let samples = samples.lock().expect("samples").clone();
    let mut before: Vec<f64> = samples.iter().filter(|s| s.0 < t0).map(|s| s.1).collect();
    // requests that overlapped the reprice
    let mut during: Vec<f64> = samples
        .iter()
        .filter(|s| s.0 < t1 && s.0 + Duration::from_secs_f64(s.1 / 1000.0) > t0)
        .map(|s| s.1)
        .collect();
    let during_max_ms = during.iter().cloned().fold(0.0, f64::max);
    RepriceFigures {
        records: r["records"].as_i64().unwrap_or(0),
        changed: r["changed"].as_i64().unwrap_or(0),
        secs,
        before_p50_ms: median(&mut before),
        during_p50_ms: median(&mut during),
        during_max_ms,
    }
}
