//! Which credentials are good right now, as this server knows it: whether
//! the server still runs open, and which keys were revoked since it started.
//!
//! Requests look their key up in the database every time, so a revocation
//! stops them at once. Long-lived connections (WebSockets) authenticate once;
//! they follow this instead, and close when their credential goes. A task
//! ([`watch`]) re-reads the database every `recheck`, so a revocation made
//! through another server reaches this one's sockets within that time too.

use crate::config::Config;
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use uuid::Uuid;

pub struct Access {
    /// Open mode can exist at all: no admin key is configured and the
    /// server listens on loopback only.
    open_possible: bool,
    /// Set once a key exists; never cleared.
    open_ended: AtomicBool,
    revoked: Mutex<HashSet<Uuid>>,
    /// Bumped whenever `open_ended` or `revoked` changes.
    changes: watch::Sender<u64>,
    /// Wakes the watcher early (a key was created or revoked here).
    poke: Notify,
}

impl Access {
    pub fn new(config: &Config) -> Access {
        Access {
            open_possible: config.admin_key.is_none() && config.bind.ip().is_loopback(),
            open_ended: AtomicBool::new(false),
            revoked: Mutex::new(HashSet::new()),
            changes: watch::channel(0).0,
            poke: Notify::new(),
        }
    }

    /// Whether a request without a key may do everything. True only while no
    /// key was ever created; the first key ends it for good.
    pub async fn is_open(&self, pool: &Pool) -> Result<bool, DbError> {
        if !self.open_possible || self.open_ended.load(Ordering::SeqCst) {
            return Ok(false);
        }
        if db::keys::any_created(pool).await? {
            self.end_open_mode();
            return Ok(false);
        }
        Ok(true)
    }

    /// Open mode is over (a key now exists).
    pub fn end_open_mode(&self) {
        if !self.open_ended.swap(true, Ordering::SeqCst) {
            tracing::info!("an API key exists: open mode has ended, every request needs a key");
            self.changes.send_modify(|n| *n += 1);
        }
    }

    /// Whether a connection authenticated as `open` / with `key_id` may go on.
    pub fn still_valid(&self, open: bool, key_id: Option<Uuid>) -> bool {
        if open {
            return !self.open_ended.load(Ordering::SeqCst);
        }
        match key_id {
            Some(id) => !self.lock_revoked().contains(&id),
            None => true, // the configured admin key: it cannot be revoked
        }
    }

    /// Changes whenever a credential stops being valid.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Asks the watcher to look at the database now.
    pub fn poke(&self) {
        self.poke.notify_one();
    }

    fn revoke(&self, ids: impl IntoIterator<Item = Uuid>) {
        let added = {
            let mut revoked = self.lock_revoked();
            let mut added = false;
            for id in ids {
                added |= revoked.insert(id);
            }
            added
        };
        if added {
            self.changes.send_modify(|n| *n += 1);
        }
    }

    fn lock_revoked(&self) -> std::sync::MutexGuard<'_, HashSet<Uuid>> {
        // Every critical section is one insert or lookup: a panic cannot
        // leave the set half-changed.
        self.revoked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Follows the database until `stop` turns true: revocations since the
/// server started, and whether a key exists yet.
pub async fn watch(
    access: Arc<Access>,
    pool: Pool,
    recheck: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut since: Option<DateTime<Utc>> = None;
    while !*stop.borrow() {
        if let Err(e) = look(&access, &pool, &mut since).await {
            tracing::warn!(error = %e, "could not check for revoked keys; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(recheck) => {}
            _ = access.poke.notified() => {}
            _ = stop.changed() => {}
        }
    }
}

async fn look(
    access: &Access,
    pool: &Pool,
    since: &mut Option<DateTime<Utc>>,
) -> Result<(), DbError> {
    let from = match since {
        // A revocation is stamped with its transaction's start, which can
        // lie before the previous look if it committed after it: look back
        // a minute (the set absorbs repeats).
        Some(t) => *t - chrono::Duration::minutes(1),
        None => DateTime::<Utc>::UNIX_EPOCH,
    };
    let (ids, now) = db::keys::revoked_since(pool, from).await?;
    access.revoke(ids);
    *since = Some(now);
    access.is_open(pool).await?;
    Ok(())
}
