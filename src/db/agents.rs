//! Agents, threads, messages, inbox and organism: thin calls to the
//! `agents.*` SQL functions (sql/agents/). Each returns the function's
//! jsonb, already in the API's camelCase shape.

use super::{call_json, DbError};
use deadpool_postgres::Pool;
use serde_json::Value;
use uuid::Uuid;

/// `agents.register(name, body)`: register or update; returns AgentInfo.
pub async fn register(pool: &Pool, name: &str, body: &Value) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.register($1, $2)", &[&name, body]).await
}

/// `agents.remove(name)`: `{success, name}`; 404 when unknown.
pub async fn remove(pool: &Pool, name: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.remove($1)", &[&name]).await
}

/// AgentInfo of one agent; 404 when unknown.
pub async fn get(pool: &Pool, name: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.get($1)", &[&name]).await
}

/// `{agents:[AgentInfo], count}` sorted by name.
pub async fn list(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.list()", &[]).await
}

/// `{name, description, isAgent, peers, payloadClass, config}`.
pub async fn get_config(pool: &Pool, name: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.get_config($1)", &[&name]).await
}

/// A runtime's state report; returns AgentInfo.
pub async fn report_state(
    pool: &Pool,
    name: &str,
    state: &str,
    current_thread: Option<&str>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.report_state($1, $2, $3)",
        &[&name, &state, &current_thread],
    )
    .await
}

pub async fn pause(pool: &Pool, name: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.pause($1)", &[&name]).await
}

pub async fn resume(pool: &Pool, name: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.resume($1)", &[&name]).await
}

/// `{capabilities:[...], count}` sorted by name.
pub async fn capabilities(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.capabilities()", &[]).await
}

pub async fn capability(pool: &Pool, name: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.capability($1)", &[&name]).await
}

/// `agents.inject(...)` → `{"threadId", "messageId"}`. Defaults: `from` =
/// `"api"`, `payload_type` = `"inject"`; a new thread (server-made UUID when
/// `thread_id` is None) is created when needed. Errors: 400 `unknown_agent`,
/// 409 `organism_stopped`, 409 `thread_not_active`.
pub async fn inject(
    pool: &Pool,
    to: &str,
    payload: &Value,
    thread_id: Option<&str>,
    from: Option<&str>,
    payload_type: Option<&str>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.inject($1, $2, $3, $4, $5)",
        &[&to, payload, &thread_id, &from, &payload_type],
    )
    .await
}

/// `agents.post_message(...)`: agent-to-agent message; returns MessageInfo.
pub async fn post_message(
    pool: &Pool,
    thread_id: Option<&str>,
    from: &str,
    to: &str,
    payload_type: &str,
    payload: &Value,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.post_message($1, $2, $3, $4, $5)",
        &[&thread_id, &from, &to, &payload_type, payload],
    )
    .await
}

/// Claims up to `max` visible inbox messages: `{messages:[MessageInfo]}`.
pub async fn claim(
    pool: &Pool,
    agent: &str,
    max: i32,
    visibility_seconds: i32,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.claim($1, $2, $3)",
        &[&agent, &max, &visibility_seconds],
    )
    .await
}

/// Acknowledges a message: `{success, messageId, acked}`.
pub async fn ack(pool: &Pool, message_id: Uuid) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.ack($1)", &[&message_id]).await
}

pub async fn list_messages(
    pool: &Pool,
    agent: Option<&str>,
    thread_id: Option<&str>,
    limit: i32,
    offset: i32,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.list_messages($1, $2, $3, $4)",
        &[&agent, &thread_id, &limit, &offset],
    )
    .await
}

pub async fn list_threads(
    pool: &Pool,
    status: Option<&str>,
    agent: Option<&str>,
    limit: i32,
    offset: i32,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.list_threads($1, $2, $3, $4)",
        &[&status, &agent, &limit, &offset],
    )
    .await
}

pub async fn get_thread(pool: &Pool, id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.get_thread($1)", &[&id]).await
}

pub async fn thread_messages(
    pool: &Pool,
    id: &str,
    limit: i32,
    offset: i32,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.thread_messages($1, $2, $3)",
        &[&id, &limit, &offset],
    )
    .await
}

pub async fn complete_thread(
    pool: &Pool,
    id: &str,
    status: &str,
    error: Option<&str>,
) -> Result<Value, DbError> {
    call_json(
        pool,
        "SELECT agents.complete_thread($1, $2, $3)",
        &[&id, &status, &error],
    )
    .await
}

pub async fn kill_thread(pool: &Pool, id: &str) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.kill_thread($1)", &[&id]).await
}

/// `{organism:{status, agentCount, activeThreads, totalMessages}, agents:[AgentInfo],
/// threads:[ThreadInfo ≤100, newest activity first]}` for the WebSocket
/// `connected` message.
pub async fn feed_snapshot(pool: &Pool) -> Result<Value, DbError> {
    call_json(pool, "SELECT agents.feed_snapshot()", &[]).await
}
