//! `/api/v1/agents/{name}/variants...`, `/resolved-config`, `/performance`:
//! agent variants (docs/variants.md). The rules live in sql/variants/; this
//! module checks shapes and roles and maps the JSON built by SQL to types.

mod types;

pub use types::*;

use super::{decode, reply, ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::types::Ident;
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::ToJSON,
    OpenApi,
};

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
        name: Path<Ident>,
    ) -> ApiResult<Json<VariantList>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        reply(db::variants::list(&**c, &name)).await
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
        name: Path<Ident>,
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
        name: Path<Ident>,
        /// Runs at or after this time.
        start: Query<Option<DateTime<Utc>>>,
        /// Runs before this time.
        end: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<VariantComparison>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        reply(db::variants::compare(&**c, &name, start.0, end.0)).await
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
        name: Path<Ident>,
        body: Json<CloneVariant>,
    ) -> ApiResult<CreatedVariant> {
        auth.require(Role::Service)?;
        let body = body.0;
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
        name: Path<Ident>,
    ) -> ApiResult<Json<VariantChange>> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        reply(db::variants::deactivate(&**c, &name)).await
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
        name: Path<Ident>,
        slug: Path<Ident>,
    ) -> ApiResult<Json<Variant>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        reply(db::variants::get(&**c, &name, &slug)).await
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
        name: Path<Ident>,
        slug: Path<Ident>,
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
        reply(db::variants::patch(&**c, &name, &slug, &patch)).await
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
        name: Path<Ident>,
        slug: Path<Ident>,
    ) -> ApiResult<Json<VariantChange>> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        reply(db::variants::delete(&**c, &name, &slug)).await
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
        name: Path<Ident>,
        slug: Path<Ident>,
    ) -> ApiResult<Json<Variant>> {
        auth.require(Role::Service)?;
        let c = client(&state).await?;
        reply(db::variants::activate(&**c, &name, &slug)).await
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
        name: Path<Ident>,
        slug: Path<Ident>,
        /// Runs at or after this time.
        start: Query<Option<DateTime<Utc>>>,
        /// Runs before this time.
        end: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<VariantMetrics>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        reply(db::variants::metrics(&**c, &name, &slug, start.0, end.0)).await
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
        name: Path<Ident>,
        slug: Path<Ident>,
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
        reply(db::variants::history(
            &**c, &name, &slug, bucket, start.0, end.0,
        ))
        .await
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
        name: Path<Ident>,
    ) -> ApiResult<Json<ResolvedConfig>> {
        auth.require(Role::Reader)?;
        let c = client(&state).await?;
        reply(db::variants::resolved_config(&**c, &name)).await
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
        name: Path<Ident>,
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
        reply(db::variants::log_performance(&**c, &name, &input)).await
    }
}
