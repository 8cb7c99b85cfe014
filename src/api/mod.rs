//! The HTTP API: one module per resource, composed into one OpenAPI service.

pub mod access;
pub mod agent_config;
pub mod agents;
pub mod auth;
pub mod block_costs;
pub mod credits;
pub mod error;
pub mod events;
mod examples;
pub mod executions;
pub mod health;
pub mod json_schema;
pub mod keys;
pub mod limits;
pub mod messages;
pub mod model_prices;
pub mod nullable;
pub mod organism;
pub mod origin;
pub mod threads;
pub mod token;
pub mod types;
pub mod usage;
pub mod users;
pub mod variants;
pub mod webhooks;

use crate::config::Config;
use deadpool_postgres::Pool;
use poem::{EndpointExt, Route};
use poem_openapi::{OpenApiService, Tags};
use std::sync::Arc;
use std::time::Instant;

pub use auth::{Auth, Role};
pub use error::{ApiError, ApiResult};

/// Turns the jsonb a SQL function answered into the typed response object
/// (a mismatch is a decode error: 500).
pub(crate) fn decode<T: poem_openapi::types::ParseFromJSON>(
    v: serde_json::Value,
) -> Result<T, ApiError> {
    T::parse_from_json(Some(v))
        .map_err(|e| ApiError::from(crate::db::DbError::decode(e.into_message())))
}

/// Awaits a SQL call and decodes its jsonb into the JSON response body.
pub(crate) async fn reply<T: poem_openapi::types::ParseFromJSON>(
    call: impl std::future::Future<Output = Result<serde_json::Value, crate::db::DbError>>,
) -> ApiResult<poem_openapi::payload::Json<T>> {
    Ok(poem_openapi::payload::Json(decode(call.await?)?))
}

/// Serialises a typed request body into the jsonb a SQL function takes.
pub(crate) fn encode<T: poem_openapi::types::ToJSON>(v: &T) -> serde_json::Value {
    v.to_json().unwrap_or(serde_json::Value::Null)
}

/// Shared by every handler (reached through poem's request data).
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub config: Arc<Config>,
    pub started_at: Instant,
    /// The live feed's in-process fan-out (fed by the relay the server starts).
    pub hub: Arc<crate::feed::Hub>,
    /// SHA-256 of `AGENTPLANE_ADMIN_KEY`, hashed once rather than per request.
    pub admin_key_hash: Option<Arc<str>>,
    /// Concurrent spends of one user share a transaction (src/db/spend_queue.rs).
    pub spends: Arc<crate::db::spend_queue::SpendQueue>,
    /// Open mode and revocations, for connections that outlive a request.
    pub access: Arc<access::Access>,
}

impl AppState {
    /// The one place an `AppState` is built (server and tests alike), so
    /// fields added later get their value here.
    pub fn new(pool: Pool, config: Config) -> AppState {
        let hub = crate::feed::Hub::new(config.ws_queue, config.ws_max_connections);
        let admin_key_hash = config
            .admin_key
            .as_deref()
            .map(|k| auth::hash_key(k).into());
        let access = Arc::new(access::Access::new(&config));
        // before the first request or connection updates a metric
        crate::telemetry::recorder();
        AppState {
            spends: crate::db::spend_queue::SpendQueue::new(pool.clone()),
            pool,
            config: Arc::new(config),
            started_at: Instant::now(),
            hub,
            admin_key_hash,
            access,
        }
    }
}

#[derive(Tags)]
pub enum ApiTags {
    /// Liveness and database reachability.
    Health,
    /// API keys and roles.
    Keys,
    /// This deployment: status, counts, stop/start.
    Organism,
    /// Agent registry: registration, state, pause/resume.
    Agents,
    /// What each registered agent can do.
    Capabilities,
    /// Conversations between agents.
    Threads,
    /// The message bus: inject, messages, inbox claim/ack.
    Messages,
    /// Agent variants: alternative configs, activation, resolved config, performance.
    Variants,
    /// Credit users and their refill policy.
    Users,
    /// Balances, spend, top-up, history, holds.
    Credits,
    /// Per-block prices.
    BlockCosts,
    /// LLM usage records, totals and per-thread token budgets.
    Usage,
    /// Versioned per-model prices (USD per million tokens).
    ModelPrices,
    /// Node executions of graph runs (also pushed on the live feed).
    Executions,
    /// The live feed's events as pages and as a Server-Sent Events stream.
    Events,
    /// Endpoints that receive the feed's events as signed HTTP POSTs.
    Webhooks,
}

/// Every API of the service. Domains add their struct here.
pub type Apis = (
    health::HealthApi,
    keys::KeysApi,
    organism::OrganismApi,
    agents::AgentsApi,
    threads::ThreadsApi,
    messages::MessagesApi,
    variants::VariantsApi,
    users::UsersApi,
    credits::CreditsApi,
    block_costs::BlockCostsApi,
    usage::UsageApi,
    model_prices::ModelPricesApi,
    executions::ExecutionsApi,
    events::EventsApi,
    webhooks::WebhooksApi,
);

fn apis() -> Apis {
    (
        health::HealthApi,
        keys::KeysApi,
        organism::OrganismApi,
        agents::AgentsApi,
        threads::ThreadsApi,
        messages::MessagesApi,
        variants::VariantsApi,
        users::UsersApi,
        credits::CreditsApi,
        block_costs::BlockCostsApi,
        usage::UsageApi,
        model_prices::ModelPricesApi,
        executions::ExecutionsApi,
        events::EventsApi,
        webhooks::WebhooksApi,
    )
}

/// The OpenAPI service (no state needed: also used to print the spec).
pub fn service() -> OpenApiService<Apis, ()> {
    OpenApiService::new(apis(), "agentplane", env!("CARGO_PKG_VERSION"))
        .description("PostgreSQL control plane for AI-agent platforms: credits, LLM usage, agents, variants and a live feed.")
}

/// Request bodies whose types refuse unknown fields (`deny_unknown_fields`).
/// poem-openapi does not put that in the schema, so `spec_json` adds
/// `additionalProperties: false` to these; a unit test below reads the
/// sources and fails when a strict type is missing here (or a name here is
/// not strict), so the list cannot drift from the types.
const STRICT_SCHEMAS: &[&str] = &[
    "CloneVariant",
    "ConfigOverrides",
    "CreateVariant",
    "PerformanceInput",
    "VariantPatch",
];

/// The spec as pretty JSON (what `openapi/openapi.json` holds and
/// `/openapi.json` serves).
pub fn spec_json() -> String {
    let raw = service().spec();
    let mut s = match serde_json::from_str::<serde_json::Value>(&raw) {
        Ok(mut doc) => {
            for name in STRICT_SCHEMAS {
                if let Some(schema) = doc
                    .pointer_mut(&format!("/components/schemas/{name}"))
                    .and_then(serde_json::Value::as_object_mut)
                {
                    schema.insert("additionalProperties".into(), false.into());
                }
            }
            for_generators(&mut doc);
            serde_json::to_string_pretty(&doc).unwrap_or(raw)
        }
        Err(_) => raw,
    };
    if !s.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// Two spellings generators misread. poem-openapi documents JSON bodies as
/// `application/json; charset=utf-8`
/// (the header it sends). Generators match JSON by the media type's name:
/// openapi-fetch types no response body under that key, so the document says
/// `application/json` (the server accepts it as request type and the
/// charset parameter does not change what the body is).
fn for_generators(v: &mut serde_json::Value) {
    const POEM_JSON: &str = "application/json; charset=utf-8";
    match v {
        serde_json::Value::Object(obj) => {
            // A free-form object (payloads, metadata): without
            // `additionalProperties` openapi-typescript types it as an object
            // with no keys (`Record<string, never>`).
            if obj.get("type").and_then(serde_json::Value::as_str) == Some("object")
                && !obj.contains_key("properties")
                && !obj.contains_key("additionalProperties")
            {
                obj.insert("additionalProperties".into(), serde_json::json!({}));
            }
            if let Some(content) = obj
                .get_mut("content")
                .and_then(serde_json::Value::as_object_mut)
            {
                if let Some(media) = content.remove(POEM_JSON) {
                    content.insert("application/json".into(), media);
                }
            }
            obj.values_mut().for_each(for_generators);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(for_generators),
        _ => {}
    }
}

/// Swagger UI over exactly the document `/openapi.json` serves: poem's page
/// embeds poem's own rendering of the spec, which lacks what `spec_json`
/// adds, so that rendering is swapped for ours.
pub fn docs_html(svc: &OpenApiService<Apis, ()>, spec_text: &str) -> String {
    svc.swagger_ui_html().replacen(&svc.spec(), spec_text, 1)
}

/// A fixed JSON document.
fn json_endpoint(text: String) -> impl poem::Endpoint {
    poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(text.clone())
    })
}

/// The full HTTP app: API, spec, docs, uniform errors, body size limit.
pub fn app(state: AppState) -> impl poem::Endpoint {
    let svc = service();
    let spec_text = spec_json();
    let html = docs_html(&svc, &spec_text);
    let docs = poem::endpoint::make_sync(move |_| poem::web::Html(html.clone()));
    let spec = json_endpoint(spec_text);
    let asyncapi = json_endpoint(crate::asyncapi::asyncapi_json());
    let max_body = state.config.max_body_bytes;
    Route::new()
        .nest("/", svc)
        .at("/ws", poem::get(crate::feed::ws::ws_control))
        .at("/ws/messages", poem::get(crate::feed::ws::ws_messages))
        .at("/ws/executions", poem::get(crate::feed::ws::ws_executions))
        .at("/openapi.json", spec)
        .at("/asyncapi.json", asyncapi)
        .at("/metrics", poem::get(crate::telemetry::metrics_endpoint))
        .at("/console", poem::get(crate::console::index))
        .at("/console/:file", poem::get(crate::console::asset))
        .nest("/docs", Route::new().at("/", docs))
        .around(crate::telemetry::requests::tag_operation)
        .with(limits::BodyLimit(max_body))
        .around(origin::guard)
        .data(state)
        .catch_all_error(error::uniform_error)
        .around(crate::telemetry::requests::observe)
}

#[cfg(test)]
mod tests {
    use super::STRICT_SCHEMAS;

    /// Every struct under src/ whose `#[oai(...)]` says `deny_unknown_fields`.
    fn strict_structs(dir: &std::path::Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("src").flatten() {
            let path = entry.path();
            if path.is_dir() {
                strict_structs(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source");
                let mut strict = false;
                for line in text.lines().map(str::trim) {
                    if line.starts_with("#[oai(") && line.contains("deny_unknown_fields") {
                        strict = true;
                    } else if let Some(rest) = line.strip_prefix("pub struct ") {
                        if strict {
                            let name = rest.split([' ', '{', '<', '(']).next().unwrap_or(rest);
                            found.push(name.to_string());
                        }
                        strict = false;
                    }
                }
            }
        }
    }

    #[test]
    fn strict_schemas_are_exactly_the_strict_types() {
        let mut found = Vec::new();
        strict_structs(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut found,
        );
        found.sort();
        assert_eq!(found, STRICT_SCHEMAS);
    }
}
