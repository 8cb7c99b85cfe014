//! Webhook delivery (docs/webhooks.md). Every server runs one worker: it
//! follows the feed relay's horizon (the last id known final), leases due
//! endpoints in the database (`webhooks.claim`, `FOR UPDATE SKIP LOCKED`)
//! and runs one delivery loop per leased endpoint ([`endpoint`]). The
//! position of each endpoint lives in the database, so restarts and other
//! servers continue from the last record.

mod endpoint;
pub mod sign;

use crate::db::webhooks::{self as wdb, RecordRules};
use crate::db::DbError;
use crate::feed::Hub;
use deadpool_postgres::Pool;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

/// How the worker delivers (from `Config`).
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// The safety tick: due retries and new or enabled endpoints are picked
    /// up at least this often (new events wake the worker at once).
    pub poll: Duration,
    /// How long a lease lasts without being renewed: a server that dies
    /// holds its endpoints this long.
    pub lease: Duration,
    /// The waits before the 1st, 2nd, ... retry; the last one repeats.
    pub retry_delays: Vec<Duration>,
    /// An endpoint failing for this long is disabled.
    pub disable_after: Duration,
    /// One POST's time limit.
    pub timeout: Duration,
}

/// What every delivery loop of this server shares.
pub(crate) struct Shared {
    pool: Pool,
    http: reqwest::Client,
    rules: RecordRules,
    /// This worker's lease owner id.
    owner: Uuid,
    /// Events read per step.
    batch: i32,
}

/// Endpoints leased per claim.
const CLAIM_LIMIT: i32 = 100;

/// Events read per step of one endpoint.
const BATCH: i32 = 200;

/// How long a stopping worker waits for its loops to record what they sent.
const STOP_GRACE: Duration = Duration::from_secs(12);

/// Runs until `stop` turns true.
pub async fn run(pool: Pool, hub: Arc<Hub>, cfg: WebhookConfig, mut stop: watch::Receiver<bool>) {
    let http = match reqwest::Client::builder()
        .timeout(cfg.timeout)
        .connect_timeout(cfg.timeout)
        // a redirect is an answer, not a 2xx: never follow one with the body
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("agentplane-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the webhook HTTP client; no webhooks are delivered");
            return;
        }
    };
    let shared = Arc::new(Shared {
        pool,
        http,
        rules: RecordRules {
            lease: cfg.lease,
            delays: cfg.retry_delays.clone(),
            disable_after: cfg.disable_after,
        },
        owner: Uuid::new_v4(),
        batch: BATCH,
    });
    let mut horizon = hub.horizon();
    let mut loops: JoinSet<Uuid> = JoinSet::new();
    let mut held: HashSet<Uuid> = HashSet::new();
    let mut last_claim: Option<tokio::time::Instant> = None;
    // While this worker delivers to some endpoint, the relay keeps its busy
    // pace (else it steps every tenth tick when no WebSocket is connected).
    let mut follower: Option<crate::feed::hub::Follower> = None;
    let mut tick = tokio::time::interval(cfg.poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut ticked = false;
        tokio::select! {
            _ = horizon.changed() => {}
            _ = tick.tick() => ticked = true,
            Some(done) = loops.join_next(), if !loops.is_empty() => {
                if let Ok(id) = done {
                    held.remove(&id);
                }
            }
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        while let Some(done) = loops.try_join_next() {
            if let Ok(id) = done {
                held.remove(&id);
            }
        }
        let Some(upto) = *horizon.borrow_and_update() else {
            continue;
        };
        // New events wake the worker often; claiming (one query) at most
        // once per tick keeps that cheap. Running loops follow the horizon
        // themselves.
        let due = last_claim.is_none_or(|t| t.elapsed() >= cfg.poll);
        if due {
            last_claim = Some(tokio::time::Instant::now());
            let running: Vec<Uuid> = held.iter().copied().collect();
            match claim(&shared, &cfg, upto, &running).await {
                Ok(claimed) => {
                    for ep in claimed {
                        if !held.insert(ep.id) {
                            continue; // already delivering
                        }
                        let (shared, horizon, stop) = (shared.clone(), hub.horizon(), stop.clone());
                        loops.spawn(async move {
                            let id = ep.id;
                            if let Err(e) = endpoint::run(shared, ep, horizon, stop).await {
                                tracing::warn!(webhook = %id, error = %e,
                                    "webhook delivery paused by a database error");
                            }
                            id
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot claim webhook endpoints"),
            }
        }
        if held.is_empty() {
            follower = None;
        } else if follower.is_none() {
            follower = Some(hub.follow());
        }
        if ticked {
            if let Ok(client) = shared.pool.get().await {
                if let Ok(n) = wdb::backlog(&**client, upto).await {
                    metrics::gauge!("agentplane_webhook_backlog_events").set(n as f64);
                }
            }
        }
    }
    // Let the loops record what they sent, then give the leases back so
    // another server can continue at once.
    let _ = tokio::time::timeout(STOP_GRACE, async {
        while loops.join_next().await.is_some() {}
    })
    .await;
    loops.abort_all();
    if let Ok(client) = shared.pool.get().await {
        if let Err(e) = wdb::release(&**client, shared.owner).await {
            tracing::warn!(error = %e, "cannot release webhook leases");
        }
    }
}

async fn claim(
    shared: &Shared,
    cfg: &WebhookConfig,
    horizon: i64,
    running: &[Uuid],
) -> Result<Vec<wdb::Claimed>, DbError> {
    let client = shared.pool.get().await?;
    wdb::claim(
        &**client,
        shared.owner,
        cfg.lease,
        horizon,
        CLAIM_LIMIT,
        running,
    )
    .await
}
