//! `/api/v1/model-prices` and `/api/v1/usage...`: LLM usage metering, totals
//! and per-thread token budgets (CONTRACT §3). The rules live in sql/usage.sql.

use super::types::{IdentCheck, Text};
use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db::{self, usage::NewRecord, DbError};
use chrono::{DateTime, NaiveDate, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::ParseFromJSON,
    Object, OpenApi,
};
use serde_json::Value;

/// Turns the JSON a usage.* SQL function returned into the typed response.
fn parse<T: ParseFromJSON>(v: Value) -> Result<T, ApiError> {
    T::parse_from_json(Some(v))
        .map_err(|e| ApiError::from(DbError::decode(format!("usage response: {}", e.message()))))
}

// ---- model prices ----------------------------------------------------------

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
    #[oai(validator(minimum(value = "0")))]
    pub prompt_per_million: f64,
    #[oai(validator(minimum(value = "0")))]
    pub completion_per_million: f64,
}

// ---- records ---------------------------------------------------------------

/// One LLM call.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageRecordIn {
    /// Identifier (1-128 characters of `[A-Za-z0-9._:@/-]`), as are
    /// `agentId`, `model`, `userId` and `variantId`.
    #[oai(validator(min_length = 1, max_length = 128, custom = "IdentCheck"))]
    pub thread_id: Text,
    #[oai(validator(min_length = 1, max_length = 128, custom = "IdentCheck"))]
    pub agent_id: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 128, custom = "IdentCheck"))]
    pub model: Text,
    /// Defaults to the provider of the matching price.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub provider: Option<Text>,
    #[oai(validator(minimum(value = "0")))]
    pub prompt_tokens: i64,
    #[oai(validator(minimum(value = "0")))]
    pub completion_tokens: i64,
    #[oai(validator(minimum(value = "0")))]
    pub latency_ms: Option<i64>,
    #[oai(validator(min_length = 1, max_length = 128, custom = "IdentCheck"))]
    pub user_id: Option<Text>,
    #[oai(validator(min_length = 1, max_length = 128, custom = "IdentCheck"))]
    pub variant_id: Option<Text>,
    /// Free JSON object.
    pub metadata: Option<Value>,
    /// When the call happened (default: now); also picks the price version.
    pub at: Option<DateTime<Utc>>,
}

impl From<UsageRecordIn> for NewRecord {
    fn from(r: UsageRecordIn) -> NewRecord {
        NewRecord {
            thread_id: r.thread_id.0,
            agent_id: r.agent_id.map(String::from),
            model: r.model.0,
            provider: r.provider.map(String::from),
            prompt_tokens: r.prompt_tokens,
            completion_tokens: r.completion_tokens,
            latency_ms: r.latency_ms,
            user_id: r.user_id.map(String::from),
            variant_id: r.variant_id.map(String::from),
            metadata: r.metadata,
            at: r.at,
        }
    }
}

/// A thread's token budget.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ThreadBudget {
    pub thread_id: String,
    pub max_tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// `maxTokens - totalTokens`, never below 0.
    pub remaining: i64,
    /// Percent of `maxTokens` used, to 1 decimal (may exceed 100).
    pub percent_used: f64,
    pub is_exhausted: bool,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RecordResult {
    pub id: i64,
    pub total_tokens: i64,
    /// USD (6 decimals); null when the model has no price.
    pub cost: Option<f64>,
    pub budget: ThreadBudget,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RecordBatch {
    /// Up to 10,000 records, written all or nothing.
    #[oai(validator(max_items = 10000))]
    pub records: Vec<UsageRecordIn>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BatchResult {
    pub inserted: i64,
    /// USD sum of the priced records.
    pub total_cost: f64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BudgetCheck {
    /// Tokens the next call is expected to use (default 0).
    #[oai(validator(minimum(value = "0")))]
    pub estimated_tokens: Option<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct BudgetCheckResult {
    pub allowed: bool,
    pub budget: ThreadBudget,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SetBudget {
    #[oai(validator(minimum(value = "1")))]
    pub max_tokens: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ThreadBudgetList {
    /// Highest `percentUsed` first.
    pub threads: Vec<ThreadBudget>,
    pub count: i64,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub default_max_tokens: i64,
}

// ---- totals ----------------------------------------------------------------

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageTotals {
    pub total_tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub request_count: i64,
    /// USD (4 decimals), priced records only.
    pub total_cost: f64,
    /// Mean over the records that gave a latency; 0 when none did.
    pub avg_latency_ms: f64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AgentUsage {
    /// Null in `byAgent` for records without an agent.
    pub agent_id: Option<String>,
    pub total_tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub request_count: i64,
    pub total_cost: f64,
    pub avg_latency_ms: f64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ModelUsage {
    /// The model as recorded, lower-cased.
    pub model: String,
    pub total_tokens: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub request_count: i64,
    pub total_cost: f64,
    pub avg_latency_ms: f64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageSummary {
    pub totals: UsageTotals,
    pub by_agent: Vec<AgentUsage>,
    pub by_model: Vec<ModelUsage>,
    /// Threads with at least one record in the current epoch.
    pub active_threads: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageOverview {
    pub usage: UsageSummary,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ResetResult {
    pub success: bool,
    pub message: String,
    /// The new epoch's number.
    pub epoch: i64,
}

// ---- history ---------------------------------------------------------------

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageRecord {
    pub id: i64,
    pub thread_id: String,
    pub agent_id: Option<String>,
    pub model: String,
    pub provider: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    pub latency_ms: Option<i64>,
    pub cost: Option<f64>,
    pub user_id: Option<String>,
    pub variant_id: Option<String>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageHistory {
    /// Newest first.
    pub records: Vec<UsageRecord>,
    pub count: i64,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageDay {
    /// UTC day.
    pub date: NaiveDate,
    pub total_tokens: i64,
    pub request_count: i64,
    pub total_cost: f64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageDaily {
    pub days: Vec<UsageDay>,
    pub count: i64,
}

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
        parse(db::usage::list_prices(&state.pool).await?).map(Json)
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
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] model: Path<String>,
        body: Json<SetModelPrice>,
    ) -> ApiResult<Json<ModelPrice>> {
        auth.require(Role::Admin)?;
        let v = db::usage::set_price(
            &state.pool,
            &model,
            &body.provider,
            body.prompt_per_million,
            body.completion_per_million,
        )
        .await?;
        parse(v).map(Json)
    }
}

pub struct UsageApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Usage")]
impl UsageApi {
    /// Record one LLM call; adds to the thread's budget.
    #[oai(path = "/usage/records", method = "post", operation_id = "recordUsage")]
    async fn record(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<UsageRecordIn>,
    ) -> ApiResult<Json<RecordResult>> {
        auth.require(Role::Service)?;
        let r: NewRecord = body.0.into();
        parse(db::usage::record(&state.pool, &r).await?).map(Json)
    }

    /// Record up to 10,000 LLM calls at once, all or nothing.
    #[oai(
        path = "/usage/records/batch",
        method = "post",
        operation_id = "recordUsageBatch"
    )]
    async fn record_batch(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<RecordBatch>,
    ) -> ApiResult<Json<BatchResult>> {
        auth.require(Role::Service)?;
        let records: Vec<NewRecord> = body.0.records.into_iter().map(Into::into).collect();
        parse(db::usage::record_batch(&state.pool, &records).await?).map(Json)
    }

    /// The check before an LLM call: 200 when the estimate fits the thread's
    /// budget, else 429 `budget_exhausted` with `details.budget`.
    #[oai(
        path = "/usage/threads/:thread_id/check",
        method = "post",
        operation_id = "checkThreadBudget"
    )]
    async fn check(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "threadId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
        thread_id: Path<String>,
        body: Json<BudgetCheck>,
    ) -> ApiResult<Json<BudgetCheckResult>> {
        auth.require(Role::Service)?;
        let est = body.estimated_tokens.unwrap_or(0);
        parse(db::usage::check_budget(&state.pool, &thread_id, est).await?).map(Json)
    }

    /// Usage totals of the current epoch, by agent and by model.
    #[oai(path = "/usage", method = "get", operation_id = "getUsageOverview")]
    async fn overview(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<UsageOverview>> {
        auth.require(Role::Reader)?;
        parse(db::usage::overview(&state.pool).await?).map(Json)
    }

    /// Thread budgets, highest `percentUsed` first.
    #[oai(
        path = "/usage/threads",
        method = "get",
        operation_id = "listThreadBudgets"
    )]
    async fn list_threads(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        #[oai(validator(minimum(value = "0")))] offset: Query<Option<i32>>,
    ) -> ApiResult<Json<ThreadBudgetList>> {
        auth.require(Role::Reader)?;
        let v = db::usage::list_budgets(&state.pool, limit.0.unwrap_or(50), offset.0.unwrap_or(0))
            .await?;
        parse(v).map(Json)
    }

    /// A thread's budget; 404 when the thread has none yet.
    #[oai(
        path = "/usage/threads/:thread_id",
        method = "get",
        operation_id = "getThreadBudget"
    )]
    async fn get_thread(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "threadId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
        thread_id: Path<String>,
    ) -> ApiResult<Json<ThreadBudget>> {
        auth.require(Role::Reader)?;
        parse(db::usage::get_budget(&state.pool, &thread_id).await?).map(Json)
    }

    /// Set a thread's `maxTokens` (creates the budget if needed).
    #[oai(
        path = "/usage/threads/:thread_id",
        method = "put",
        operation_id = "setThreadBudget"
    )]
    async fn set_thread(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "threadId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
        thread_id: Path<String>,
        body: Json<SetBudget>,
    ) -> ApiResult<Json<ThreadBudget>> {
        auth.require(Role::Service)?;
        parse(db::usage::set_budget(&state.pool, &thread_id, body.max_tokens).await?).map(Json)
    }

    /// One agent's totals in the current epoch (zeros when it has none).
    #[oai(
        path = "/usage/agents/:agent_id",
        method = "get",
        operation_id = "getAgentUsage"
    )]
    async fn agent(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "agentId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] agent_id: Path<
            String,
        >,
    ) -> ApiResult<Json<AgentUsage>> {
        auth.require(Role::Reader)?;
        parse(db::usage::agent_totals(&state.pool, &agent_id).await?).map(Json)
    }

    /// One model's totals in the current epoch (zeros when it has none).
    #[oai(
        path = "/usage/models/:model",
        method = "get",
        operation_id = "getModelUsage"
    )]
    async fn model(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] model: Path<String>,
    ) -> ApiResult<Json<ModelUsage>> {
        auth.require(Role::Reader)?;
        parse(db::usage::model_totals(&state.pool, &model).await?).map(Json)
    }

    /// Start a new usage epoch (admin): totals count from zero again; no
    /// record is deleted.
    #[oai(path = "/usage/reset", method = "post", operation_id = "resetUsage")]
    async fn reset(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<ResetResult>> {
        auth.require(Role::Admin)?;
        parse(db::usage::reset(&state.pool).await?).map(Json)
    }

    /// Usage records, newest first, across every epoch; keyset paging with `after`.
    #[oai(
        path = "/usage/history",
        method = "get",
        operation_id = "getUsageHistory"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn history(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        /// Inclusive (RFC 3339).
        start: Query<Option<DateTime<Utc>>>,
        /// Exclusive (RFC 3339).
        end: Query<Option<DateTime<Utc>>>,
        #[oai(name = "agentId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
        agent_id: Query<Option<String>>,
        #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] model: Query<Option<String>>,
        #[oai(name = "threadId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
        thread_id: Query<Option<String>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        /// The last id seen (`nextAfter` of the previous page).
        after: Query<Option<i64>>,
    ) -> ApiResult<Json<UsageHistory>> {
        auth.require(Role::Reader)?;
        let q = db::usage::HistoryQuery {
            start: start.0,
            end: end.0,
            agent_id: agent_id.0,
            model: model.0,
            thread_id: thread_id.0,
            limit: limit.0.unwrap_or(50),
            after: after.0,
        };
        parse(db::usage::history(&state.pool, &q).await?).map(Json)
    }

    /// Daily totals (UTC days), across every epoch.
    #[oai(path = "/usage/daily", method = "get", operation_id = "getUsageDaily")]
    async fn daily(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        /// Inclusive (RFC 3339).
        start: Query<Option<DateTime<Utc>>>,
        /// Exclusive (RFC 3339).
        end: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<UsageDaily>> {
        auth.require(Role::Reader)?;
        parse(db::usage::daily(&state.pool, start.0, end.0).await?).map(Json)
    }
}
