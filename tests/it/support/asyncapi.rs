//! Every frame the WebSocket tests receive is checked against the committed
//! `openapi/asyncapi.json`: it must match one of the messages the document
//! says the server sends on that channel (`/ws`, `/ws/messages`,
//! `/ws/executions`). Like support/spec.rs does for HTTP, so a frame of a
//! shape the document does not describe fails the test that received it.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};

/// One message the server sends: its name and a validator for its payload.
struct Message {
    name: String,
    validator: Arc<jsonschema::Validator>,
}

/// Per channel address: what the server sends there (`send`) and reads
/// (`receive`).
#[derive(Default)]
struct ChannelMessages {
    send: Vec<Message>,
    receive: Vec<Message>,
}

fn document() -> &'static Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/openapi/asyncapi.json"
        ))
        .expect("openapi/asyncapi.json");
        serde_json::from_str(&text).expect("asyncapi.json is JSON")
    })
}

/// Follows a local `$ref` (`#/a/b`).
fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => doc
            .pointer(r.trim_start_matches('#'))
            .unwrap_or_else(|| panic!("dangling $ref {r}")),
        None => v,
    }
}

fn channels() -> &'static HashMap<String, ChannelMessages> {
    static CHANNELS: OnceLock<HashMap<String, ChannelMessages>> = OnceLock::new();
    CHANNELS.get_or_init(|| {
        let doc = document();
        let components = &doc["components"];
        let mut out: HashMap<String, ChannelMessages> = HashMap::new();
        for op in doc["operations"].as_object().expect("operations").values() {
            let channel = resolve(doc, &op["channel"]);
            let Some(address) = channel["address"].as_str() else {
                continue;
            };
            let entry = out.entry(address.to_string()).or_default();
            for m in op["messages"].as_array().expect("messages") {
                let message = resolve(doc, resolve(doc, m));
                let root = json!({ "allOf": [message["payload"]], "components": components });
                let validator = jsonschema::draft7::options()
                    .should_validate_formats(true)
                    .build(&root)
                    .unwrap_or_else(|e| panic!("schema does not compile: {e}\n{message}"));
                let msg = Message {
                    name: message["name"].as_str().expect("name").to_string(),
                    validator: Arc::new(validator),
                };
                match op["action"].as_str() {
                    Some("send") => entry.send.push(msg),
                    _ => entry.receive.push(msg),
                }
            }
        }
        out
    })
}

/// The names of the messages the server sends on `address`.
pub fn sent_messages(address: &str) -> Vec<String> {
    channels()
        .get(address)
        .map(|c| c.send.iter().map(|m| m.name.clone()).collect())
        .unwrap_or_default()
}

fn matching(list: &[Message], frame: &Value) -> Vec<String> {
    list.iter()
        .filter(|m| m.validator.is_valid(frame))
        .map(|m| m.name.clone())
        .collect()
}

/// Panics unless `frame` is exactly one of the messages the server sends on
/// `address`; returns that message's name.
pub fn check_sent(address: &str, frame: &Value) -> String {
    let ch = channels()
        .get(address)
        .unwrap_or_else(|| panic!("{address} is not a channel of asyncapi.json"));
    let found = matching(&ch.send, frame);
    assert!(
        found.len() == 1,
        "{address}: the frame matches {found:?} of the messages asyncapi.json lists \
         (exactly one expected): {frame}"
    );
    found[0].clone()
}

/// Panics unless `command` is one of the messages the server reads on
/// `address`; returns its name.
pub fn check_received(address: &str, command: &Value) -> String {
    let ch = channels()
        .get(address)
        .unwrap_or_else(|| panic!("{address} is not a channel of asyncapi.json"));
    let found = matching(&ch.receive, command);
    assert!(
        found.len() == 1,
        "{address}: the command matches {found:?} of asyncapi.json: {command}"
    );
    found[0].clone()
}

/// The channel address of each open test socket, by its local address.
fn sockets() -> &'static Mutex<HashMap<SocketAddr, String>> {
    static SOCKETS: OnceLock<Mutex<HashMap<SocketAddr, String>>> = OnceLock::new();
    SOCKETS.get_or_init(Default::default)
}

pub fn remember(local: SocketAddr, url: &str) {
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path).to_string();
    sockets().lock().expect("lock").insert(local, path);
}

/// The channel a socket was opened on (None: not opened by support::ws).
pub fn channel_of(local: SocketAddr) -> Option<String> {
    sockets().lock().expect("lock").get(&local).cloned()
}
