//! `/api/v1/organism`: this deployment's status, config, stop/start.

use super::{decode, reply};
use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db;
use poem::web::Data;
use poem_openapi::{payload::Json, Enum, Object, OpenApi};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum OrganismStatus {
    Starting,
    Running,
    Stopping,
    Stopped,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Organism {
    pub name: String,
    pub status: OrganismStatus,
    /// Seconds since this server process started.
    pub uptime_seconds: i64,
    pub agent_count: i64,
    pub active_threads: i64,
    pub total_messages: i64,
    /// Whether an admin key is configured (the API is not open).
    pub identity_configured: bool,
}

impl Organism {
    /// The organism from the counts `agents.organism_status()` read: what
    /// `GET /organism` answers and what the feed's `connected` message carries.
    pub fn from_status(state: &AppState, status: serde_json::Value) -> Result<Organism, ApiError> {
        let row: OrganismRow = decode(status)?;
        Ok(Organism {
            name: state.config.organism.clone(),
            status: row.status,
            uptime_seconds: i64::try_from(state.started_at.elapsed().as_secs()).unwrap_or(i64::MAX),
            agent_count: row.agent_count,
            active_threads: row.active_threads,
            total_messages: row.total_messages,
            identity_configured: state.config.admin_key.is_some(),
        })
    }
}

/// The non-secret settings of this server.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct OrganismConfig {
    pub name: String,
    /// The port the server listens on.
    pub port: u16,
    /// `HOST:PORT` the server listens on.
    pub bind: String,
    pub max_body_bytes: i64,
    pub event_retention_seconds: i64,
    pub notify: bool,
    pub identity_configured: bool,
}

#[derive(Debug, Object)]
pub struct OrganismChange {
    pub success: bool,
    pub status: OrganismStatus,
}

/// The counts `agents.organism_status()` returns.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
struct OrganismRow {
    status: OrganismStatus,
    agent_count: i64,
    active_threads: i64,
    total_messages: i64,
}

pub struct OrganismApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Organism")]
impl OrganismApi {
    /// The organism's status and counts.
    #[oai(path = "/organism", method = "get", operation_id = "getOrganism")]
    async fn get(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<Organism>> {
        auth.require(Role::Reader)?;
        Ok(Json(Organism::from_status(
            &state,
            db::organism::status(&state.pool).await?,
        )?))
    }

    /// This server's non-secret configuration.
    #[oai(
        path = "/organism/config",
        method = "get",
        operation_id = "getOrganismConfig"
    )]
    async fn config(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<OrganismConfig>> {
        auth.require(Role::Reader)?;
        let c = &state.config;
        Ok(Json(OrganismConfig {
            name: c.organism.clone(),
            port: c.bind.port(),
            bind: c.bind.to_string(),
            max_body_bytes: i64::try_from(c.max_body_bytes).unwrap_or(i64::MAX),
            event_retention_seconds: i64::try_from(c.event_retention.as_secs()).unwrap_or(i64::MAX),
            notify: c.notify,
            identity_configured: c.admin_key.is_some(),
        }))
    }

    /// Stop the organism (admin): injects and messages are refused (409)
    /// and runtimes are told on the feed. It reports `stopped` once no agent
    /// is processing any more.
    #[oai(
        path = "/organism/stop",
        method = "post",
        operation_id = "stopOrganism"
    )]
    async fn stop(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<OrganismChange>> {
        auth.require(Role::Admin)?;
        reply(db::organism::stop(&state.pool)).await
    }

    /// Start the organism again (admin).
    #[oai(
        path = "/organism/start",
        method = "post",
        operation_id = "startOrganism"
    )]
    async fn start(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<OrganismChange>> {
        auth.require(Role::Admin)?;
        reply(db::organism::start(&state.pool)).await
    }
}
