//! WebSocket endpoints `/ws`, `/ws/messages` and `/ws/executions`: the
//! upgrade (auth, connection limit, message size limit) and the connection
//! loop they share (queue draining, idle timeout with pings, 1013 for a
//! client that does not keep up, 1001 on shutdown). The protocol-specific
//! commands live in ws_control.rs and ws_compat.rs.

use super::hub::{ConnSlot, Kicked};
use super::{Event, Subscription};
use crate::api::auth::authenticate;
use crate::api::{ApiError, AppState, Auth, Role};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::web::Data;
use poem::{handler, IntoResponse, Request, Response};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Control,
    Messages,
    Executions,
}

/// Why a connection loop ends early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// The socket is gone (closed, or a write failed).
    Gone,
    /// The hub dropped this connection: its queue overflowed.
    Kicked,
}

/// `GET /ws`: the control feed.
#[handler]
pub async fn ws_control(req: &Request, ws: WebSocket, state: Data<&AppState>) -> Response {
    upgrade(req, ws, &state, Proto::Control).await
}

/// `GET /ws/messages`: MessageInfo objects.
#[handler]
pub async fn ws_messages(req: &Request, ws: WebSocket, state: Data<&AppState>) -> Response {
    upgrade(req, ws, &state, Proto::Messages).await
}

/// `GET /ws/executions`: the graph-execution protocol.
#[handler]
pub async fn ws_executions(req: &Request, ws: WebSocket, state: Data<&AppState>) -> Response {
    upgrade(req, ws, &state, Proto::Executions).await
}

async fn upgrade(req: &Request, ws: WebSocket, state: &AppState, proto: Proto) -> Response {
    let auth = match authenticate(state, req).await {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = auth.require(Role::Reader) {
        return e.into_response();
    }
    let Some(slot) = state.hub.try_connect() else {
        return ApiError::new(
            503,
            "too_many_connections",
            "this server has reached its WebSocket connection limit; retry later",
            json!({"max": state.config.ws_max_connections}),
        )
        .into_response();
    };
    let max = state.config.ws_max_command_bytes;
    let config = WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max));
    let state = state.clone();
    ws.config(config)
        .on_upgrade(move |socket| async move { run(socket, state, auth, slot, proto).await })
        .into_response()
}

/// Events sent per write: a connection drains up to this many from its queue
/// before it writes them out, so one that fell behind still answers its
/// commands and pings between bursts.
const BURST: usize = 64;

/// One connection.
pub(crate) struct Conn {
    pub state: AppState,
    pub auth: Auth,
    pub sub: Subscription,
    pub sink: SplitSink<WebSocketStream, Message>,
    pub kicked: Arc<Kicked>,
    /// `/ws`: queued events with an id at or below this are skipped (they
    /// were replayed from the table, or precede the current subscription).
    pub floor: i64,
    /// `/ws/executions`: the channels this connection subscribed to.
    pub channels: HashSet<String>,
}

impl Conn {
    /// Sends one text frame; gives up when the hub kicks this connection.
    pub async fn send(&mut self, text: String) -> Result<(), Stop> {
        self.queue_frame(text).await?;
        self.flush().await
    }

    /// Queues one text frame in the socket's write buffer without writing
    /// it out; `flush` writes everything queued in one go. The frames of a
    /// burst of events go out in one system call instead of one each, which
    /// keeps the server's system time flat as subscribers grow.
    pub async fn queue_frame(&mut self, text: String) -> Result<(), Stop> {
        let kicked = self.kicked.clone();
        tokio::select! {
            r = self.sink.feed(Message::Text(text)) => r.map_err(|_| Stop::Gone),
            _ = kicked.wait() => Err(Stop::Kicked),
        }
    }

    /// Writes out every queued frame.
    pub async fn flush(&mut self) -> Result<(), Stop> {
        let kicked = self.kicked.clone();
        tokio::select! {
            r = self.sink.flush() => r.map_err(|_| Stop::Gone),
            _ = kicked.wait() => Err(Stop::Kicked),
        }
    }

    /// Sends one typed frame (src/feed/wire.rs).
    pub async fn reply<T: poem_openapi::types::ToJSON>(&mut self, v: &T) -> Result<(), Stop> {
        self.send(super::wire::text(v)).await
    }

    pub(super) async fn close(&mut self, code: CloseCode, reason: &str) {
        // A client kicked for not reading gets longer to take its close frame.
        let wait = if code == CloseCode::Again { 5 } else { 1 };
        let _ = tokio::time::timeout(
            Duration::from_secs(wait),
            self.sink
                .send(Message::Close(Some((code, reason.to_string())))),
        )
        .await;
    }

    /// Sends `first` and whatever else is already waiting in this
    /// connection's queue (at most BURST events), then writes them out
    /// together.
    async fn push_burst(&mut self, proto: Proto, first: Arc<Event>) -> Result<(), Stop> {
        self.push(proto, &first).await?;
        for _ in 1..BURST {
            match self.sub.rx.try_recv() {
                Ok(ev) => self.push(proto, &ev).await?,
                Err(_) => break,
            }
        }
        self.flush().await
    }

    /// Queues the frames one event becomes on this connection (written out
    /// by the caller's flush).
    async fn push(&mut self, proto: Proto, ev: &Event) -> Result<(), Stop> {
        match proto {
            Proto::Control => {
                if ev.stored.id > self.floor {
                    self.queue_frame(ev.control_json.clone()).await?;
                }
            }
            Proto::Messages => {
                if let Some(m) = &ev.message_json {
                    if ev.stored.id > self.floor {
                        self.queue_frame(m.clone()).await?;
                    }
                }
            }
            Proto::Executions => {
                let Some(data) = &ev.exec_data_json else {
                    return Ok(());
                };
                let chans = [
                    ev.stored.graph_id.as_deref().map(super::graph_channel),
                    ev.stored
                        .graph_exec_id
                        .as_deref()
                        .map(super::graph_exec_channel),
                ];
                for ch in chans.into_iter().flatten() {
                    if self.channels.contains(&ch) {
                        self.queue_frame(super::wire::execution_event_frame(&ch, data))
                            .await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn handle_text(&mut self, proto: Proto, text: &str) -> Result<(), Stop> {
        match proto {
            Proto::Control => self.control_command(text).await,
            Proto::Messages => self.messages_command(text).await,
            Proto::Executions => self.executions_command(text).await,
        }
    }
}

async fn run(socket: WebSocketStream, state: AppState, auth: Auth, slot: ConnSlot, proto: Proto) {
    let hub = state.hub.clone();
    let protocol = match proto {
        Proto::Control => "control",
        Proto::Messages => "messages",
        Proto::Executions => "executions",
    };
    let _open = crate::telemetry::GaugeGuard::new(metrics::gauge!(
        crate::telemetry::WS_CONNECTIONS,
        "protocol" => protocol
    ));
    let sub = hub.register(slot, auth.user_id.clone());
    let kicked = sub.kicked.clone();
    let (sink, mut stream) = socket.split();
    let idle = state.config.ws_idle_timeout;
    let mut conn = Conn {
        state,
        auth,
        sub,
        sink,
        kicked: kicked.clone(),
        floor: 0,
        channels: HashSet::new(),
    };
    let mut shutdown = hub.on_shutdown();
    if *shutdown.borrow() {
        conn.close(CloseCode::Away, "server is shutting down").await;
        return;
    }
    let mut outcome = Ok(());
    if proto == Proto::Control {
        outcome = conn.send_connected().await;
    }
    // The credential this socket was opened with is checked again whenever
    // one stops being valid (a revocation, or the end of open mode).
    let mut access = conn.state.access.subscribe();
    let mut last_heard = Instant::now();
    let mut ticker = tokio::time::interval((idle / 3).max(Duration::from_millis(100)));
    ticker.tick().await;
    while outcome.is_ok() {
        outcome = tokio::select! {
            _ = kicked.wait() => Err(Stop::Kicked),
            Ok(()) = access.changed() => {
                if conn.state.access.still_valid(conn.auth.open, conn.auth.key_id) {
                    Ok(())
                } else {
                    let why = if conn.auth.open {
                        "open mode has ended: reconnect with an API key"
                    } else {
                        "the API key was revoked"
                    };
                    conn.close(CloseCode::from(4001), why).await;
                    Err(Stop::Gone)
                }
            }
            _ = shutdown.changed() => {
                conn.close(CloseCode::Away, "server is shutting down").await;
                Err(Stop::Gone)
            }
            msg = stream.next() => match msg {
                None => Err(Stop::Gone),
                Some(Err(e)) => {
                    let too_big = e.to_string().to_lowercase().contains("space limit");
                    if too_big {
                        conn.close(CloseCode::Size, "message too large").await;
                    }
                    Err(Stop::Gone)
                }
                Some(Ok(m)) => {
                    last_heard = Instant::now();
                    match m {
                        Message::Text(t) => conn.handle_text(proto, &t).await,
                        Message::Binary(b) => match String::from_utf8(b) {
                            Ok(t) => conn.handle_text(proto, &t).await,
                            Err(_) => conn.handle_text(proto, "\u{0}not utf-8").await,
                        },
                        Message::Close(_) => Err(Stop::Gone),
                        _ => Ok(()), // ping (answered by the library) / pong
                    }
                }
            },
            ev = conn.sub.rx.recv() => match ev {
                Some(ev) => conn.push_burst(proto, ev).await,
                None => Err(if kicked.is_set() { Stop::Kicked } else { Stop::Gone }),
            },
            _ = ticker.tick() => {
                if last_heard.elapsed() > idle {
                    conn.close(CloseCode::Away, "idle timeout").await;
                    Err(Stop::Gone)
                } else {
                    conn.sink.send(Message::Ping(b"agentplane".to_vec())).await.map_err(|_| Stop::Gone)
                }
            }
        };
    }
    if let Err(Stop::Kicked) = outcome {
        conn.close(
            CloseCode::Again,
            "too slow: the event queue overflowed; reconnect and resume with since",
        )
        .await;
    }
}
