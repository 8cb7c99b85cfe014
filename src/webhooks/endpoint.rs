//! One leased endpoint's delivery loop: reads its next events after the
//! recorded position (up to the relay's horizon), POSTs them one at a time
//! in id order, and records the attempts and the position reached. It runs
//! until an attempt fails (the retry is scheduled in the database and any
//! server may take it), the endpoint is deleted or disabled, its lease is
//! lost, or the server stops.

use super::sign;
use super::Shared;
use crate::db::webhooks::{self as wdb, Claimed, Recorded};
use crate::db::DbError;
use crate::feed::Event;
use chrono::Utc;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;

/// The most of a response body read (then the connection is dropped).
const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// The least time between two reads of an endpoint's events when the
/// first found none.
const QUIET: std::time::Duration = std::time::Duration::from_millis(50);

/// The outcome of one POST.
struct Outcome {
    status: Option<u16>,
    error: Option<String>,
    delivered: bool,
    duration_ms: i64,
}

pub(super) async fn run(
    shared: Arc<Shared>,
    ep: Claimed,
    mut horizon: watch::Receiver<Option<i64>>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), DbError> {
    let Some(key) = sign::secret_key(&ep.secret) else {
        // Only the server makes secrets; one it cannot read is a fault to
        // report, not to retry every tick (the lease runs out meanwhile).
        tracing::error!(webhook = %ep.id, "webhook secret is not a whsec_ secret; not delivering");
        return Ok(());
    };
    let renew_every = shared.rules.lease / 3;
    let mut position = ep.position;
    let mut failures = ep.failures;
    let mut last_record = Instant::now();
    // After a read that found nothing to send, the next one waits QUIET at
    // least: under a write load the horizon moves at every relay step, and a
    // read per step and endpoint would cost more than the deliveries do.
    let mut quiet_until: Option<tokio::time::Instant> = None;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        if last_record.elapsed() >= renew_every {
            // also saves how far reads that matched nothing got
            let rec = record(&shared, &ep, &[], position).await?;
            last_record = Instant::now();
            if !rec.held {
                return Ok(());
            }
        }
        let upto = horizon.borrow_and_update().unwrap_or(0);
        let now = tokio::time::Instant::now();
        let quiet = quiet_until.filter(|t| *t > now);
        if position >= upto || quiet.is_some() {
            // Caught up (or pacing): wait for the horizon, renewing the
            // lease meanwhile.
            let renew_at = tokio::time::Instant::from_std(last_record + renew_every);
            let wake_at = quiet.map_or(renew_at, |q| q.min(renew_at));
            tokio::select! {
                _ = horizon.changed(), if quiet.is_none() => {}
                _ = tokio::time::sleep_until(wake_at) => {}
                _ = stop.changed() => return Ok(()),
            }
            continue;
        }
        let next = {
            let client = shared.pool.get().await?;
            wdb::next_events(&**client, ep.id, position, upto, shared.batch).await?
        };
        if next.events.is_empty() {
            // Nothing matched: move on without a write (the position is
            // saved with the next record; a crash before it only re-reads).
            position = position.max(next.upto);
            quiet_until = Some(tokio::time::Instant::now() + QUIET);
            continue;
        }
        quiet_until = None;
        let mut attempts: Vec<Value> = Vec::new();
        let mut reached = position;
        let mut failed = false;
        for stored in next.events {
            let id = stored.id;
            let event = Event::new(stored);
            failures += 1;
            let at = Utc::now();
            let outcome = post(&shared, &ep.url, &key, id, &event.control_json).await;
            attempts.push(json!({
                "eventId": id,
                "attempt": failures,
                "at": at,
                "responseStatus": outcome.status,
                "error": outcome.error,
                "durationMs": outcome.duration_ms,
                "delivered": outcome.delivered,
            }));
            if !outcome.delivered {
                failed = true;
                break;
            }
            failures = 0;
            reached = id;
            if last_record.elapsed() >= renew_every || *stop.borrow() {
                // A long batch to a slow receiver: record what is done so the
                // lease never runs out under it.
                let rec = record(&shared, &ep, &attempts, reached).await?;
                attempts.clear();
                last_record = Instant::now();
                if !rec.held || *stop.borrow() {
                    return Ok(());
                }
            }
        }
        if !failed {
            // every event read was delivered: the range they cover is done
            reached = reached.max(next.upto);
        }
        let rec = record(&shared, &ep, &attempts, reached).await?;
        last_record = Instant::now();
        position = reached;
        if failed || !rec.held {
            return Ok(());
        }
    }
}

async fn record(
    shared: &Shared,
    ep: &Claimed,
    attempts: &[Value],
    position: i64,
) -> Result<Recorded, DbError> {
    let client = shared.pool.get().await?;
    let rec = wdb::record(
        &**client,
        ep.id,
        shared.owner,
        &Value::Array(attempts.to_vec()),
        position,
        &shared.rules,
    )
    .await?;
    if !rec.enabled {
        tracing::warn!(webhook = %ep.id, "webhook endpoint is disabled");
    }
    Ok(rec)
}

/// POSTs one event, signed; any 2xx delivers it.
async fn post(shared: &Shared, url: &str, key: &[u8], id: i64, body: &str) -> Outcome {
    let msg_id = id.to_string();
    let ts = Utc::now().timestamp();
    let signature = sign::signature(key, &msg_id, ts, body);
    let started = Instant::now();
    let sent = shared
        .http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", &msg_id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(body.to_string())
        .send()
        .await;
    let outcome = match sent {
        Ok(mut resp) => {
            let status = resp.status();
            // Read (a bounded part of) the answer so the connection can be
            // reused; what it says does not matter.
            let mut read = 0usize;
            while let Ok(Some(chunk)) = resp.chunk().await {
                read += chunk.len();
                if read > MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Outcome {
                status: Some(status.as_u16()),
                error: (!status.is_success()).then(|| format!("HTTP {}", status.as_u16())),
                delivered: status.is_success(),
                duration_ms: 0,
            }
        }
        Err(e) => Outcome {
            status: None,
            error: Some(if e.is_timeout() {
                "timeout".to_string()
            } else {
                describe(&e)
            }),
            delivered: false,
            duration_ms: 0,
        },
    };
    let result = match (&outcome.status, outcome.delivered) {
        (_, true) => "delivered",
        (Some(_), false) => "failed",
        (None, false) => "error",
    };
    metrics::counter!("agentplane_webhook_deliveries_total", "result" => result).increment(1);
    Outcome {
        duration_ms: started.elapsed().as_millis().min(i32::MAX as u128) as i64,
        ..outcome
    }
}

/// An HTTP client error with its causes (reqwest's own text is often just
/// "error sending request").
fn describe(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
