//! The request examples `/docs` shows for the main operations: each is a
//! request the server accepts as it stands (the walk in tests/spec_walk.rs
//! sends them).

use super::credits::SpendRequest;
use super::messages::InjectRequest;
use super::types::{Ident, JsonObject, Text};
use super::usage::UsageRecordIn;
use super::variants::CreateVariant;
use poem_openapi::types::Example;
use serde_json::json;

fn ident(s: &str) -> Ident {
    Ident(s.to_string())
}

fn text(s: &str) -> Text {
    Text(s.to_string())
}

impl Example for SpendRequest {
    fn example() -> Self {
        SpendRequest {
            block_id: ident("llm"),
            input: Some(JsonObject(json!({"credentials": {"id": "platform"}}))),
            duration_seconds: None,
            amount: None,
            validate_balance: Some(true),
            idempotency_key: Some(text("run-42-llm")),
            metadata: Some(JsonObject(json!({"graphExecId": "run-42"}))),
            at: None,
        }
    }
}

impl Example for UsageRecordIn {
    fn example() -> Self {
        UsageRecordIn {
            thread_id: ident("t1"),
            agent_id: Some(ident("greeter")),
            model: ident("gpt-4o"),
            provider: None,
            prompt_tokens: 1200,
            completion_tokens: 350,
            latency_ms: Some(800),
            user_id: Some(ident("alice")),
            variant_id: None,
            metadata: None,
            at: None,
            cached_prompt_tokens: Some(1000),
            cache_write_tokens: None,
            reasoning_tokens: None,
        }
    }
}

impl Example for InjectRequest {
    fn example() -> Self {
        InjectRequest {
            to: ident("greeter"),
            payload: JsonObject(json!({"text": "hello"})),
            thread_id: Some(ident("t1")),
            from: Some(ident("console")),
            payload_type: Some(ident("Greeting")),
        }
    }
}

impl Example for CreateVariant {
    fn example() -> Self {
        CreateVariant {
            name: text("Fast and cheap"),
            slug: Some(text("fast-and-cheap")),
            model_provider: Some(text("openai")),
            model_name: Some(text("gpt-4o-mini")),
            system_prompt: Some(text("Answer in one sentence.")),
            user_prompt_template: Some(text("Q: {question}")),
            prompt_version: Some(text("v2")),
            temperature: Some(0.2),
            max_tokens: Some(512),
            context_window: Some(128000),
            input_token_limit: Some(100000),
            token_budget: Some(50000),
            timeout_seconds: Some(30),
            max_retries: Some(2),
        }
    }
}
