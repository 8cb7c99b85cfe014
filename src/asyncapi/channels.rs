//! The channels of the AsyncAPI document: where each protocol lives and
//! which types it sends and reads. The Server-Sent Events stream and the
//! webhook deliveries carry the same event object as `/ws` (FeedEvent).

use super::Messages;
use crate::api::messages::MessageInfo;
use crate::feed::commands::{ControlCommand, ExecCommand, MessagesCommand};
use crate::feed::wire::{ControlReply, ExecReply, FeedEvent, MessagesReply};
use serde_json::{json, Value};

pub(crate) struct Channel {
    pub id: &'static str,
    /// The path (`None`: an address the receiver chooses).
    pub address: Option<&'static str>,
    pub title: &'static str,
    pub description: &'static str,
    pub servers: &'static [&'static str],
    /// What the server sends.
    pub send: Vec<Messages>,
    /// What the server reads.
    pub receive: Vec<Messages>,
    /// Prefix of the channel's message names (the same type may travel on
    /// several channels).
    pub message_prefix: &'static str,
    /// Headers every message of the channel carries (JSON Schema).
    pub headers: Option<Value>,
}

pub(crate) fn servers() -> Value {
    json!({
        "websocket": {
            "host": "localhost:8080",
            "protocol": "ws",
            "description": "The agentplane server (AGENTPLANE_BIND). The API key goes in `?token=` or `Authorization: Bearer`; any role may subscribe.",
            "security": [
                {"$ref": "#/components/securitySchemes/bearer"},
                {"$ref": "#/components/securitySchemes/token"},
            ],
        },
        "http": {
            "host": "localhost:8080",
            "protocol": "http",
            "description": "The agentplane server's HTTP side (Server-Sent Events).",
            "security": [{"$ref": "#/components/securitySchemes/bearer"}],
        },
        "webhookReceiver": {
            "host": "receiver.example",
            "protocol": "https",
            "description": "A webhook receiver: the url registered with the webhook, which agentplane POSTs to.",
        },
    })
}

pub(crate) fn security_schemes() -> Value {
    json!({
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key."},
        "token": {"type": "httpApiKey", "in": "query", "name": "token", "description": "An API key in `?token=`."},
    })
}

/// Every channel of the document.
pub(crate) fn channels() -> Vec<Channel> {
    vec![
        Channel {
            id: "ws",
            address: Some("/ws"),
            title: "Control feed",
            description: "On connect the server sends `connected`; then every stored event that matches the subscription, in id order, and one answer per command. Errors answer `error` and keep the socket open. Close codes: 1001 shutdown or idle timeout, 1009 message too large, 1011 snapshot failed, 1013 too slow (resume with `since`), 4001 key revoked or open mode ended.",
            servers: &["websocket"],
            send: vec![Messages::of::<ControlReply>(), Messages::of::<FeedEvent>()],
            receive: vec![Messages::of::<ControlCommand>()],
            message_prefix: "ws.",
            headers: None,
        },
        Channel {
            id: "wsMessages",
            address: Some("/ws/messages"),
            title: "Message stream",
            description: "Each message of the agents' bus that matches the subscription, as a MessageInfo object, and one answer per command.",
            servers: &["websocket"],
            send: vec![Messages::of::<MessagesReply>(), Messages::of::<MessageInfo>()],
            receive: vec![Messages::of::<MessagesCommand>()],
            message_prefix: "wsMessages.",
            headers: None,
        },
        Channel {
            id: "wsExecutions",
            address: Some("/ws/executions"),
            title: "Graph-execution protocol",
            description: "Channels are `graph#<graph_id>` and `graph_exec#<graph_exec_id>`, at most 1,000 per connection. Each node execution change goes to the subscribers of its graph and of its graph execution, once per subscribed channel.",
            servers: &["websocket"],
            send: vec![Messages::of::<ExecReply>()],
            receive: vec![Messages::of::<ExecCommand>()],
            message_prefix: "wsExecutions.",
            headers: None,
        },
        Channel {
            id: "events",
            address: Some("/api/v1/events"),
            title: "Server-Sent Events",
            description: "`GET /api/v1/events` (text/event-stream): each event is sent as `id: <id>`, `event: <type>` and `data: <the event object>`, the same object `/ws` pushes.",
            servers: &["http"],
            send: vec![Messages::of::<FeedEvent>()],
            receive: vec![],
            message_prefix: "events.",
            headers: None,
        },
        Channel {
            id: "webhooks",
            address: None,
            title: "Webhook deliveries",
            description: "Each matching event is POSTed to the webhook's url with the event object as the JSON body, signed per Standard Webhooks 1.0.",
            servers: &["webhookReceiver"],
            send: vec![Messages::of::<FeedEvent>()],
            receive: vec![],
            message_prefix: "webhooks.",
            headers: Some(json!({
                "type": "object",
                "required": ["webhook-id", "webhook-timestamp", "webhook-signature"],
                "properties": {
                    "webhook-id": {"type": "string", "description": "The event id; the same on every retry."},
                    "webhook-timestamp": {"type": "string", "description": "Unix seconds when the attempt was signed."},
                    "webhook-signature": {"type": "string", "description": "Space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>`."},
                },
            })),
        },
    ]
}
