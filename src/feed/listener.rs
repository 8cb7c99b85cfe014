//! The relay: one dedicated database connection per server process (never a
//! pooled one) that LISTENs for wake-up hints and reads the event table.
//!
//! After every (re)connect, on NOTIFY hints (at most one step per quarter
//! tick; none while no connection is registered) and on every poll tick it
//! runs `feed.relay_poll`, which only ever hands out ids that are final, in id
//! order; the relay publishes them to the hub and remembers the last one.
//! A dropped connection is re-established with backoff and the relay
//! catches up from where it was, so nothing is lost or repeated.

use super::{Event, Hub, CHANNEL, LISTENER_APP_NAME};
use crate::db::feed::{has_more, read_range_on, relay_poll, RelayCursor, PAGE_BYTES, RELAY_POLL};
use crate::db::{self, DbError};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

/// Events read per relay step.
const PAGE: i32 = 1000;

/// The poll tick while no connection is registered, in poll ticks.
const IDLE_POLL_FACTOR: u32 = 10;

pub struct RelayConfig {
    pub url: String,
    /// LISTEN for NOTIFY hints (else poll only).
    pub listen: bool,
    pub poll: Duration,
}

/// Runs until `stop` turns true.
pub async fn run(hub: Arc<Hub>, cfg: RelayConfig, mut stop: watch::Receiver<bool>) {
    let mut state = RelayState::default();
    let mut backoff = FIRST_BACKOFF;
    while !*stop.borrow() {
        state.stepped = false;
        let outcome = session(&hub, &cfg, &mut state, &mut stop).await;
        if state.stepped {
            // The session worked before it broke: this is a new outage, not
            // the same one going on, so the wait starts short again.
            backoff = FIRST_BACKOFF;
        }
        match outcome {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64,
                    "feed listener connection lost; reconnecting");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// The first wait before reconnecting; it doubles up to 5 s while
/// reconnecting keeps failing.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Default)]
struct RelayState {
    /// Whether the current session completed a relay step.
    stepped: bool,
    /// The last id published; None until the first step.
    last: Option<i64>,
    cursor: RelayCursor,
}

/// One connection's lifetime. Ok(()) means "stopped on request".
async fn session(
    hub: &Arc<Hub>,
    cfg: &RelayConfig,
    state: &mut RelayState,
    stop: &mut watch::Receiver<bool>,
) -> Result<(), DbError> {
    let pg = db::pg_config(&cfg.url, LISTENER_APP_NAME)?;
    let (client, mut conn) = pg.connect(db::tls::connector()?).await?;
    // Drive the connection ourselves: notifications only surface through
    // poll_message. A full wake channel already holds a pending wake-up.
    let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
    let driver = tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(msg) = messages.next().await {
            match msg {
                Ok(AsyncMessage::Notification(_)) => {
                    let _ = wake_tx.try_send(());
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "feed listener connection closed");
                    break;
                }
            }
        }
        // wake_tx dropped here: the session sees the connection is gone.
    });
    let result = async {
        if cfg.listen {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        }
        // prepared once per connection, not parsed at every step
        let poll = client.prepare(RELAY_POLL).await?;
        tracing::info!(listen = cfg.listen, "feed listener connected");
        let settle = settle_of(cfg);
        let mut hinted = false; // whether a NOTIFY hint led to this step
        loop {
            let stepped_at = tokio::time::Instant::now();
            step(hub, &client, &poll, state).await?;
            state.stepped = true;
            let wait = next_wait(hub, cfg, state, hinted);
            let deadline = tokio::time::Instant::now() + wait;
            hinted = false;
            loop {
                tokio::select! {
                    w = wake_rx.recv() => {
                        if w.is_none() {
                            // the driver ended: the connection is gone
                            client.simple_query("SELECT 1").await?;
                            return Err(DbError::Config("feed listener connection closed".into()));
                        }
                        if hub.is_idle() {
                            continue; // a hint for nobody: keep the idle pace
                        }
                        // Under a stream of hints, step at most once per
                        // `settle`: each step then carries a burst of events
                        // that every connection writes out at once, instead
                        // of a step, and a write per connection, for every
                        // commit. A lone
                        // hint after a quiet spell is stepped on at once.
                        tokio::time::sleep_until(stepped_at + settle).await;
                        hinted = true;
                    }
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = hub.connection_registered() => {}
                    _ = stop.changed() => return Ok(()),
                }
                break;
            }
            if *stop.borrow() {
                return Ok(());
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// The shortest gap between steps, and the wait while a hinted commit's
/// checkpoint is pending: a quarter tick.
fn settle_of(cfg: &RelayConfig) -> Duration {
    (cfg.poll / 4).max(Duration::from_millis(1))
}

/// How long the relay waits for the next step, unless a hint, a new
/// connection or a stop comes first. `hinted`: a NOTIFY hint led to the
/// step just taken.
fn next_wait(hub: &Hub, cfg: &RelayConfig, state: &RelayState, hinted: bool) -> Duration {
    if state.last.is_none() {
        settle_of(cfg) // starting: the first cut
    } else if hub.is_idle() {
        // Nobody to deliver to: the cut only has to stay recent. A step
        // costs a little, and under a write load a checkpoint is nearly
        // always waiting: chasing it every settle would take an eighth of a
        // core during usage ingest. The first
        // connection wakes the relay.
        cfg.poll * IDLE_POLL_FACTOR
    } else if hinted && state.cursor.is_pending() {
        // A hinted commit waits for the transactions in flight: look again
        // soon: otherwise it waits a whole tick, which doubles the feed's
        // tail latency.
        settle_of(cfg)
    } else {
        // Unhinted writes (the hot paths) wait for the tick even while a
        // checkpoint waits: under their load one nearly always does, and
        // stepping every settle for it would cost a spend load with
        // subscribers a tenth of a core.
        cfg.poll
    }
}

/// Reads and publishes everything that is final now.
async fn step(
    hub: &Arc<Hub>,
    client: &tokio_postgres::Client,
    poll: &tokio_postgres::Statement,
    state: &mut RelayState,
) -> Result<(), DbError> {
    loop {
        // With no connection registered the step only advances the cut:
        // reading and rendering every event for nobody would cost a tenth of
        // the machine under a spend load.
        let idle = state.last.is_some() && hub.is_idle();
        let limit = if idle { 0 } else { PAGE };
        // Likewise only the events of the users someone follows, when every
        // connection follows named users: the rest would be rendered for
        // nobody.
        let (version, users) = hub.wanted_users();
        let events = relay_poll(
            client,
            poll,
            state.last,
            &mut state.cursor,
            limit,
            users.as_deref(),
        )
        .await?;
        let Some(last) = state.last else {
            // A cut above 0 is final even while later checkpoints wait
            // (under a steady write load one nearly always does).
            if !state.cursor.is_pending() || state.cursor.cut > 0 {
                // Start: what is already in the table is history.
                state.last = Some(state.cursor.cut);
                hub.start_at(state.cursor.cut);
            }
            return Ok(());
        };
        if idle {
            if hub.skip_while_idle(state.cursor.cut) {
                state.last = Some(last.max(state.cursor.cut));
                return Ok(());
            }
            continue; // a connection registered meanwhile: read the events
        }
        let read_upto = events.last().map(|e| e.id);
        let mut full_page = events.len() >= PAGE as usize;
        let batch: Vec<Arc<Event>> = events
            .into_iter()
            .filter(|e| e.id > last)
            .map(Event::new)
            .collect();
        if let Some(read_upto) = read_upto.filter(|_| !full_page && near_byte_bound(&batch)) {
            full_page = has_more(client, read_upto, state.cursor.cut, users.as_deref()).await?;
        }
        // A full page ends at its last event; a short one read the whole
        // range up to the cut.
        let upto = match batch.last() {
            Some(e) if full_page => e.stored.id,
            _ => state.cursor.cut.max(last),
        };
        record_relayed(&batch);
        let read_for = users.is_some().then_some(version);
        if !hub.publish_read(&batch, upto, read_for) {
            republish_unfiltered(hub, client, last, upto).await?;
        }
        state.last = Some(upto);
        if !full_page {
            return Ok(());
        }
    }
}

/// Counts a step's events and notes how long its last one took from
/// creation to relay (`agentplane_feed_lag_seconds`).
fn record_relayed(batch: &[Arc<Event>]) {
    let Some(last) = batch.last() else {
        return;
    };
    metrics::counter!(crate::telemetry::FEED_RELAYED).increment(batch.len() as u64);
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(&last.stored.created_at) {
        let lag = chrono::Utc::now().signed_duration_since(at);
        let secs = lag.num_microseconds().unwrap_or(0).max(0) as f64 / 1e6;
        metrics::gauge!(crate::telemetry::FEED_LAG).set(secs);
    }
}

/// Whether a page is large enough that the database may have stopped it at
/// its byte bound rather than at the end of the range (then one more query
/// asks whether events were left).
fn near_byte_bound(batch: &[Arc<Event>]) -> bool {
    batch.iter().map(|e| e.control_json.len()).sum::<usize>() >= PAGE_BYTES / 2
}

/// Reads `(after, upto]` again with no user filter and publishes it: an
/// interest changed while the filtered read was under way.
async fn republish_unfiltered(
    hub: &Arc<Hub>,
    client: &tokio_postgres::Client,
    mut after: i64,
    upto: i64,
) -> Result<(), DbError> {
    while after < upto {
        let page = read_range_on(client, after, upto, PAGE).await?;
        let read_upto = page.last().map(|e| e.id);
        let batch: Vec<Arc<Event>> = page.into_iter().map(Event::new).collect();
        record_relayed(&batch);
        let page_upto = match read_upto {
            Some(id) if batch.len() >= PAGE as usize => id,
            Some(id) if near_byte_bound(&batch) && has_more(client, id, upto, None).await? => id,
            _ => upto,
        };
        hub.publish_read(&batch, page_upto, None);
        after = page_upto;
    }
    Ok(())
}
