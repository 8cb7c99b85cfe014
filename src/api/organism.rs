//! `/api/v1/organism`: this deployment's status.

use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db;
use poem::web::Data;
use poem_openapi::{payload::Json, Object, OpenApi};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Organism {
    pub name: String,
    /// `starting|running|stopping|stopped`
    pub status: String,
    pub uptime_seconds: i64,
    pub agent_count: i64,
    pub active_threads: i64,
    pub total_messages: i64,
    pub identity_configured: bool,
}

pub struct OrganismApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Organism")]
impl OrganismApi {
    /// The organism's status and counts.
    #[oai(path = "/organism", method = "get", operation_id = "getOrganism")]
    async fn get(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<Organism>> {
        auth.require(Role::Reader)?;
        let s = db::organism::status(&state.pool).await?;
        let int = |k: &str| s.get(k).and_then(|v| v.as_i64()).unwrap_or(0);
        let status = s
            .get("status")
            .and_then(|v| v.as_str())
            .ok_or_else(|| ApiError::from(db::DbError::decode("organism status missing")))?;
        Ok(Json(Organism {
            name: state.config.organism.clone(),
            status: status.to_string(),
            uptime_seconds: state.started_at.elapsed().as_secs() as i64,
            agent_count: int("agentCount"),
            active_threads: int("activeThreads"),
            total_messages: int("totalMessages"),
            identity_configured: state.config.admin_key.is_some(),
        }))
    }
}
