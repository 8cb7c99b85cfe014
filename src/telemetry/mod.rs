//! Operations (docs/operations.md): Prometheus metrics ([`metrics`] crate
//! with its Prometheus exporter, served at `GET /metrics`), one log line per
//! request with a request id ([`requests`]) and the log format
//! ([`logging`]).
//!
//! Metric names are constants here so the code that updates a metric and
//! the description that makes it appear at 0 cannot disagree. No label
//! carries a user id, key or other unbounded value.

pub mod logging;
pub mod requests;

use crate::api::auth::authenticate;
use crate::api::{AppState, Role};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use poem::web::Data;
use poem::{handler, IntoResponse, Request, Response};
use std::sync::OnceLock;

pub const HTTP_REQUESTS: &str = "agentplane_http_requests_total";
pub const HTTP_DURATION: &str = "agentplane_http_request_duration_seconds";
pub const FEED_RELAYED: &str = "agentplane_feed_events_relayed_total";
pub const FEED_LAG: &str = "agentplane_feed_lag_seconds";
pub const WS_CONNECTIONS: &str = "agentplane_ws_connections";
pub const SSE_CONNECTIONS: &str = "agentplane_sse_connections";
pub const WEBHOOK_DELIVERIES: &str = "agentplane_webhook_deliveries_total";
pub const WEBHOOK_BACKLOG: &str = "agentplane_webhook_backlog_events";
pub const DB_POOL: &str = "agentplane_db_pool_connections";
pub const USAGE_UNFOLDED: &str = "agentplane_usage_unfolded_records";
pub const SPEND_WAITING: &str = "agentplane_spend_queue_waiting";

/// Upper bounds of the request duration histogram, in seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process-wide recorder, installed by the first call (the server makes
/// one `AppState`; tests make many in one process and share it). None when
/// another recorder was installed first.
pub fn recorder() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(HTTP_DURATION.into()), DURATION_BUCKETS)
                .and_then(PrometheusBuilder::install_recorder);
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed; /metrics stays empty");
                    None
                }
            }
        })
        .as_ref()
}

/// Describes every metric and registers those whose updates may not have
/// happened yet, so a scrape shows them at 0 from the start.
fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        HTTP_REQUESTS,
        "HTTP requests answered, by operationId and status"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "time to answer an HTTP request (to the response head for streams), by operationId"
    );
    describe_counter!(
        FEED_RELAYED,
        "events the feed relay published to this server's hub"
    );
    describe_gauge!(
        FEED_LAG,
        Unit::Seconds,
        "from an event's creation to its relay, for the last event of the last relay step"
    );
    describe_gauge!(WS_CONNECTIONS, "open WebSockets, by protocol");
    describe_gauge!(SSE_CONNECTIONS, "open Server-Sent Events streams");
    describe_counter!(WEBHOOK_DELIVERIES, "webhook delivery attempts, by result");
    describe_gauge!(
        WEBHOOK_BACKLOG,
        "events matched to webhook endpoints, not yet delivered"
    );
    describe_gauge!(
        DB_POOL,
        "database pool connections, by state (active, idle, waiting)"
    );
    describe_gauge!(
        USAGE_UNFOLDED,
        "usage records written but not yet folded into budgets"
    );
    describe_gauge!(
        SPEND_WAITING,
        "spends queued behind another spend of the same user"
    );
    metrics::counter!(FEED_RELAYED).absolute(0);
    metrics::gauge!(FEED_LAG).set(0.0);
    for protocol in ["control", "messages", "executions"] {
        metrics::gauge!(WS_CONNECTIONS, "protocol" => protocol).set(0.0);
    }
    metrics::gauge!(SSE_CONNECTIONS).set(0.0);
    metrics::gauge!(WEBHOOK_BACKLOG).set(0.0);
    for result in ["delivered", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "result" => result).absolute(0);
    }
}

/// Holds a gauge one higher while it lives (an open connection).
pub struct GaugeGuard(metrics::Gauge);

impl GaugeGuard {
    pub fn new(gauge: metrics::Gauge) -> GaugeGuard {
        gauge.increment(1.0);
        GaugeGuard(gauge)
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Gauges read when scraped rather than kept up to date.
async fn sample(state: &AppState) {
    let status = state.pool.status();
    let idle = status.available as f64;
    metrics::gauge!(DB_POOL, "state" => "idle").set(idle);
    metrics::gauge!(DB_POOL, "state" => "active").set(status.size as f64 - idle);
    metrics::gauge!(DB_POOL, "state" => "waiting").set(status.waiting as f64);
    metrics::gauge!(SPEND_WAITING).set(state.spends.waiting() as f64);
    match crate::db::usage::unfolded_records(&state.pool).await {
        Ok(n) => metrics::gauge!(USAGE_UNFOLDED).set(n as f64),
        // the scrape still answers the other metrics
        Err(e) => tracing::warn!(error = %e, "could not count unfolded usage records"),
    }
}

/// `GET /metrics`: Prometheus text exposition (reader key; none needed in
/// open mode).
#[handler]
pub async fn metrics_endpoint(req: &Request, state: Data<&AppState>) -> Response {
    let auth = match authenticate(&state, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = auth.require(Role::Reader) {
        return e.into_response();
    }
    sample(&state).await;
    let text = match recorder() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    };
    Response::builder()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text)
}
