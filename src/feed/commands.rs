//! What clients send on the three WebSocket protocols, as types for the
//! AsyncAPI document. The handlers (ws_control.rs, ws_compat.rs) read
//! commands leniently by hand so that every mistake gets its own error
//! message on the socket; tests/it/asyncapi.rs sends commands built from
//! these shapes and checks that each is accepted.

use crate::api::types::JsonObject;
use poem_openapi::{Object, Union};

/// Replaces the subscription. Every non-empty list must match; an absent or
/// empty list matches everything; each list holds at most 1,000 entries.
/// With `since`, stored events after that id are replayed first.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct SubscribeCommand {
    pub agents: Option<Vec<String>>,
    pub threads: Option<Vec<String>>,
    pub payload_types: Option<Vec<String>>,
    /// Event types.
    pub events: Option<Vec<String>>,
    pub graphs: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    #[oai(validator(minimum(value = "0")))]
    pub since: Option<i64>,
}

/// Stops live delivery.
#[derive(Debug, Object)]
pub struct UnsubscribeCommand {}

/// Answered with `pong`.
#[derive(Debug, Object)]
pub struct PingCommand {}

/// Injects a message (service role), like `POST /api/v1/inject`.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct InjectCommand {
    pub to: String,
    pub payload: JsonObject,
    /// Also accepted as `threadId`.
    pub thread_id: Option<String>,
    pub from: Option<String>,
    /// Also accepted as `payloadType`.
    pub payload_type: Option<String>,
}

/// Every command of `/ws`.
#[derive(Debug, Union)]
#[oai(discriminator_name = "cmd")]
pub enum ControlCommand {
    #[oai(mapping = "subscribe")]
    Subscribe(SubscribeCommand),
    #[oai(mapping = "unsubscribe")]
    Unsubscribe(UnsubscribeCommand),
    #[oai(mapping = "ping")]
    Ping(PingCommand),
    #[oai(mapping = "inject")]
    Inject(InjectCommand),
}

/// The filter of a `/ws/messages` subscription (absent lists: everything).
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct MessagesFilterCommand {
    pub agents: Option<Vec<String>>,
    pub threads: Option<Vec<String>>,
    pub payload_types: Option<Vec<String>>,
}

/// Replaces the subscription.
#[derive(Debug, Object)]
#[oai(skip_serializing_if_is_none)]
pub struct MessagesSubscribeCommand {
    pub filter: Option<MessagesFilterCommand>,
}

/// Every command of `/ws/messages`.
#[derive(Debug, Union)]
#[oai(discriminator_name = "cmd")]
pub enum MessagesCommand {
    #[oai(mapping = "subscribe")]
    Subscribe(MessagesSubscribeCommand),
    #[oai(mapping = "unsubscribe")]
    Unsubscribe(UnsubscribeCommand),
    #[oai(mapping = "ping")]
    Ping(PingCommand),
}

/// The channel of a `subscribe`/`unsubscribe`: `graph_exec_id` wins when
/// both are given.
#[derive(Debug, Object)]
#[oai(rename_all = "snake_case", skip_serializing_if_is_none)]
pub struct ChannelRef {
    pub graph_id: Option<String>,
    pub graph_exec_id: Option<String>,
}

/// Subscribes to `graph#<graph_id>` or `graph_exec#<graph_exec_id>`.
#[derive(Debug, Object)]
pub struct ExecSubscribeCommand {
    pub data: ChannelRef,
}

/// Unsubscribes from a channel.
#[derive(Debug, Object)]
pub struct ExecUnsubscribeCommand {
    pub data: ChannelRef,
}

/// Answered with a heartbeat.
#[derive(Debug, Object)]
pub struct HeartbeatCommand {}

/// Every message a client sends on `/ws/executions`.
#[derive(Debug, Union)]
#[oai(discriminator_name = "method")]
pub enum ExecCommand {
    #[oai(mapping = "subscribe")]
    Subscribe(ExecSubscribeCommand),
    #[oai(mapping = "unsubscribe")]
    Unsubscribe(ExecUnsubscribeCommand),
    #[oai(mapping = "heartbeat")]
    Heartbeat(HeartbeatCommand),
}
