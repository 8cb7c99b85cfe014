//! `/ws`: the control feed (snapshot on connect, subscribe with filters and
//! `since` replay, unsubscribe, ping, inject).

use super::wire::{
    ControlReply, WsConnected, WsError, WsInjected, WsPong, WsSubscribed, WsUnsubscribed,
};
use super::ws::{Conn, Stop};
use super::{visible_to, Event, Filter, Interest};
use crate::api::Role;
use crate::db;
use serde_json::Value;
use std::time::Duration;

/// Events per replay read.
const REPLAY_PAGE: i32 = 500;
/// Replay without a live registration until this close to the live edge.
const CATCH_UP_GAP: i64 = 256;
/// Entries allowed in one filter list.
const MAX_LIST: usize = 1000;

fn error(msg: impl Into<String>) -> ControlReply {
    ControlReply::Error(WsError::new(msg))
}

/// A list of strings at `key` (absent or null: empty).
pub(crate) fn string_list(v: &Value, key: &str) -> Result<Vec<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= MAX_LIST => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| format!("`{key}` must be a list of strings"))
            })
            .collect(),
        Some(Value::Array(_)) => Err(format!("`{key}` has more than {MAX_LIST} entries")),
        Some(_) => Err(format!("`{key}` must be a list of strings")),
    }
}

fn opt_str(v: &Value, key: &str) -> Result<Option<String>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{key}` must be a string")),
    }
}

impl Conn {
    pub(super) async fn send_connected(&mut self) -> Result<(), Stop> {
        use crate::api::{agents::AgentInfo, decode, threads::ThreadInfo};
        let snapshot = db::agents::feed_snapshot(&self.state.pool)
            .await
            .map_err(crate::api::ApiError::from)
            .and_then(|mut s| {
                let mut take = |key: &str| s.get_mut(key).map(Value::take).unwrap_or_default();
                let status = take("organism");
                let agents: Vec<AgentInfo> = decode(take("agents"))?;
                let mut threads: Vec<ThreadInfo> = decode(take("threads"))?;
                threads.truncate(100);
                let organism = crate::api::organism::Organism::from_status(&self.state, status)?;
                Ok((organism, agents, threads))
            });
        // Without the snapshot there is no organism to show: say why and
        // close, rather than send a `connected` of another shape.
        let (organism, agents, threads) = match snapshot {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(error = ?e, "feed snapshot failed; closing the socket");
                let _ = self
                    .reply(&error("the feed snapshot could not be read"))
                    .await;
                self.close(poem::web::websocket::CloseCode::Error, "snapshot failed")
                    .await;
                return Err(Stop::Gone);
            }
        };
        let last = tokio::time::timeout(Duration::from_secs(10), self.state.hub.watermark())
            .await
            .unwrap_or(0);
        self.reply(&ControlReply::Connected(WsConnected {
            organism,
            agents,
            threads,
            last_event_id: last,
        }))
        .await
    }

    pub(super) async fn control_command(&mut self, text: &str) -> Result<(), Stop> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return self.reply(&error("a command must be a JSON object")).await,
            Err(e) => return self.reply(&error(format!("malformed JSON: {e}"))).await,
        };
        let cmd = v.get("cmd").and_then(Value::as_str).unwrap_or_default();
        match cmd {
            "subscribe" => self.subscribe(&v).await,
            "unsubscribe" => {
                self.floor = self.state.hub.set_interest(&self.sub, Interest::Nothing);
                self.reply(&ControlReply::Unsubscribed(WsUnsubscribed {}))
                    .await
            }
            "ping" => self.reply(&ControlReply::Pong(WsPong {})).await,
            "inject" => self.inject(&v).await,
            "" => self.reply(&error("missing `cmd`")).await,
            other => {
                self.reply(&error(format!("unknown command `{other}`")))
                    .await
            }
        }
    }

    async fn subscribe(&mut self, v: &Value) -> Result<(), Stop> {
        let parsed = (|| -> Result<(Filter, Option<i64>), String> {
            let filter = Filter {
                agents: string_list(v, "agents")?,
                threads: string_list(v, "threads")?,
                payload_types: string_list(v, "payload_types")?,
                events: string_list(v, "events")?,
                graphs: string_list(v, "graphs")?,
                users: string_list(v, "users")?,
            };
            let since = match v.get("since") {
                None | Some(Value::Null) => None,
                Some(s) => Some(
                    s.as_i64()
                        .filter(|n| *n >= 0)
                        .ok_or("`since` must be an event id (an integer >= 0)")?,
                ),
            };
            Ok((filter, since))
        })();
        let (filter, since) = match parsed {
            Ok(p) => p,
            Err(e) => return self.reply(&error(e)).await,
        };
        // Stop live delivery of the previous subscription first.
        self.floor = self.state.hub.set_interest(&self.sub, Interest::Nothing);
        self.reply(&ControlReply::Subscribed(WsSubscribed {
            filters: filter.clone(),
            since,
        }))
        .await?;
        let Some(since) = since else {
            self.floor = self
                .state
                .hub
                .set_interest(&self.sub, Interest::Filter(filter));
            return Ok(());
        };
        // Replay from the table up to what the hub has published, then
        // register for live events and replay the few published meanwhile;
        // live events at or below the floor were replayed and are skipped.
        let mut cursor = since;
        loop {
            let w = self.state.hub.watermark().await;
            if w - cursor <= CATCH_UP_GAP {
                break;
            }
            cursor = self.replay(&filter, cursor, w).await?;
        }
        let w = self
            .state
            .hub
            .set_interest(&self.sub, Interest::Filter(filter.clone()));
        if w > cursor {
            self.replay(&filter, cursor, w).await?;
        }
        self.floor = w.max(since);
        Ok(())
    }

    /// Sends the stored events in (after, upto] that match; returns upto.
    async fn replay(&mut self, filter: &Filter, after: i64, upto: i64) -> Result<i64, Stop> {
        let mut cur = after;
        while cur < upto {
            let page = match db::feed::read_range(&self.state.pool, cur, upto, REPLAY_PAGE).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "feed replay failed");
                    self.reply(&error("replay failed: the database is unavailable"))
                        .await?;
                    return Err(Stop::Gone);
                }
            };
            if page.is_empty() {
                break;
            }
            for e in page {
                cur = e.id;
                if filter.matches(&e) && visible_to(self.auth.user_id.as_deref(), &e) {
                    let ev = Event::new(e);
                    self.queue_frame(ev.control_json.clone()).await?;
                }
            }
            self.flush().await?; // a page's frames in one write
        }
        Ok(upto)
    }

    async fn inject(&mut self, v: &Value) -> Result<(), Stop> {
        if let Err(e) = self.auth.require(Role::Service) {
            let msg = e.body().error.message.clone();
            return self.reply(&error(msg)).await;
        }
        let parsed = (|| -> Result<_, String> {
            let to = opt_str(v, "to")?.ok_or("`to` is required")?;
            let payload = match v.get("payload") {
                Some(p @ Value::Object(_)) => p.clone(),
                _ => return Err("`payload` must be a JSON object".into()),
            };
            let thread_id = match opt_str(v, "thread_id")? {
                Some(t) => Some(t),
                None => opt_str(v, "threadId")?,
            };
            let from = opt_str(v, "from")?;
            let payload_type = match opt_str(v, "payload_type")? {
                Some(t) => Some(t),
                None => opt_str(v, "payloadType")?,
            };
            Ok((to, payload, thread_id, from, payload_type))
        })();
        let (to, payload, thread_id, from, payload_type) = match parsed {
            Ok(p) => p,
            Err(e) => return self.reply(&error(e)).await,
        };
        let result = db::agents::inject(
            &self.state.pool,
            &to,
            &payload,
            thread_id.as_deref(),
            from.as_deref(),
            payload_type.as_deref(),
        )
        .await;
        let injected = result
            .map_err(crate::api::ApiError::from)
            .and_then(crate::api::decode::<crate::api::messages::Injected>);
        match injected {
            Ok(r) => {
                self.reply(&ControlReply::Injected(WsInjected {
                    thread_id: r.thread_id,
                    message_id: r.message_id,
                }))
                .await
            }
            Err(e) => {
                // A database fault was logged where it became an ApiError.
                let body = e.body();
                self.reply(&ControlReply::Error(WsError {
                    error: body.error.message.clone(),
                    code: Some(body.error.code.clone()),
                }))
                .await
            }
        }
    }
}
