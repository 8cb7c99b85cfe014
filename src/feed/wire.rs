//! What the three WebSocket protocols send, as types. The server builds every
//! frame from these, and the AsyncAPI document (src/asyncapi.rs) is generated
//! from the same types, so the document cannot describe another shape than
//! the one on the wire. The shared objects (Organism, AgentInfo, ThreadInfo,
//! MessageInfo) are the HTTP API's own types.

use super::Filter;
use crate::api::agents::{AgentInfo, AgentState};
use crate::api::executions::NodeStatus;
use crate::api::messages::MessageInfo;
use crate::api::nullable::Nullable;
use crate::api::organism::Organism;
use crate::api::threads::{ThreadInfo, ThreadStatus};
use crate::api::types::JsonObject;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object, Union};
use serde_json::Value;

// ------------------------------------------------------------------ `/ws`

/// The snapshot `/ws` sends first: the organism (exactly what
/// `GET /api/v1/organism` answers), every agent, the 100 threads with the
/// newest activity, and the last event id this server has pushed (subscribe
/// with `since` set to it to resume there).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct WsConnected {
    pub organism: Organism,
    pub agents: Vec<AgentInfo>,
    pub threads: Vec<ThreadInfo>,
    pub last_event_id: i64,
}

/// The answer to `subscribe` on `/ws`: the filters now in force, and
/// `since` when the command gave one.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WsSubscribed {
    pub filters: Filter,
    pub since: Option<i64>,
}

/// The answer to `unsubscribe`.
#[derive(Debug, Object)]
pub struct WsUnsubscribed {}

/// The answer to `ping`.
#[derive(Debug, Object)]
pub struct WsPong {}

/// The answer to `inject`: the thread and the message it created.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct WsInjected {
    pub thread_id: String,
    pub message_id: uuid::Uuid,
}

/// A command that could not be carried out; the socket stays open. `code`
/// is the HTTP API's error code when the command reached the database.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct WsError {
    pub error: String,
    pub code: Option<String>,
}

impl WsError {
    pub fn new(msg: impl Into<String>) -> WsError {
        WsError {
            error: msg.into(),
            code: None,
        }
    }
}

/// Every answer of `/ws` to a command, and its first message.
#[derive(Debug, Union)]
#[oai(discriminator_name = "event")]
pub enum ControlReply {
    #[oai(mapping = "connected")]
    Connected(WsConnected),
    #[oai(mapping = "subscribed")]
    Subscribed(WsSubscribed),
    #[oai(mapping = "unsubscribed")]
    Unsubscribed(WsUnsubscribed),
    #[oai(mapping = "pong")]
    Pong(WsPong),
    #[oai(mapping = "injected")]
    Injected(WsInjected),
    #[oai(mapping = "error")]
    Error(WsError),
}

#[derive(Debug, Clone, Copy, Enum)]
pub enum MessageEventName {
    #[oai(rename = "message")]
    Message,
}

#[derive(Debug, Clone, Copy, Enum)]
pub enum AgentStateEventName {
    #[oai(rename = "agent_state")]
    AgentState,
}

#[derive(Debug, Clone, Copy, Enum)]
pub enum ThreadUpdatedEventName {
    #[oai(rename = "thread_updated")]
    ThreadUpdated,
}

/// A `message` event: a message went through the bus.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct MessageEvent {
    pub event: MessageEventName,
    pub id: i64,
    pub created_at: String,
    pub message: MessageInfo,
}

/// An `agent_state` event: an agent's state or current thread changed.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AgentStateEvent {
    pub event: AgentStateEventName,
    pub id: i64,
    pub created_at: String,
    pub agent: String,
    pub state: AgentState,
    pub current_thread: Nullable<String>,
}

/// A `thread_updated` event: a thread's status or message count changed.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ThreadUpdatedEvent {
    pub event: ThreadUpdatedEventName,
    pub id: i64,
    pub created_at: String,
    pub thread_id: String,
    pub status: ThreadStatus,
    pub message_count: i64,
}

/// Every other event type (`credits.changed`, `credits.low_balance`,
/// `credits.user_updated`, `credits.block_costs_updated`, `usage`,
/// `budget.threshold`, `budget.updated`, `model_price.changed`,
/// `usage.reset`, `organism`, `agent_removed`, `inbox.claimed`,
/// `inbox.acked`, `variant.*`, `execution_event`): its `data`, plus
/// whichever subject keys apply.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct DataEvent {
    /// The event type.
    pub event: String,
    pub id: i64,
    pub created_at: String,
    pub data: JsonObject,
    pub user_id: Option<String>,
    pub agent: Option<String>,
    pub thread_id: Option<String>,
    pub graph_id: Option<String>,
    pub graph_exec_id: Option<String>,
}

/// One stored event as `/ws` pushes it (and as every other channel of the
/// feed carries it): `event` (its type), `id` (strictly increasing),
/// `createdAt`, and the type's own fields.
#[derive(Debug, Union)]
#[oai(one_of)]
pub enum FeedEvent {
    Message(MessageEvent),
    AgentState(AgentStateEvent),
    ThreadUpdated(ThreadUpdatedEvent),
    Data(DataEvent),
}

// --------------------------------------------------------- `/ws/messages`

/// The filter of a `/ws/messages` subscription.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct MessagesFilter {
    pub agents: Vec<String>,
    pub threads: Vec<String>,
    pub payload_types: Vec<String>,
}

/// The answer to `subscribe` on `/ws/messages`.
#[derive(Debug, Object)]
pub struct MessagesSubscribed {
    pub filter: MessagesFilter,
}

/// Every answer of `/ws/messages` to a command (its pushes are MessageInfo
/// objects).
#[derive(Debug, Union)]
#[oai(discriminator_name = "event")]
pub enum MessagesReply {
    #[oai(mapping = "subscribed")]
    Subscribed(MessagesSubscribed),
    #[oai(mapping = "unsubscribed")]
    Unsubscribed(WsUnsubscribed),
    #[oai(mapping = "pong")]
    Pong(WsPong),
    #[oai(mapping = "error")]
    Error(WsError),
}

// ------------------------------------------------------- `/ws/executions`

/// A node execution as the graph-execution protocol carries it (snake_case).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case")]
pub struct ExecutionEventData {
    pub graph_id: String,
    pub graph_version: i32,
    pub graph_exec_id: String,
    pub node_exec_id: String,
    pub node_id: String,
    pub block_id: String,
    pub status: NodeStatus,
    pub input_data: Value,
    pub output_data: Value,
    pub add_time: DateTime<Utc>,
    pub queue_time: Nullable<DateTime<Utc>>,
    pub start_time: Nullable<DateTime<Utc>>,
    pub end_time: Nullable<DateTime<Utc>>,
}

/// A node execution changed; sent once per subscribed channel it belongs to.
#[derive(Debug, Object)]
pub struct ExecutionEvent {
    /// `graph#<graph_id>` or `graph_exec#<graph_exec_id>`.
    pub channel: String,
    pub data: ExecutionEventData,
}

/// The answer to `heartbeat`.
#[derive(Debug, Object)]
pub struct ExecHeartbeat {
    /// Always `pong`.
    pub data: String,
    pub success: bool,
}

/// The answer to `subscribe`: the channel now subscribed.
#[derive(Debug, Object)]
pub struct ExecSubscribed {
    pub success: bool,
    pub channel: String,
}

/// The answer to `unsubscribe`: the channel no longer subscribed.
#[derive(Debug, Object)]
pub struct ExecUnsubscribed {
    pub success: bool,
    pub channel: String,
}

/// A message that could not be carried out; the socket stays open.
#[derive(Debug, Object)]
pub struct ExecError {
    /// Always false.
    pub success: bool,
    pub error: String,
}

impl ExecError {
    pub fn new(msg: impl Into<String>) -> ExecError {
        ExecError {
            success: false,
            error: msg.into(),
        }
    }
}

/// Everything `/ws/executions` sends.
// Built once per reply and serialised at once: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Union)]
#[oai(discriminator_name = "method")]
pub enum ExecReply {
    #[oai(mapping = "execution_event")]
    ExecutionEvent(ExecutionEvent),
    #[oai(mapping = "heartbeat")]
    Heartbeat(ExecHeartbeat),
    #[oai(mapping = "subscribe")]
    Subscribed(ExecSubscribed),
    #[oai(mapping = "unsubscribe")]
    Unsubscribed(ExecUnsubscribed),
    #[oai(mapping = "error")]
    Error(ExecError),
}

/// The JSON text of a frame.
pub fn text<T: poem_openapi::types::ToJSON>(v: &T) -> String {
    v.to_json().unwrap_or(Value::Null).to_string()
}

impl FeedEvent {
    /// The typed event of type `ty` from its merged JSON
    /// (`{"event", "id", "createdAt", ...body}`).
    pub fn of(ty: &str, merged: Value) -> Result<FeedEvent, String> {
        use poem_openapi::types::ParseFromJSON;
        fn parse<T: ParseFromJSON>(v: Value) -> Result<T, String> {
            T::parse_from_json(Some(v)).map_err(|e| e.into_message())
        }
        Ok(match ty {
            "message" => FeedEvent::Message(parse(merged)?),
            "agent_state" => FeedEvent::AgentState(parse(merged)?),
            "thread_updated" => FeedEvent::ThreadUpdated(parse(merged)?),
            _ => {
                // JsonObject takes any value (it is lenient as a request
                // type); an event's data is always an object.
                if !merged.get("data").is_some_and(Value::is_object) {
                    return Err(format!("`data` of a {ty} event is not an object"));
                }
                FeedEvent::Data(parse(merged)?)
            }
        })
    }
}

/// The `execution_event` frame (ExecReply::ExecutionEvent) of one channel,
/// around `data` rendered once per event (ExecutionEventData's text): an
/// event goes to many channels and subscribers, so the data is not
/// serialised again for each. A unit test below holds this to the type.
pub fn execution_event_frame(channel: &str, data: &str) -> String {
    let channel = Value::String(channel.to_string());
    format!(r#"{{"method":"execution_event","channel":{channel},"data":{data}}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;
    use poem_openapi::types::{ParseFromJSON, ToJSON};
    use serde_json::json;

    #[test]
    fn execution_event_frame_is_the_typed_frame() {
        let data = json!({
            "graph_id": "g\"1", "graph_version": 2, "graph_exec_id": "e1",
            "node_exec_id": "n1", "node_id": "node", "block_id": "b",
            "status": "RUNNING", "input_data": {"a": [1]}, "output_data": null,
            "add_time": "2026-01-02T03:04:05.678901Z", "queue_time": null,
            "start_time": "2026-01-02T03:04:06Z", "end_time": null,
        });
        let typed = ExecutionEventData::parse_from_json(Some(data)).expect("fits");
        let frame = execution_event_frame("graph#g\"1", &text(&typed));
        let expected = ExecReply::ExecutionEvent(ExecutionEvent {
            channel: "graph#g\"1".into(),
            data: typed,
        })
        .to_json();
        let got: Value = serde_json::from_str(&frame).expect("frame is JSON");
        assert_eq!(Some(got), expected);
    }

    #[test]
    fn a_data_event_without_an_object_data_is_refused() {
        let merged = json!({"event": "usage", "id": 1, "createdAt": "t", "data": 5});
        assert!(FeedEvent::of("usage", merged).is_err());
        let merged = json!({"event": "usage", "id": 1, "createdAt": "t", "data": {}});
        assert!(FeedEvent::of("usage", merged).is_ok());
    }
}
