//! `/api/v1/model-prices`: the versioned per-model prices (USD per million
//! tokens) that usage records are costed at (docs/usage.md). The rules live
//! in sql/usage.sql, next to the records that read them.

use super::types::{Ident, Text};
use super::{reply, ApiResult, ApiTags, AppState, Auth, Role};
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

    /// Set a model's price (admin): a new version effective from now; records
    /// already written keep the price they were costed at.
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
        reply(db::model_prices::set(
            &state.pool,
            &model,
            &body.provider,
            body.prompt_per_million,
            body.completion_per_million,
        ))
        .await
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
    pub effective_from: DateTime<Utc>,
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
}
