//! `/api/v1/model-prices`: the versioned per-model prices (USD per million
//! tokens) that usage records are costed at (docs/usage.md). The rules live
//! in sql/usage.sql, next to the records that read them.

use super::nullable::Nullable;
use super::types::{Ident, Text};
use super::{encode, reply, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{param::Path, payload::Json, Object, OpenApi};

// ---- operations ------------------------------------------------------------

pub struct ModelPricesApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::ModelPrices")]
impl ModelPricesApi {
    /// The price of every model in effect now.
    #[oai(
        path = "/model-prices",
        method = "get",
        operation_id = "listModelPrices"
    )]
    async fn list(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<ModelPriceList>> {
        auth.require(Role::Reader)?;
        reply(db::model_prices::list(&state.pool)).await
    }

    /// Set a model's price (admin): a new version effective from
    /// `effectiveFrom` (default now; may lie in the past); records already
    /// written keep the version they were costed at until a reprice of their
    /// range (`POST /usage/reprice`).
    #[oai(
        path = "/model-prices/:model",
        method = "put",
        operation_id = "setModelPrice"
    )]
    async fn set(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        model: Path<Ident>,
        body: Json<SetModelPrice>,
    ) -> ApiResult<Json<ModelPrice>> {
        auth.require(Role::Admin)?;
        let tiers = body.tiers.as_ref().map(encode);
        let price = db::model_prices::NewPrice {
            provider: &body.provider,
            prompt_per_million: body.prompt_per_million,
            completion_per_million: body.completion_per_million,
            cached_prompt_per_million: body.cached_prompt_per_million,
            cache_write_per_million: body.cache_write_per_million,
            reasoning_per_million: body.reasoning_per_million,
            tiers,
            effective_from: body.effective_from,
        };
        reply(db::model_prices::set(&state.pool, &model, &price)).await
    }
}

// ---- bodies ----------------------------------------------------------------

/// One model's price (USD per million tokens) and when it took effect.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ModelPrice {
    /// Lower-case model prefix; a recorded model uses the longest matching prefix.
    pub model: String,
    pub provider: String,
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
    /// USD per million cached prompt tokens; null: the prompt price.
    pub cached_prompt_per_million: Nullable<f64>,
    /// USD per million prompt tokens written to the cache; null: the prompt price.
    pub cache_write_per_million: Nullable<f64>,
    /// USD per million reasoning tokens; null: the completion price.
    pub reasoning_per_million: Nullable<f64>,
    /// Long-context prices, by ascending `abovePromptTokens`: a record whose
    /// `promptTokens` exceeds a tier's `abovePromptTokens` is priced wholly
    /// at the highest such tier.
    pub tiers: Vec<PriceTier>,
    pub effective_from: DateTime<Utc>,
}

/// A long-context tier of a price version (USD per million tokens; a null
/// part's price is that tier's prompt price, or its completion price for
/// reasoning).
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PriceTier {
    pub above_prompt_tokens: i64,
    pub prompt_per_million: f64,
    pub completion_per_million: f64,
    pub cached_prompt_per_million: Nullable<f64>,
    pub cache_write_per_million: Nullable<f64>,
    pub reasoning_per_million: Nullable<f64>,
}

/// A tier as PUT takes it.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", skip_serializing_if_is_none)]
pub struct PriceTierIn {
    /// The tier applies to records with more prompt tokens than this.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub above_prompt_tokens: i64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub prompt_per_million: f64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub completion_per_million: f64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub cached_prompt_per_million: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub cache_write_per_million: Option<f64>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub reasoning_per_million: Option<f64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ModelPriceList {
    pub model_prices: Vec<ModelPrice>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SetModelPrice {
    #[oai(validator(min_length = 1, max_length = 128))]
    pub provider: Text,
    /// USD per million prompt tokens, 0 to 1e9.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub prompt_per_million: f64,
    /// USD per million completion tokens, 0 to 1e9.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub completion_per_million: f64,
    /// USD per million cached prompt tokens (default: the prompt price).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub cached_prompt_per_million: Option<f64>,
    /// USD per million prompt tokens written to the cache (default: the
    /// prompt price).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub cache_write_per_million: Option<f64>,
    /// USD per million reasoning tokens (default: the completion price).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub reasoning_per_million: Option<f64>,
    /// Long-context prices (at most 16, distinct `abovePromptTokens`).
    #[oai(validator(max_items = 16))]
    pub tiers: Option<Vec<PriceTierIn>>,
    /// When the version takes effect (RFC 3339; default now). It may lie in
    /// the past: that changes no record written already until a reprice.
    pub effective_from: Option<DateTime<Utc>>,
}
