//! The two compatibility protocols: `/ws/messages` (MessageInfo objects)
//! and `/ws/executions` (the graph-execution protocol, snake_case fields).

use super::wire::{
    ExecError, ExecHeartbeat, ExecReply, ExecSubscribed, ExecUnsubscribed, MessagesFilter,
    MessagesReply, MessagesSubscribed, WsError, WsPong, WsUnsubscribed,
};
use super::ws::{Conn, Stop};
use super::ws_control::string_list;
use super::{graph_channel, graph_exec_channel, Filter, Interest};
use serde_json::{json, Value};

/// Channels one connection may hold.
const MAX_CHANNELS: usize = 1000;

fn exec_error(msg: impl Into<String>) -> ExecReply {
    ExecReply::Error(ExecError::new(msg))
}

fn error(msg: impl Into<String>) -> MessagesReply {
    MessagesReply::Error(WsError::new(msg))
}

fn ident(v: &str) -> bool {
    use poem_openapi::validation::Validator;
    crate::api::types::IdentCheck.check(&v)
}

impl Conn {
    pub(super) async fn messages_command(&mut self, text: &str) -> Result<(), Stop> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return self.reply(&error("a command must be a JSON object")).await,
            Err(e) => return self.reply(&error(format!("malformed JSON: {e}"))).await,
        };
        match v.get("cmd").and_then(Value::as_str).unwrap_or_default() {
            "subscribe" => {
                let f = v.get("filter").cloned().unwrap_or(json!({}));
                if !f.is_object() {
                    return self.reply(&error("`filter` must be an object")).await;
                }
                let parsed = (|| -> Result<Filter, String> {
                    Ok(Filter {
                        agents: string_list(&f, "agents")?,
                        threads: string_list(&f, "threads")?,
                        payload_types: string_list(&f, "payload_types")?,
                        events: vec!["message".into()],
                        ..Filter::default()
                    })
                })();
                let filter = match parsed {
                    Ok(f) => f,
                    Err(e) => return self.reply(&error(e)).await,
                };
                let echo = MessagesFilter {
                    agents: filter.agents.clone(),
                    threads: filter.threads.clone(),
                    payload_types: filter.payload_types.clone(),
                };
                self.floor = self
                    .state
                    .hub
                    .set_interest(&self.sub, Interest::Filter(filter));
                self.reply(&MessagesReply::Subscribed(MessagesSubscribed {
                    filter: echo,
                }))
                .await
            }
            "unsubscribe" => {
                self.floor = self.state.hub.set_interest(&self.sub, Interest::Nothing);
                self.reply(&MessagesReply::Unsubscribed(WsUnsubscribed {}))
                    .await
            }
            "ping" => self.reply(&MessagesReply::Pong(WsPong {})).await,
            "" => self.reply(&error("missing `cmd`")).await,
            other => {
                self.reply(&error(format!("unknown command `{other}`")))
                    .await
            }
        }
    }

    pub(super) async fn executions_command(&mut self, text: &str) -> Result<(), Stop> {
        let v: Value = match serde_json::from_str(text) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return self
                    .reply(&exec_error("a message must be a JSON object"))
                    .await
            }
            Err(e) => {
                return self
                    .reply(&exec_error(format!("malformed JSON: {e}")))
                    .await
            }
        };
        let method = v.get("method").and_then(Value::as_str).unwrap_or_default();
        match method {
            "heartbeat" => {
                self.reply(&ExecReply::Heartbeat(ExecHeartbeat {
                    data: "pong".into(),
                    success: true,
                }))
                .await
            }
            "subscribe" | "unsubscribe" => {
                let data = v.get("data").cloned().unwrap_or(Value::Null);
                let channel = match (
                    data.get("graph_exec_id").and_then(Value::as_str),
                    data.get("graph_id").and_then(Value::as_str),
                ) {
                    (Some(e), _) if ident(e) => graph_exec_channel(e),
                    (None, Some(g)) if ident(g) => graph_channel(g),
                    _ => {
                        return self
                            .reply(&exec_error(format!(
                                "data must carry graph_id or graph_exec_id: {}",
                                crate::api::types::IDENT_RULE
                            )))
                            .await
                    }
                };
                if method == "subscribe" {
                    if self.channels.len() >= MAX_CHANNELS && !self.channels.contains(&channel) {
                        return self
                            .reply(&exec_error(format!(
                                "at most {MAX_CHANNELS} channels per connection"
                            )))
                            .await;
                    }
                    self.channels.insert(channel.clone());
                } else {
                    self.channels.remove(&channel);
                }
                let interest = if self.channels.is_empty() {
                    Interest::Nothing
                } else {
                    Interest::Channels(self.channels.clone())
                };
                self.state.hub.set_interest(&self.sub, interest);
                let ack = if method == "subscribe" {
                    ExecReply::Subscribed(ExecSubscribed {
                        success: true,
                        channel,
                    })
                } else {
                    ExecReply::Unsubscribed(ExecUnsubscribed {
                        success: true,
                        channel,
                    })
                };
                self.reply(&ack).await
            }
            "" => self.reply(&exec_error("missing `method`")).await,
            other => {
                self.reply(&exec_error(format!("unknown method `{other}`")))
                    .await
            }
        }
    }
}
