//! In-process fan-out. The relay publishes events in id order; each
//! connection has a bounded queue and an interest (filter or channels).
//! Publishing never waits: a connection whose queue is full is removed and
//! told so (it then closes its socket with 1013; the client resumes with
//! `since`).

use super::{graph_channel, graph_exec_channel, visible_to, Event, Filter};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, watch, Notify};

/// What one connection receives.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Interest {
    /// Connected, not subscribed.
    #[default]
    Nothing,
    /// `/ws` and `/ws/messages`: events matching the filter.
    Filter(Filter),
    /// `/ws/executions`: execution events of these channels.
    Channels(HashSet<String>),
}

struct Sub {
    interest: Interest,
    bound_user: Option<String>,
    tx: mpsc::Sender<Arc<Event>>,
    kicked: Arc<Kicked>,
}

/// Set when the hub dropped a connection because its queue was full.
#[derive(Default)]
pub struct Kicked {
    flag: AtomicBool,
    notify: Notify,
}

impl Kicked {
    pub fn is_set(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Resolves once the connection has been kicked.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_set() {
                return;
            }
            notified.await;
        }
    }

    fn set(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.notify.notify_one();
    }
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    subs: HashMap<u64, Sub>,
    /// channel -> subscribed connections; a channel with none is removed.
    channels: HashMap<String, HashSet<u64>>,
    /// The last id published (None until the relay has started).
    last_id: Option<i64>,
    /// Bumped by every change of interest (see `wanted_users`).
    interest_version: u64,
}

pub struct Hub {
    inner: Mutex<Inner>,
    queue: usize,
    max_connections: usize,
    connections: AtomicUsize,
    ready: watch::Sender<Option<i64>>,
    shutdown: watch::Sender<bool>,
    /// Signalled when a connection registers: the relay polls slowly while
    /// nobody is connected and wakes up for the first one.
    registered: tokio::sync::Notify,
    /// Followers of the horizon outside the hub (webhook delivery loops).
    followers: AtomicUsize,
}

/// Keeps the relay at its busy pace while held (see `Hub::follow`).
pub struct Follower {
    hub: Arc<Hub>,
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.hub.followers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A connection slot (counts against the maximum until dropped).
pub struct ConnSlot {
    hub: Arc<Hub>,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        self.hub.connections.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A registered connection: its queue, and its entry in the hub (removed on drop).
pub struct Subscription {
    hub: Arc<Hub>,
    id: u64,
    pub rx: mpsc::Receiver<Arc<Event>>,
    pub kicked: Arc<Kicked>,
    _slot: ConnSlot,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        if let Some(sub) = inner.subs.remove(&self.id) {
            drop_channels(&mut inner, self.id, &sub.interest);
        }
    }
}

fn drop_channels(inner: &mut Inner, id: u64, interest: &Interest) {
    if let Interest::Channels(chs) = interest {
        for ch in chs {
            if let Some(set) = inner.channels.get_mut(ch) {
                set.remove(&id);
                if set.is_empty() {
                    inner.channels.remove(ch);
                }
            }
        }
    }
}

impl Hub {
    pub fn new(queue: usize, max_connections: usize) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner::default()),
            queue: queue.max(1),
            max_connections,
            connections: AtomicUsize::new(0),
            ready: watch::channel(None).0,
            shutdown: watch::channel(false).0,
            registered: tokio::sync::Notify::new(),
            followers: AtomicUsize::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave Inner half-updated in
        // a way that matters more than stopping the feed would.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes a connection slot, or None when the server is at its maximum.
    pub fn try_connect(self: &Arc<Self>) -> Option<ConnSlot> {
        let n = self.connections.fetch_add(1, Ordering::SeqCst);
        let slot = ConnSlot { hub: self.clone() };
        (n < self.max_connections).then_some(slot)
    }

    /// Open WebSocket connections.
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Registers a connection with no interest yet.
    pub fn register(self: &Arc<Self>, slot: ConnSlot, bound_user: Option<String>) -> Subscription {
        let (tx, rx) = mpsc::channel(self.queue);
        let kicked = Arc::new(Kicked::default());
        let mut inner = self.lock();
        inner.next_id += 1;
        let id = inner.next_id;
        inner.subs.insert(
            id,
            Sub {
                interest: Interest::Nothing,
                bound_user,
                tx,
                kicked: kicked.clone(),
            },
        );
        drop(inner);
        self.registered.notify_one();
        Subscription {
            hub: self.clone(),
            id,
            rx,
            kicked,
            _slot: slot,
        }
    }

    /// Replaces a connection's interest and returns the last published id at
    /// that instant: every event after it is matched against the new interest.
    pub fn set_interest(&self, sub: &Subscription, interest: Interest) -> i64 {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let last = inner.last_id.unwrap_or(0);
        let Some(entry) = inner.subs.get_mut(&sub.id) else {
            return last;
        };
        let old = std::mem::replace(&mut entry.interest, interest.clone());
        inner.interest_version += 1;
        drop_channels(inner, sub.id, &old);
        if let Interest::Channels(chs) = &interest {
            for ch in chs {
                inner.channels.entry(ch.clone()).or_default().insert(sub.id);
            }
        }
        last
    }

    /// Channels with at least one subscriber.
    pub fn channel_count(&self) -> usize {
        self.lock().channels.len()
    }

    /// The relay has started: ids up to `last` are history.
    pub fn start_at(&self, last: i64) {
        let mut inner = self.lock();
        if inner.last_id.is_none() {
            inner.last_id = Some(last);
        }
        let now = inner.last_id;
        drop(inner);
        self.ready.send_replace(now);
    }

    /// The last published id, waiting for the relay to start if needed.
    pub async fn watermark(&self) -> i64 {
        let mut rx = self.ready.subscribe();
        loop {
            if let Some(id) = self.lock().last_id {
                return id;
            }
            if rx.changed().await.is_err() {
                return 0;
            }
        }
    }

    /// The last published id as it moves (None until the relay has
    /// started): every id up to it is final. The webhook workers follow it.
    pub fn horizon(&self) -> watch::Receiver<Option<i64>> {
        self.ready.subscribe()
    }

    /// The last published id, if the relay has started.
    pub fn last_id(&self) -> Option<i64> {
        self.lock().last_id
    }

    /// Resolves when a connection registers (at once if one registered since
    /// the last call).
    pub async fn connection_registered(&self) {
        self.registered.notified().await
    }

    /// Whether no connection is registered and nobody follows the
    /// horizon: nobody to deliver to.
    pub fn is_idle(&self) -> bool {
        self.lock().subs.is_empty() && self.followers.load(Ordering::SeqCst) == 0
    }

    /// Follows the horizon from outside the hub (the webhook worker reads
    /// its events from the table): while the guard lives, the relay steps
    /// on NOTIFY hints and every poll tick, as for a connection, but reads
    /// no event for it (`wanted_users` names nobody).
    pub fn follow(self: &Arc<Self>) -> Follower {
        self.followers.fetch_add(1, Ordering::SeqCst);
        self.registered.notify_one();
        Follower { hub: self.clone() }
    }

    /// With no connection registered, moves the last published id up to
    /// `upto` without reading the events (nobody would receive them; a later
    /// subscriber that resumes replays them from the table) and returns true.
    /// Returns false, changing nothing, when a connection has registered: the
    /// relay must then read and publish the events. Decided under the lock
    /// that `register` and `set_interest` take, so a connection either is
    /// seen here or starts after `upto`.
    pub fn skip_while_idle(&self, upto: i64) -> bool {
        let mut inner = self.lock();
        if !inner.subs.is_empty() {
            return false;
        }
        if inner.last_id.is_some_and(|last| last < upto) {
            inner.last_id = Some(upto);
            drop(inner);
            self.ready.send_replace(Some(upto));
        }
        true
    }

    /// The users whose events some connection may want (`None`: any event
    /// may be wanted), and the interest version that answer holds for. The
    /// relay reads only those users' events when it can: a dashboard
    /// following a few customers does not make it render everyone's.
    pub fn wanted_users(&self) -> (u64, Option<Vec<String>>) {
        let inner = self.lock();
        let mut users: Vec<String> = Vec::new();
        for sub in inner.subs.values() {
            match &sub.interest {
                Interest::Nothing => {}
                Interest::Filter(f) if !f.users.is_empty() => users.extend_from_slice(&f.users),
                _ => return (inner.interest_version, None),
            }
        }
        users.sort_unstable();
        users.dedup();
        (inner.interest_version, Some(users))
    }

    /// Publishes what the relay read of `(last, upto]` and marks everything
    /// up to `upto` published. `read_for` is the interest version of the
    /// `wanted_users` the read was filtered by (None: not filtered). When an
    /// interest changed since, nothing is published and false is returned:
    /// the read may lack events the new interest wants, so the caller reads
    /// the range again unfiltered. (Checked under the lock that
    /// `set_interest` takes, so no change slips in between.)
    pub fn publish_read(&self, events: &[Arc<Event>], upto: i64, read_for: Option<u64>) -> bool {
        let guard = self.lock();
        if read_for.is_some_and(|v| v != guard.interest_version) {
            return false;
        }
        self.publish_locked(guard, events, Some(upto));
        true
    }

    /// Delivers events (in id order) to every interested connection without
    /// waiting; connections whose queue is full are dropped and kicked.
    pub fn publish(&self, events: &[Arc<Event>]) {
        self.publish_locked(self.lock(), events, None);
    }

    fn publish_locked(
        &self,
        mut guard: MutexGuard<'_, Inner>,
        events: &[Arc<Event>],
        upto: Option<i64>,
    ) {
        let inner = &mut *guard;
        let mut dead: Vec<u64> = Vec::new();
        for ev in events {
            if inner.last_id.is_some_and(|last| ev.stored.id <= last) {
                continue; // already published
            }
            let mut targets: Vec<u64> = Vec::new();
            for (id, sub) in &inner.subs {
                if let Interest::Filter(f) = &sub.interest {
                    if f.matches(&ev.stored) && visible_to(sub.bound_user.as_deref(), &ev.stored) {
                        targets.push(*id);
                    }
                }
            }
            if ev.stored.ty == "execution_event" {
                let chans = [
                    ev.stored.graph_id.as_deref().map(graph_channel),
                    ev.stored.graph_exec_id.as_deref().map(graph_exec_channel),
                ];
                for ch in chans.iter().flatten() {
                    if let Some(ids) = inner.channels.get(ch) {
                        for id in ids {
                            if !targets.contains(id) {
                                targets.push(*id);
                            }
                        }
                    }
                }
            }
            for id in targets {
                if dead.contains(&id) {
                    continue;
                }
                let Some(sub) = inner.subs.get(&id) else {
                    continue;
                };
                if let Interest::Channels(_) = sub.interest {
                    if !visible_to(sub.bound_user.as_deref(), &ev.stored) {
                        continue;
                    }
                }
                match sub.tx.try_send(ev.clone()) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        sub.kicked.set();
                        dead.push(id);
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => dead.push(id),
                }
            }
            inner.last_id = Some(ev.stored.id);
        }
        for id in dead {
            if let Some(sub) = inner.subs.remove(&id) {
                drop_channels(inner, id, &sub.interest);
            }
        }
        if let Some(upto) = upto {
            if inner.last_id.is_some_and(|last| last < upto) {
                inner.last_id = Some(upto);
            }
        }
        let last = inner.last_id;
        drop(guard);
        if last.is_some() {
            self.ready.send_replace(last);
        }
    }

    /// Asks every connection to close (server shutdown).
    pub fn shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// Resolves when the server shuts down.
    pub fn on_shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
