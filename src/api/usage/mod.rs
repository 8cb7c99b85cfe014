//! `/api/v1/usage...`: LLM usage metering, totals and per-thread token
//! budgets (docs/usage.md). The rules live in sql/usage.sql. The prices the
//! records are costed at have their own API in `api::model_prices`.
//!
//! A key bound to a user records usage only for that user and reads only that
//! user's records (history, daily); totals over every user (overview, by
//! agent, by model, the budget list) and batch ingest are refused to it.

mod batch_body;
mod batch_scan;
mod types;

use batch_body::BatchBody;

pub use types::*;

use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::reply;
use crate::api::types::Ident;
use crate::db::{self, usage::NewRecord};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    OpenApi,
};

// ---- operations ------------------------------------------------------------

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
        let mut r: NewRecord = body.0.into();
        if let Some(bound) = &auth.user_id {
            match &r.user_id {
                Some(given) if given != bound => {
                    return Err(ApiError::forbidden("this key is bound to another user"))
                }
                _ => r.user_id = Some(bound.clone()),
            }
        }
        reply(db::usage::record(&state.pool, &r)).await
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
        body: BatchBody,
    ) -> ApiResult<Json<BatchResult>> {
        auth.require_unbound(Role::Service)?;
        reply(db::usage::record_batch(&state.pool, &body.0)).await
    }

    /// The check before an LLM call: 200 when the estimate fits the thread's
    /// budget, else 429 `budget_exhausted` with `details.budget`.
    #[oai(
        path = "/usage/threads/:threadId/check",
        method = "post",
        operation_id = "checkThreadBudget"
    )]
    async fn check(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "threadId")] thread_id: Path<Ident>,
        body: Json<BudgetCheck>,
    ) -> ApiResult<Json<BudgetCheckResult>> {
        auth.require(Role::Service)?;
        let est = body.estimated_tokens.unwrap_or(0);
        reply(db::usage::check_budget(&state.pool, &thread_id, est)).await
    }

    /// Usage totals of the current epoch, by agent and by model.
    #[oai(path = "/usage", method = "get", operation_id = "getUsageOverview")]
    async fn overview(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<UsageOverview>> {
        auth.require_unbound(Role::Reader)?;
        reply(db::usage::overview(&state.pool)).await
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
        auth.require_unbound(Role::Reader)?;
        reply(db::usage::list_budgets(
            &state.pool,
            limit.0.unwrap_or(50),
            offset.0.unwrap_or(0),
        ))
        .await
    }

    /// A thread's budget; 404 when the thread has none yet.
    #[oai(
        path = "/usage/threads/:threadId",
        method = "get",
        operation_id = "getThreadBudget"
    )]
    async fn get_thread(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "threadId")] thread_id: Path<Ident>,
    ) -> ApiResult<Json<ThreadBudget>> {
        auth.require(Role::Reader)?;
        reply(db::usage::get_budget(&state.pool, &thread_id)).await
    }

    /// Set a thread's `maxTokens` (creates the budget if needed).
    #[oai(
        path = "/usage/threads/:threadId",
        method = "put",
        operation_id = "setThreadBudget"
    )]
    async fn set_thread(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "threadId")] thread_id: Path<Ident>,
        body: Json<SetBudget>,
    ) -> ApiResult<Json<ThreadBudget>> {
        auth.require(Role::Service)?;
        reply(db::usage::set_budget(
            &state.pool,
            &thread_id,
            body.max_tokens,
        ))
        .await
    }

    /// One agent's totals in the current epoch (zeros when it has none).
    #[oai(
        path = "/usage/agents/:agentId",
        method = "get",
        operation_id = "getAgentUsage"
    )]
    async fn agent(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "agentId")] agent_id: Path<Ident>,
    ) -> ApiResult<Json<AgentUsage>> {
        auth.require_unbound(Role::Reader)?;
        reply(db::usage::agent_totals(&state.pool, &agent_id)).await
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
        model: Path<Ident>,
    ) -> ApiResult<Json<ModelUsage>> {
        auth.require_unbound(Role::Reader)?;
        reply(db::usage::model_totals(&state.pool, &model)).await
    }

    /// Start a new usage epoch (admin): totals count from zero again; no
    /// record is deleted.
    #[oai(path = "/usage/reset", method = "post", operation_id = "resetUsage")]
    async fn reset(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<ResetResult>> {
        auth.require(Role::Admin)?;
        reply(db::usage::reset(&state.pool)).await
    }

    /// Reprice the records of a time range (admin): each record with
    /// `start ≤ createdAt < end` (and whose model's price key is `model`,
    /// when given) is costed again with the price version and tier in force
    /// at its time. Atomic; running it again changes nothing. `dryRun`
    /// answers the same figures and writes nothing.
    #[oai(
        path = "/usage/reprice",
        method = "post",
        operation_id = "repriceUsage"
    )]
    async fn reprice(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<RepriceRequest>,
    ) -> ApiResult<Json<RepriceResult>> {
        auth.require(Role::Admin)?;
        reply(db::usage::reprice(
            &state.pool,
            body.start,
            body.end,
            body.model.as_deref(),
            body.dry_run.unwrap_or(false),
        ))
        .await
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
        #[oai(name = "agentId")] agent_id: Query<Option<Ident>>,
        model: Query<Option<Ident>>,
        #[oai(name = "threadId")] thread_id: Query<Option<Ident>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        /// The last id seen (`nextAfter` of the previous page).
        after: Query<Option<i64>>,
    ) -> ApiResult<Json<UsageHistory>> {
        auth.require(Role::Reader)?;
        let q = db::usage::HistoryQuery {
            start: start.0,
            end: end.0,
            agent_id: agent_id.0.map(Into::into),
            model: model.0.map(Into::into),
            thread_id: thread_id.0.map(Into::into),
            limit: limit.0.unwrap_or(50),
            after: after.0,
            user_id: auth.user_id.clone(),
        };
        reply(db::usage::history(&state.pool, &q)).await
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
        match &auth.user_id {
            Some(user) => reply(db::usage::daily_for_user(&state.pool, start.0, end.0, user)).await,
            None => reply(db::usage::daily(&state.pool, start.0, end.0)).await,
        }
    }
}
