//! Operations: `GET /metrics` (access, every metric present, counters and
//! gauges moving under load), request ids and the request log line.

use crate::feed_events::emit;
use crate::support::sse;
use crate::support::{TestApp, TestServer, ADMIN_KEY};
use agentplane::telemetry::logging::{self, LogFormat};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const NAMES: &[&str] = &[
    "agentplane_http_requests_total",
    "agentplane_http_request_duration_seconds_bucket",
    "agentplane_feed_events_relayed_total",
    "agentplane_feed_lag_seconds",
    "agentplane_ws_connections",
    "agentplane_sse_connections",
    "agentplane_webhook_deliveries_total",
    "agentplane_webhook_backlog_events",
    "agentplane_db_pool_connections",
    "agentplane_usage_unfolded_records",
    "agentplane_spend_queue_waiting",
];

async fn scrape(srv: &TestServer, key: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(srv.http_url("/metrics"));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// The value of the sample `name` whose labels include every `labels` pair
/// (0 when absent).
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            let (n, rest) = match series.split_once('{') {
                Some((n, rest)) => (n, rest),
                None => (series, ""),
            };
            let all = labels
                .iter()
                .all(|(k, want)| rest.contains(&format!("{k}=\"{want}\"")));
            (n == name && all).then(|| v.parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[tokio::test]
async fn metrics_are_all_present_and_move_under_load() {
    let srv = TestServer::start().await;
    let (status, before) = scrape(&srv, Some(ADMIN_KEY)).await;
    assert_eq!(status, 200);
    for name in NAMES {
        assert!(before.contains(name), "{name} missing:\n{before}");
    }
    let listed = |t: &str| {
        value(
            t,
            "agentplane_http_requests_total",
            &[("operation", "listAgents"), ("status", "200")],
        )
    };
    let relayed = |t: &str| value(t, "agentplane_feed_events_relayed_total", &[]);

    // load: requests, a stream open, events relayed to it
    let mut stream = sse::open(
        &srv.http_url("/api/v1/events?events=test.m"),
        Some(ADMIN_KEY),
        &[],
    )
    .await;
    for _ in 0..20 {
        let (s, _) = srv.get("/api/v1/agents").await;
        assert_eq!(s, 200);
    }
    let mut last = 0;
    for n in 0..10 {
        last = emit(&srv.db, "test.m", n, None, None).await;
    }
    while stream.next().await.expect("an event").id < last {}
    let (_, during) = scrape(&srv, Some(ADMIN_KEY)).await;
    assert!(listed(&during) >= listed(&before) + 20.0, "{during}");
    assert!(relayed(&during) >= relayed(&before) + 10.0);
    assert!(value(&during, "agentplane_sse_connections", &[]) >= 1.0);
    assert!(
        value(
            &during,
            "agentplane_http_request_duration_seconds_count",
            &[("operation", "listAgents")]
        ) >= 20.0
    );
    assert!(
        value(
            &during,
            "agentplane_db_pool_connections",
            &[("state", "idle")]
        ) >= 1.0
    );
    // no label carries a path or a user: unknown routes share one label
    reqwest::get(srv.http_url("/no/such/route/for-user-42"))
        .await
        .unwrap();
    let (_, after) = scrape(&srv, Some(ADMIN_KEY)).await;
    assert!(
        value(
            &after,
            "agentplane_http_requests_total",
            &[("operation", "unknown")]
        ) >= 1.0
    );
    assert!(!after.contains("for-user-42"));
}

#[tokio::test]
async fn metrics_need_a_reader_key_unless_open() {
    let srv = TestServer::start().await;
    assert_eq!(scrape(&srv, None).await.0, 401);
    assert_eq!(scrape(&srv, Some("wrong")).await.0, 401);
    let (_, key) = srv
        .post("/api/v1/keys", json!({"name": "r", "role": "reader"}))
        .await;
    let (status, text) = scrape(&srv, key["key"].as_str()).await;
    assert_eq!(status, 200);
    assert!(text.contains("agentplane_http_requests_total"));
    let open = TestServer::start_with(|c| c.admin_key = None).await;
    assert_eq!(scrape(&open, None).await.0, 200);
}

#[tokio::test]
async fn request_ids_are_taken_or_made_and_echoed() {
    let srv = TestServer::start().await;
    let client = reqwest::Client::new();
    let id_of = |r: &reqwest::Response| {
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let r = client
        .get(srv.http_url("/health"))
        .header("x-request-id", "req-123/abc")
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).as_deref(), Some("req-123/abc"));
    // made when absent, on errors too
    let r = client
        .get(srv.http_url("/api/v1/agents"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let made = id_of(&r).expect("an id");
    assert_eq!(made.len(), 32, "{made}");
    // unusable ones are replaced
    let r = client
        .get(srv.http_url("/health"))
        .header("x-request-id", "x".repeat(200))
        .send()
        .await
        .unwrap();
    assert_eq!(id_of(&r).map(|s| s.len()), Some(32));
}

/// A writer the test reads back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn one_json_log_line_per_request() {
    let app = TestApp::new().await;
    let out = Captured::default();
    let filter = tracing_subscriber::EnvFilter::new("agentplane::request=info");
    let guard =
        tracing::subscriber::set_default(logging::subscriber(LogFormat::Json, filter, out.clone()));
    let resp = app
        .client
        .get("/api/v1/agents")
        .header("Authorization", format!("Bearer {ADMIN_KEY}"))
        .header("x-request-id", "log-test-1")
        .send()
        .await;
    resp.assert_status_is_ok();
    app.client.get("/api/v1/agents").send().await;
    drop(guard);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = &lines[0];
    assert_eq!(first["operation"], "listAgents");
    assert_eq!(first["method"], "GET");
    assert_eq!(first["status"], 200);
    assert_eq!(first["request_id"], "log-test-1");
    assert!(first["latency_ms"].as_f64().is_some(), "{first}");
    assert_eq!(lines[1]["status"], 401);
    assert_eq!(lines[1]["request_id"].as_str().map(str::len), Some(32));

    // the text format is one line per request too
    let out = Captured::default();
    let filter = tracing_subscriber::EnvFilter::new("agentplane::request=info");
    let guard =
        tracing::subscriber::set_default(logging::subscriber(LogFormat::Text, filter, out.clone()));
    app.client.get("/health").send().await;
    drop(guard);
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("getHealth"), "{text}");
}

#[test]
fn log_format_setting() {
    assert_eq!(LogFormat::parse(None), Ok(LogFormat::Text));
    assert_eq!(LogFormat::parse(Some("json")), Ok(LogFormat::Json));
    assert_eq!(LogFormat::parse(Some("text")), Ok(LogFormat::Text));
    assert!(LogFormat::parse(Some("yaml")).is_err());
}

#[tokio::test]
async fn the_lag_gauge_follows_the_relay() {
    // (kept short: lag is the time from an event's creation to its relay)
    let srv = TestServer::start().await;
    let mut stream = sse::open(
        &srv.http_url("/api/v1/events?events=test.lag"),
        Some(ADMIN_KEY),
        &[],
    )
    .await;
    emit(&srv.db, "test.lag", 1, None, None).await;
    stream
        .next_within(Duration::from_secs(30))
        .await
        .expect("event");
    let (_, text) = scrape(&srv, Some(ADMIN_KEY)).await;
    let lag = value(&text, "agentplane_feed_lag_seconds", &[]);
    assert!((0.0..60.0).contains(&lag), "{lag}");
}
