//! `/api/v1/block-costs`: the prices of blocks, used by credits spend and
//! holds (docs/credits.md). The rules live in sql/credits/pricing.sql.

use super::{reply, ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::types::{Ident, JsonObject};
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    Enum, Object, OpenApi,
};
use serde_json::Value;

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum CostType {
    /// `amount` per run.
    Run,
    /// `amount` per started KiB of the input's JSON text.
    Byte,
    /// `amount` per started second of `durationSeconds`.
    Second,
}

/// A price entry as given in `PUT /block-costs/{blockId}`.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CostEntryInput {
    pub cost_type: CostType,
    #[oai(validator(minimum(value = "0")))]
    pub amount: i64,
    /// Matches when contained in the block input (nested objects included;
    /// null, missing and "" alike). Absent or null: `{}`, which matches
    /// everything.
    pub filter: Option<JsonObject>,
}

/// A price entry as stored: the filter is always an object.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CostEntry {
    pub cost_type: CostType,
    pub amount: i64,
    pub filter: JsonObject,
}

#[derive(Debug, Object)]
pub struct PutBlockCosts {
    /// Ordered: the first matching entry prices the run.
    #[oai(validator(max_items = 100))]
    pub costs: Vec<CostEntryInput>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BlockCosts {
    pub block_id: String,
    pub costs: Vec<CostEntry>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BlockCostList {
    pub block_costs: Vec<BlockCosts>,
    pub count: i64,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

pub struct BlockCostsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::BlockCosts")]
impl BlockCostsApi {
    /// Set a block's prices (admin).
    #[oai(
        path = "/block-costs/:blockId",
        method = "put",
        operation_id = "putBlockCosts"
    )]
    async fn put(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "blockId")] block_id: Path<Ident>,
        body: Json<PutBlockCosts>,
    ) -> ApiResult<Json<BlockCosts>> {
        auth.require(Role::Admin)?;
        let costs: Vec<Value> = body
            .costs
            .iter()
            .map(|c| {
                serde_json::json!({
                    "costType": match c.cost_type {
                        CostType::Run => "run",
                        CostType::Byte => "byte",
                        CostType::Second => "second",
                    },
                    "amount": c.amount,
                    "filter": c.filter.as_ref().map_or(Value::Null, |f| f.0.clone()),
                })
            })
            .collect();
        reply(db::credits::put_block_costs(
            &state.pool,
            &block_id,
            &Value::Array(costs),
        ))
        .await
    }

    /// Every priced block.
    #[oai(path = "/block-costs", method = "get", operation_id = "listBlockCosts")]
    async fn list(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        #[oai(validator(minimum(value = "0")))] offset: Query<Option<i32>>,
    ) -> ApiResult<Json<BlockCostList>> {
        auth.require(Role::Reader)?;
        reply(db::credits::list_block_costs(
            &state.pool,
            limit.0.unwrap_or(50),
            offset.0.unwrap_or(0),
        ))
        .await
    }

    /// One block's prices (404 if none are set).
    #[oai(
        path = "/block-costs/:blockId",
        method = "get",
        operation_id = "getBlockCosts"
    )]
    async fn get(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "blockId")] block_id: Path<Ident>,
    ) -> ApiResult<Json<BlockCosts>> {
        auth.require(Role::Reader)?;
        reply(db::credits::get_block_costs(&state.pool, &block_id)).await
    }
}
