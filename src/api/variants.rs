//! `/api/v1/agents/{name}/variants...`, `/resolved-config`, `/performance`:
//! agent variants (CONTRACT §5). The rules live in sql/variants.sql; this
//! module checks shapes and roles and maps the JSON built by SQL to types.

use super::types::Text;
use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::{MaybeUndefined, ParseFromJSON, ToJSON},
    ApiResponse, Enum, Object, OpenApi,
};
use serde_json::Value;
use uuid::Uuid;

/// A variant: an alternative AgentConfig of one agent. A config field that
/// is null falls back to the agent's value when the config is resolved.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct Variant {
    pub id: Uuid,
    pub agent_name: String,
    pub name: String,
    pub slug: String,
    pub is_active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub model_provider: Option<String>,
    pub model_name: Option<String>,
    pub system_prompt: Option<String>,
    pub user_prompt_template: Option<String>,
    pub prompt_version: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub context_window: Option<i64>,
    pub input_token_limit: Option<i64>,
    pub token_budget: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub max_retries: Option<i64>,
}

#[derive(Debug, Object)]
pub struct VariantList {
    pub variants: Vec<Variant>,
    pub count: i64,
}

/// A new variant. Config fields not given (or null) are copied from the agent.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateVariant {
    /// Free text, 1-200 characters.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    /// Defaults to the slugified name. Must already be a slug: lowercase
    /// ASCII letters and digits in runs joined by single `-`.
    #[oai(validator(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 128))]
    pub slug: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub model_provider: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub model_name: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub system_prompt: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub user_prompt_template: Option<Text>,
    #[oai(validator(max_length = 100000))]
    pub prompt_version: Option<Text>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub temperature: Option<f64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub max_tokens: Option<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub context_window: Option<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub input_token_limit: Option<i64>,
    #[oai(validator(minimum(value = "0")))]
    pub token_budget: Option<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub timeout_seconds: Option<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub max_retries: Option<i64>,
}

/// A partial update: only the fields given change; an explicit null clears a
/// config field (it then falls back to the agent's value). Also the shape of
/// clone `overrides` (where `name` is not accepted).
#[derive(Debug, Default, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantPatch {
    /// Not nullable; 1-200 characters. Not accepted in clone overrides.
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: MaybeUndefined<Text>,
    #[oai(validator(max_length = 100000))]
    pub model_provider: MaybeUndefined<Text>,
    #[oai(validator(max_length = 100000))]
    pub model_name: MaybeUndefined<Text>,
    #[oai(validator(max_length = 100000))]
    pub system_prompt: MaybeUndefined<Text>,
    #[oai(validator(max_length = 100000))]
    pub user_prompt_template: MaybeUndefined<Text>,
    #[oai(validator(max_length = 100000))]
    pub prompt_version: MaybeUndefined<Text>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2")))]
    pub temperature: MaybeUndefined<f64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub max_tokens: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub context_window: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "2147483647")))]
    pub input_token_limit: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "0")))]
    pub token_budget: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "1"), maximum(value = "2147483647")))]
    pub timeout_seconds: MaybeUndefined<i64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "10")))]
    pub max_retries: MaybeUndefined<i64>,
}

/// Clone the agent's own config (no `source`) or another variant's.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneVariant {
    /// The slug of the variant to clone; absent: the agent's own config.
    #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
    pub source: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    #[oai(validator(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 128))]
    pub slug: Option<Text>,
    /// Config fields that differ from the source (null: fall back to the agent).
    pub overrides: Option<VariantPatch>,
}

/// The result of a deletion or deactivation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantChange {
    pub success: bool,
    pub agent_name: String,
    /// The variant deleted or deactivated (null when nothing was active).
    pub variant_id: Option<Uuid>,
    pub variant_slug: Option<String>,
    /// False for a no-op (deactivating when none is active).
    pub changed: bool,
}

/// The config a runtime should use now.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct ResolvedConfig {
    pub agent_name: String,
    /// The active variant; null when none is active (the agent's own config).
    pub variant_id: Option<Uuid>,
    pub variant_slug: Option<String>,
    pub model_provider: Option<String>,
    pub model_name: Option<String>,
    pub system_prompt: Option<String>,
    pub user_prompt_template: Option<String>,
    pub prompt_version: Option<String>,
    pub temperature: Option<f64>,
    pub max_tokens: Option<i64>,
    pub context_window: Option<i64>,
    pub input_token_limit: Option<i64>,
    pub token_budget: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub max_retries: Option<i64>,
}

/// One run of the agent, as reported by its runtime.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerformanceInput {
    pub success: bool,
    #[oai(validator(minimum(value = "0")))]
    pub latency_ms: f64,
    #[oai(validator(minimum(value = "0")))]
    pub prompt_tokens: Option<i64>,
    #[oai(validator(minimum(value = "0")))]
    pub completion_tokens: Option<i64>,
    /// USD (stored with 6 decimals).
    #[oai(validator(minimum(value = "0"), maximum(value = "100000000000000", exclusive)))]
    pub cost: Option<f64>,
    pub quality_score: Option<f64>,
    #[oai(validator(max_length = 100000))]
    pub error: Option<Text>,
    /// Attribute the run to this variant; absent: the variant active at `at`.
    #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
    pub variant_slug: Option<Text>,
    /// When the run happened; absent: now.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PerformanceRecord {
    pub id: i64,
    pub agent_name: String,
    /// The variant the run was attributed to (null: none).
    pub variant_id: Option<Uuid>,
    pub variant_slug: Option<String>,
    pub success: bool,
    pub latency_ms: f64,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cost: Option<f64>,
    pub quality_score: Option<f64>,
    pub error: Option<String>,
    pub at: DateTime<Utc>,
}

/// Aggregates over a variant's runs in [start, end).
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantMetrics {
    pub agent_name: String,
    pub variant_id: Uuid,
    pub variant_slug: String,
    pub variant_name: String,
    pub is_active: bool,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub runs: i64,
    /// Successes / runs; null when there are no runs.
    pub success_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    /// Linear interpolation, as PostgreSQL's percentile_cont.
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    /// Prompt + completion tokens.
    pub total_tokens: i64,
    /// USD, 4 decimals.
    pub total_cost: f64,
    pub avg_quality_score: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantHistoryPoint {
    /// Start of the hour or day (UTC).
    pub bucket_start: DateTime<Utc>,
    pub runs: i64,
    pub success_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
    pub p50_latency_ms: Option<f64>,
    pub p95_latency_ms: Option<f64>,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub avg_quality_score: Option<f64>,
}

/// One point per bucket that has runs, oldest first.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantHistory {
    pub agent_name: String,
    pub variant_id: Uuid,
    pub variant_slug: String,
    pub bucket: String,
    pub points: Vec<VariantHistoryPoint>,
    pub count: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantComparison {
    pub agent_name: String,
    pub variants: Vec<VariantMetrics>,
    pub count: i64,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum HistoryBucket {
    Hour,
    Day,
}

#[derive(ApiResponse)]
pub enum CreatedVariant {
    /// The new variant.
    #[oai(status = 201)]
    Created(Json<Variant>),
}

/// Turns the JSON built by SQL into the API type.
fn decode<T: ParseFromJSON>(value: Value) -> Result<T, ApiError> {
    T::parse_from_json(Some(value)).map_err(|e| ApiError::from(DbError::decode(e.into_message())))
}

type Client = deadpool_postgres::Object;

async fn client(state: &AppState) -> Result<Client, ApiError> {
    Ok(state.pool.get().await.map_err(DbError::from)?)
}

pub struct VariantsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Variants")]
impl VariantsApi {
    /// List an agent's variants (oldest first).
    #[oai(
        path = "/agents/:name/variants",
        method = "get",
        operation_id = "listVariants"
    )]
    async fn list(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
    ) -> ApiResult<Json<VariantList>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        decode(db::variants::list(&**c, &name).await?).map(Json)
    }

    /// Create a variant; config fields not given are copied from the agent.
    #[oai(
        path = "/agents/:name/variants",
        method = "post",
        operation_id = "createVariant"
    )]
    async fn create(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        body: Json<CreateVariant>,
    ) -> ApiResult<CreatedVariant> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        let json = body.0.to_json().unwrap_or_default();
        let v = decode(db::variants::create(&**c, &name, &json).await?)?;
        Ok(CreatedVariant::Created(Json(v)))
    }

    /// Every variant's metrics side by side.
    #[oai(
        path = "/agents/:name/variants/compare",
        method = "get",
        operation_id = "compareVariants"
    )]
    async fn compare(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        /// Runs at or after this time.
        start: Query<Option<DateTime<Utc>>>,
        /// Runs before this time.
        end: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<VariantComparison>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        decode(db::variants::compare(&**c, &name, start.0, end.0).await?).map(Json)
    }

    /// Clone the agent's config or another variant, with overrides.
    #[oai(
        path = "/agents/:name/variants/clone",
        method = "post",
        operation_id = "cloneVariant"
    )]
    async fn clone_variant(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        body: Json<CloneVariant>,
    ) -> ApiResult<CreatedVariant> {
        auth.require(Role::Service)?;
        let body = body.0;
        if let Some(o) = &body.overrides {
            if !o.name.is_undefined() {
                return Err(ApiError::new(
                    400,
                    "unknown_field",
                    "name is not a config field; give it at the top level",
                    serde_json::json!({"field": "overrides.name"}),
                ));
            }
        }
        let overrides = body
            .overrides
            .as_ref()
            .and_then(|o| o.to_json())
            .unwrap_or_else(|| serde_json::json!({}));
        let c = client(&state).await?;
        let v = decode(
            db::variants::clone(
                &**c,
                &name,
                body.source.as_deref(),
                &body.name,
                body.slug.as_deref(),
                &overrides,
            )
            .await?,
        )?;
        Ok(CreatedVariant::Created(Json(v)))
    }

    /// Deactivate the agent's active variant (a no-op when none is active).
    #[oai(
        path = "/agents/:name/variants/deactivate",
        method = "post",
        operation_id = "deactivateVariant"
    )]
    async fn deactivate(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
    ) -> ApiResult<Json<VariantChange>> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        decode(db::variants::deactivate(&**c, &name).await?).map(Json)
    }

    /// One variant.
    #[oai(
        path = "/agents/:name/variants/:slug",
        method = "get",
        operation_id = "getVariant"
    )]
    async fn get(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] slug: Path<String>,
    ) -> ApiResult<Json<Variant>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        decode(db::variants::get(&**c, &name, &slug).await?).map(Json)
    }

    /// Change only the fields given; an explicit null clears a config field.
    #[oai(
        path = "/agents/:name/variants/:slug",
        method = "patch",
        operation_id = "updateVariant"
    )]
    async fn patch(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] slug: Path<String>,
        body: Json<VariantPatch>,
    ) -> ApiResult<Json<Variant>> {
        auth.require(Role::Service)?;
        if body.name.is_null() {
            return Err(ApiError::new(
                400,
                "invalid_name",
                "name cannot be null",
                serde_json::json!({"field": "name"}),
            ));
        }
        let patch = body.0.to_json().unwrap_or_else(|| serde_json::json!({}));
        let c = client(&state).await?;
        decode(db::variants::patch(&**c, &name, &slug, &patch).await?).map(Json)
    }

    /// Delete a variant (409 while it is active).
    #[oai(
        path = "/agents/:name/variants/:slug",
        method = "delete",
        operation_id = "deleteVariant"
    )]
    async fn delete(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] slug: Path<String>,
    ) -> ApiResult<Json<VariantChange>> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        decode(db::variants::delete(&**c, &name, &slug).await?).map(Json)
    }

    /// Make this variant the agent's only active one (a no-op if it already is).
    #[oai(
        path = "/agents/:name/variants/:slug/activate",
        method = "post",
        operation_id = "activateVariant"
    )]
    async fn activate(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] slug: Path<String>,
    ) -> ApiResult<Json<Variant>> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        decode(db::variants::activate(&**c, &name, &slug).await?).map(Json)
    }

    /// A variant's metrics over [start, end).
    #[oai(
        path = "/agents/:name/variants/:slug/metrics",
        method = "get",
        operation_id = "getVariantMetrics"
    )]
    async fn metrics(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] slug: Path<String>,
        /// Runs at or after this time.
        start: Query<Option<DateTime<Utc>>>,
        /// Runs before this time.
        end: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<VariantMetrics>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        decode(db::variants::metrics(&**c, &name, &slug, start.0, end.0).await?).map(Json)
    }

    /// A variant's metrics per hour or day (UTC); default `day`.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/agents/:name/variants/:slug/history",
        method = "get",
        operation_id = "getVariantHistory"
    )]
    async fn history(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] slug: Path<String>,
        bucket: Query<Option<HistoryBucket>>,
        /// Runs at or after this time.
        start: Query<Option<DateTime<Utc>>>,
        /// Runs before this time.
        end: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<VariantHistory>> {
        auth.require(Role::Reader)?;
        let bucket = match bucket.0.unwrap_or(HistoryBucket::Day) {
            HistoryBucket::Hour => "hour",
            HistoryBucket::Day => "day",
        };
        let c = client(&state).await?;
        decode(db::variants::history(&**c, &name, &slug, bucket, start.0, end.0).await?).map(Json)
    }

    /// The config to run with: the active variant's, null fields falling back
    /// to the agent's; the agent's own (variantId null) when none is active.
    #[oai(
        path = "/agents/:name/resolved-config",
        method = "get",
        operation_id = "getResolvedConfig"
    )]
    async fn resolved_config(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
    ) -> ApiResult<Json<ResolvedConfig>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        decode(db::variants::resolved_config(&**c, &name).await?).map(Json)
    }

    /// Record one run: against `variantSlug`, else the variant active at `at`.
    #[oai(
        path = "/agents/:name/performance",
        method = "post",
        operation_id = "recordPerformance"
    )]
    async fn performance(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] name: Path<String>,
        body: Json<PerformanceInput>,
    ) -> ApiResult<Json<PerformanceRecord>> {
        auth.require(Role::Service)?;
        let b = body.0;
        let input = db::variants::PerformanceInput {
            success: b.success,
            latency_ms: b.latency_ms,
            prompt_tokens: b.prompt_tokens,
            completion_tokens: b.completion_tokens,
            cost: b.cost,
            quality_score: b.quality_score,
            error: b.error.map(|t| t.0),
            variant_slug: b.variant_slug.map(|t| t.0),
            at: b.at,
        };
        let c = client(&state).await?;
        decode(db::variants::log_performance(&**c, &name, &input).await?).map(Json)
    }
}
