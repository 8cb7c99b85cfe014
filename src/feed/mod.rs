//! The live feed (docs/feed.md): a relay that reads the event table
//! ([`listener`]), an in-process fan-out ([`hub`]), retention pruning
//! ([`retention`]), the three WebSocket protocols ([`ws`]) and the event
//! stream ([`sse`]); [`page`] reads final events for pages and replays.
//!
//! The table is the truth. NOTIFY only wakes the relay early; the relay also
//! polls on a short tick and after every reconnect, and it reads only ids
//! that are final (see `feed.relay_poll` in sql/feed.sql), so every
//! instance delivers every event, once, in id order.

pub mod commands;
pub mod hub;
pub mod listener;
pub mod page;
pub mod retention;
pub mod sse;
pub mod wire;
pub mod ws;
mod ws_compat;
mod ws_control;

use crate::db::feed::StoredEvent;
use poem_openapi::types::ParseFromJSON;
use serde::Serialize;
use serde_json::{Map, Value};
use std::sync::Arc;

pub use hub::{Hub, Interest, Subscription};

/// Application name of the relay's dedicated connection (tests and
/// operators find it in `pg_stat_activity` by this name).
pub const LISTENER_APP_NAME: &str = "agentplane-feed-listener";

/// The NOTIFY channel feed.emit signals.
pub const CHANNEL: &str = "agentplane_events";

/// One event, with the JSON each protocol sends rendered once.
#[derive(Debug)]
pub struct Event {
    pub stored: StoredEvent,
    /// `/ws`: `{"event":TYPE,"id":N,"createdAt":T, ...body}`.
    pub control_json: String,
    /// `/ws/messages`: the MessageInfo of a `message` event.
    pub message_json: Option<String>,
    /// `/ws/executions`: the snake_case data of an `execution_event`.
    pub exec_data_json: Option<String>,
}

impl Event {
    pub fn new(stored: StoredEvent) -> Arc<Event> {
        let mut obj = Map::new();
        if let Value::Object(body) = &stored.body {
            for (k, v) in body {
                obj.insert(k.clone(), v.clone());
            }
        }
        obj.insert("event".into(), Value::String(stored.ty.clone()));
        obj.insert("id".into(), Value::from(stored.id));
        obj.insert("createdAt".into(), Value::String(stored.created_at.clone()));
        let merged = Value::Object(obj);
        // Every frame is rendered from its type (src/feed/wire.rs). A body
        // that does not fit its type is a bug in the SQL that wrote it: it is
        // logged and sent as stored rather than lost.
        let (control_json, message_json) = match wire::FeedEvent::of(&stored.ty, merged.clone()) {
            Ok(typed) => {
                let message_json = match &typed {
                    wire::FeedEvent::Message(m) => Some(wire::text(&m.message)),
                    _ => None,
                };
                (wire::text(&typed), message_json)
            }
            Err(e) => {
                tracing::error!(id = stored.id, ty = %stored.ty, error = %e, "event body does not fit its type");
                let message_json = (stored.ty == "message")
                    .then(|| stored.body.get("message").map(Value::to_string))
                    .flatten();
                (merged.to_string(), message_json)
            }
        };
        let exec_data_json = (stored.ty == "execution_event")
            .then(|| stored.body.get("data").cloned())
            .flatten()
            .map(|data| match wire::ExecutionEventData::parse_from_json(Some(data.clone())) {
                Ok(typed) => wire::text(&typed),
                Err(e) => {
                    tracing::error!(id = stored.id, error = %e.into_message(), "execution event data does not fit its type");
                    data.to_string()
                }
            });
        Arc::new(Event {
            stored,
            control_json,
            message_json,
            exec_data_json,
        })
    }
}

/// What a `/ws` (or `/ws/messages`) subscriber wants. Empty lists mean
/// everything; non-empty lists must all match.
#[derive(Debug, Clone, Default, PartialEq, Serialize, poem_openapi::Object)]
#[oai(rename_all = "snake_case")]
pub struct Filter {
    pub agents: Vec<String>,
    pub threads: Vec<String>,
    pub payload_types: Vec<String>,
    pub events: Vec<String>,
    pub graphs: Vec<String>,
    pub users: Vec<String>,
}

fn one_of(list: &[String], v: Option<&String>) -> bool {
    list.is_empty() || v.is_some_and(|v| list.contains(v))
}

impl Filter {
    pub fn matches(&self, e: &StoredEvent) -> bool {
        (self.agents.is_empty() || e.agents.iter().any(|a| self.agents.contains(a)))
            && one_of(&self.threads, e.thread_id.as_ref())
            && one_of(&self.payload_types, e.payload_type.as_ref())
            && one_of(&self.events, Some(&e.ty))
            && one_of(&self.graphs, e.graph_id.as_ref())
            && one_of(&self.users, e.user_id.as_ref())
    }
}

/// A key bound to one user sees no event that belongs to another user.
pub fn visible_to(bound_user: Option<&str>, e: &StoredEvent) -> bool {
    match (bound_user, e.user_id.as_deref()) {
        (Some(bound), Some(owner)) => bound == owner,
        _ => true,
    }
}

/// `/ws/executions` channel names.
pub fn graph_channel(graph_id: &str) -> String {
    format!("graph#{graph_id}")
}

pub fn graph_exec_channel(graph_exec_id: &str) -> String {
    format!("graph_exec#{graph_exec_id}")
}
