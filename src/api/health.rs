//! `GET /health`.

use super::{ApiTags, AppState};
use crate::db;
use poem::web::Data;
use poem_openapi::{payload::Json, ApiResponse, Object, OpenApi};

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Health {
    /// `healthy` or `unhealthy`.
    pub status: String,
    pub organism: String,
    pub uptime_seconds: i64,
    /// `ok` or `unavailable`.
    pub database: String,
}

#[derive(ApiResponse)]
pub enum HealthResponse {
    /// The server and its database are up.
    #[oai(status = 200)]
    Healthy(Json<Health>),
    /// The database is unreachable.
    #[oai(status = 503)]
    Unhealthy(Json<Health>),
}

pub struct HealthApi;

#[OpenApi(tag = "ApiTags::Health")]
impl HealthApi {
    /// Liveness and database reachability (no key needed).
    #[oai(path = "/health", method = "get", operation_id = "getHealth")]
    async fn health(&self, state: Data<&AppState>) -> HealthResponse {
        let ok = db::organism::ping(&state.pool).await;
        let body = Health {
            status: if ok { "healthy" } else { "unhealthy" }.into(),
            organism: state.config.organism.clone(),
            uptime_seconds: state.started_at.elapsed().as_secs() as i64,
            database: if ok { "ok" } else { "unavailable" }.into(),
        };
        if ok {
            HealthResponse::Healthy(Json(body))
        } else {
            HealthResponse::Unhealthy(Json(body))
        }
    }
}
