//! `GET /api/v1/events` as Server-Sent Events: a subscriber of the same hub
//! as the WebSockets (one relay, one fan-out). It replays from the table
//! after the id it resumes from, then follows live events with no gap and no
//! duplicate, exactly as `/ws` does with `since`; it ends when the hub kicks
//! it (its queue overflowed: the client does not read), when its key is
//! revoked or open mode ends, and on shutdown.

use super::hub::Kicked;
use super::page::{self, PageQuery};
use super::{Event, Filter, Interest, Subscription};
use crate::api::{ApiError, AppState, Auth};
use bytes::Bytes;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// A `: ping` comment goes out this often (keeps proxies from closing an
/// idle stream, and lets the server notice a client that went away).
pub const PING_EVERY: Duration = Duration::from_secs(15);
/// Replay without a live registration until this close to the live edge.
const CATCH_UP_GAP: i64 = 256;
/// Events written per chunk: a stream that fell behind sends what waits in
/// its queue in one write.
const BURST: usize = 64;
/// Chunks buffered between the stream's task and the HTTP body. Small: a
/// client that does not read must fill the hub's queue, not this one.
const BODY_CHUNKS: usize = 4;
/// Bytes of events per replay chunk.
const REPLAY_BYTES: usize = 1024 * 1024;

/// One event in the stream's wire format.
fn frame(out: &mut String, ev: &Event) {
    out.push_str("id: ");
    out.push_str(&ev.stored.id.to_string());
    out.push_str("\nevent: ");
    out.push_str(&ev.stored.ty);
    out.push_str("\ndata: ");
    // JSON text holds no raw line break (they are escaped in strings).
    out.push_str(&ev.control_json);
    out.push_str("\n\n");
}

/// Starts a stream for `auth` following `filter`, resuming after `resume`
/// (None: from the live edge). Returns the response body.
pub fn open(
    state: &AppState,
    auth: Auth,
    filter: Filter,
    resume: Option<i64>,
) -> Result<poem::Body, ApiError> {
    let Some(slot) = state.hub.try_connect() else {
        return Err(ApiError::new(
            503,
            "too_many_connections",
            "this server has reached its connection limit for live feeds; retry later",
            json!({"max": state.config.ws_max_connections}),
        ));
    };
    let sub = state.hub.register(slot, auth.user_id.clone());
    let mut floor = 0;
    if resume.is_none() {
        // Live from here: registered before the response starts, so an
        // event committed after the client got the headers is delivered.
        floor = state
            .hub
            .set_interest(&sub, Interest::Filter(filter.clone()));
    }
    let (tx, rx) = mpsc::channel::<Bytes>(BODY_CHUNKS);
    let stream = Stream {
        state: state.clone(),
        kicked: sub.kicked.clone(),
        sub,
        auth,
        tx,
        floor,
        _open: crate::telemetry::GaugeGuard::new(metrics::gauge!(
            crate::telemetry::SSE_CONNECTIONS
        )),
    };
    tokio::spawn(stream.run(filter, resume));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::io::Error>(chunk), rx))
    });
    Ok(poem::Body::from_bytes_stream(body))
}

/// Why a stream ends.
enum End {
    /// The client went away, the credential went, or the server stops.
    Gone,
    /// The hub dropped it: its queue overflowed.
    Kicked,
}

struct Stream {
    state: AppState,
    auth: Auth,
    sub: Subscription,
    kicked: Arc<Kicked>,
    tx: mpsc::Sender<Bytes>,
    /// Queued live events at or below this id were replayed (or precede
    /// the subscription) and are skipped.
    floor: i64,
    /// Counts this stream in `agentplane_sse_connections`.
    _open: crate::telemetry::GaugeGuard,
}

impl Stream {
    async fn run(mut self, filter: Filter, resume: Option<i64>) {
        let outcome = match resume {
            Some(after) => self.catch_up(filter, after).await,
            None => Ok(()),
        };
        let outcome = match outcome {
            Ok(()) => self.follow().await,
            Err(e) => Err(e),
        };
        if let Err(End::Kicked) = outcome {
            tracing::info!("event stream ended: the client does not keep up");
        }
    }

    /// Hands a chunk to the body; gives up when the hub kicks this stream
    /// or the client is gone.
    async fn send(&self, chunk: String) -> Result<(), End> {
        tokio::select! {
            r = self.tx.send(Bytes::from(chunk)) => r.map_err(|_| End::Gone),
            _ = self.kicked.wait() => Err(End::Kicked),
        }
    }

    /// Replays `(after, watermark]` from the table, registers for live
    /// events, then replays what was published meanwhile (as `/ws` does
    /// for `since`).
    async fn catch_up(&mut self, filter: Filter, after: i64) -> Result<(), End> {
        let hub = self.state.hub.clone();
        let mut cursor = after;
        loop {
            let w = hub.watermark().await;
            if w - cursor <= CATCH_UP_GAP {
                break;
            }
            cursor = self.replay(&filter, cursor, w).await?;
        }
        let w = hub.set_interest(&self.sub, Interest::Filter(filter.clone()));
        if w > cursor {
            self.replay(&filter, cursor, w).await?;
        }
        self.floor = w.max(after);
        Ok(())
    }

    /// Sends the stored events of `(after, upto]` that match; returns upto.
    async fn replay(&mut self, filter: &Filter, after: i64, upto: i64) -> Result<i64, End> {
        let mut cur = after;
        while cur < upto {
            let q = PageQuery {
                filter,
                bound_user: self.auth.user_id.as_deref(),
                after: cur,
                upto,
                limit: usize::MAX,
                max_bytes: REPLAY_BYTES,
                max_rows: 5000,
            };
            let page = match page::read(&self.state.pool, &q).await {
                Ok(p) => p,
                Err(e) => {
                    // The client resumes from its last id when it reconnects.
                    tracing::warn!(error = %e, "event stream replay failed; ending the stream");
                    return Err(End::Gone);
                }
            };
            let mut out = String::new();
            for ev in &page.events {
                frame(&mut out, ev);
            }
            if !out.is_empty() {
                self.send(out).await?;
            }
            if page.scanned_to <= cur {
                break;
            }
            cur = page.scanned_to;
        }
        Ok(upto)
    }

    /// Live events until the stream ends, with a ping comment every
    /// [`PING_EVERY`].
    async fn follow(&mut self) -> Result<(), End> {
        let hub = self.state.hub.clone();
        let mut shutdown = hub.on_shutdown();
        if *shutdown.borrow() {
            return Err(End::Gone);
        }
        let mut access = self.state.access.subscribe();
        let mut ping = tokio::time::interval(PING_EVERY);
        ping.tick().await;
        let kicked = self.kicked.clone();
        loop {
            tokio::select! {
                _ = kicked.wait() => return Err(End::Kicked),
                _ = self.tx.closed() => return Err(End::Gone),
                _ = shutdown.changed() => return Err(End::Gone),
                Ok(()) = access.changed() => {
                    if !self.state.access.still_valid(self.auth.open, self.auth.key_id) {
                        return Err(End::Gone);
                    }
                }
                ev = self.sub.rx.recv() => match ev {
                    Some(ev) => self.push_burst(ev).await?,
                    None => return Err(if kicked.is_set() { End::Kicked } else { End::Gone }),
                },
                _ = ping.tick() => self.send(": ping\n\n".to_string()).await?,
            }
        }
    }

    /// Sends `first` and what else waits in the queue (up to BURST) as one
    /// chunk.
    async fn push_burst(&mut self, first: Arc<Event>) -> Result<(), End> {
        let mut out = String::new();
        let floor = self.floor;
        let take = |ev: &Event, out: &mut String| {
            if ev.stored.id > floor {
                frame(out, ev);
            }
        };
        take(&first, &mut out);
        for _ in 1..BURST {
            match self.sub.rx.try_recv() {
                Ok(ev) => take(&ev, &mut out),
                Err(_) => break,
            }
        }
        if out.is_empty() {
            return Ok(());
        }
        self.send(out).await
    }
}
