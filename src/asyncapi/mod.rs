//! The AsyncAPI 3.0 document of the live feed (`openapi/asyncapi.json`,
//! served at `/asyncapi.json`, written by `agentplane asyncapi --write`).
//!
//! Every schema in it is generated from the Rust types the server sends
//! (src/feed/wire.rs) and reads (src/feed/commands.rs), through the same
//! poem-openapi schema registry as the OpenAPI document, so the shared
//! objects (Organism, AgentInfo, ThreadInfo, MessageInfo) are the HTTP API's
//! own. The channels themselves are listed in channels.rs.

mod channels;

use crate::api::json_schema::from_openapi;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::Type;
use serde_json::{json, Map, Value};

/// One group of messages: the union type whose variants they are.
pub(crate) struct Messages {
    /// The registry name of the union (or single object) type.
    pub type_name: String,
    pub register: fn(&mut Registry),
}

impl Messages {
    pub fn of<T: Type>() -> Messages {
        Messages {
            type_name: T::name().into_owned(),
            register: T::register,
        }
    }
}

/// The document as a JSON value.
pub fn document() -> Value {
    let channels = channels::channels();
    let mut registry = Registry::new();
    for ch in &channels {
        for group in ch.send.iter().chain(&ch.receive) {
            (group.register)(&mut registry);
        }
    }
    let mut messages = Map::new();
    let mut channel_docs = Map::new();
    let mut operations = Map::new();
    for ch in &channels {
        let mut ch_messages = Map::new();
        for (action, groups) in [("send", &ch.send), ("receive", &ch.receive)] {
            let mut refs = Vec::new();
            for group in groups.iter() {
                for name in variants(&registry, &group.type_name) {
                    let title = summary(&registry, &name);
                    let mut message = json!({
                        "name": name,
                        "contentType": "application/json",
                        "payload": { "$ref": format!("#/components/schemas/{name}") },
                    });
                    if let Some(title) = title {
                        message["summary"] = title.into();
                    }
                    if let Some(headers) = &ch.headers {
                        message["headers"] = headers.clone();
                    }
                    let key = format!("{}{}", ch.message_prefix, name);
                    messages.insert(key.clone(), message);
                    ch_messages.insert(
                        key.clone(),
                        json!({ "$ref": format!("#/components/messages/{key}") }),
                    );
                    refs.push(json!({ "$ref": format!("#/channels/{}/messages/{key}", ch.id) }));
                }
            }
            if !refs.is_empty() {
                operations.insert(
                    format!("{}.{action}", ch.id),
                    json!({
                        "action": action,
                        "channel": { "$ref": format!("#/channels/{}", ch.id) },
                        "messages": refs,
                    }),
                );
            }
        }
        let doc = json!({
            "address": ch.address,
            "title": ch.title,
            "description": ch.description,
            "messages": ch_messages,
            "servers": ch.servers.iter().map(|s| json!({"$ref": format!("#/servers/{s}")})).collect::<Vec<_>>(),
        });
        channel_docs.insert(ch.id.to_string(), doc);
    }
    let schemas: Map<String, Value> = registry
        .schemas
        .iter()
        .map(|(name, schema)| {
            let v = serde_json::to_value(schema).unwrap_or(Value::Null);
            (name.clone(), asyncapi_schema(&from_openapi(&v)))
        })
        .collect();
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "agentplane live feed",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every change agentplane makes is an event with a strictly increasing id. \
                The WebSocket protocols push events and answer commands (one JSON object per \
                frame); the same event objects are sent as Server-Sent Events and as webhook \
                deliveries. The HTTP API is described by /openapi.json.",
        },
        "servers": channels::servers(),
        "channels": channel_docs,
        "operations": operations,
        "components": {
            "schemas": schemas,
            "messages": messages,
            "securitySchemes": channels::security_schemes(),
        },
    })
}

/// The schema names of the messages of a type: a union's variants, or the
/// type itself.
fn variants(registry: &Registry, type_name: &str) -> Vec<String> {
    let Some(schema) = registry.schemas.get(type_name) else {
        return Vec::new();
    };
    // A union with a discriminator lists its variants under anyOf.
    let list = if schema.one_of.is_empty() {
        &schema.any_of
    } else {
        &schema.one_of
    };
    if list.is_empty() {
        return vec![type_name.to_string()];
    }
    list.iter()
        .filter_map(|r| match r {
            MetaSchemaRef::Reference(name) => Some(name.clone()),
            MetaSchemaRef::Inline(_) => None,
        })
        .collect()
}

/// The first sentence of what the type of message `name` documents (for a
/// discriminated union's variant: of the object inside it).
fn summary(registry: &Registry, name: &str) -> Option<String> {
    let schema = registry.schemas.get(name)?;
    let inner = schema.all_of.iter().find_map(|r| match r {
        MetaSchemaRef::Reference(n) => registry.schemas.get(n),
        MetaSchemaRef::Inline(_) => None,
    });
    let text = inner.unwrap_or(schema).description?;
    let first = text
        .split(". ")
        .next()
        .unwrap_or(text)
        .trim_end_matches('.');
    Some(format!("{}.", first.replace('\n', " ")))
}

/// OpenAPI leftovers that AsyncAPI's schema dialect spells differently:
/// `discriminator` is the property name, and examples are a list.
fn asyncapi_schema(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(asyncapi_schema).collect()),
        Value::Object(obj) => {
            let mut out = Map::new();
            for (k, v) in obj {
                match (k.as_str(), v) {
                    ("discriminator", Value::Object(d)) => {
                        if let Some(p) = d.get("propertyName") {
                            out.insert(k.clone(), p.clone());
                        }
                    }
                    ("properties", Value::Object(props)) => {
                        // Property names, not keywords.
                        let props = props
                            .iter()
                            .map(|(name, s)| (name.clone(), asyncapi_schema(s)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    ("example", ex) => {
                        out.insert("examples".into(), json!([ex]));
                    }
                    _ => {
                        out.insert(k.clone(), asyncapi_schema(v));
                    }
                }
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// The document as pretty JSON with a final newline.
pub fn asyncapi_json() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}
