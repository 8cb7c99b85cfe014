//! Request and response bodies of the usage API.

use crate::api::nullable::Nullable;
use crate::api::types::{Ident, JsonObject, Text};
use crate::db::usage::NewRecord;
use chrono::{DateTime, NaiveDate, Utc};
use poem_openapi::Object;
use serde_json::Value;

// ---- records ---------------------------------------------------------------

/// One LLM call.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", example, skip_serializing_if_is_none)]
pub struct UsageRecordIn {
    pub thread_id: Ident,
    pub agent_id: Option<Ident>,
    pub model: Ident,
    /// Defaults to the provider of the matching price.
    #[oai(validator(min_length = 1, max_length = 128))]
    pub provider: Option<Text>,
    /// At most 1,000,000,000 (as are `completionTokens` and `latencyMs`).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub prompt_tokens: i64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub completion_tokens: i64,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub latency_ms: Option<i64>,
    pub user_id: Option<Ident>,
    pub variant_id: Option<Ident>,
    pub metadata: Option<JsonObject>,
    /// When the call happened (default: now); also picks the price version.
    pub at: Option<DateTime<Utc>>,
    /// Prompt tokens read from the provider's prompt cache: part of
    /// `promptTokens` (default 0).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub cached_prompt_tokens: Option<i64>,
    /// Prompt tokens written to the provider's prompt cache: part of
    /// `promptTokens` (default 0). With `cachedPromptTokens`, at most
    /// `promptTokens` (else 400 `invalid_token_breakdown`).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub cache_write_tokens: Option<i64>,
    /// Completion tokens spent on reasoning: part of `completionTokens`, at
    /// most it (default 0).
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000")))]
    pub reasoning_tokens: Option<i64>,
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
            metadata: r.metadata.map(JsonObject::into_inner),
            at: r.at,
            cached_prompt_tokens: r.cached_prompt_tokens,
            cache_write_tokens: r.cache_write_tokens,
            reasoning_tokens: r.reasoning_tokens,
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
    /// Part of `promptTokens`.
    pub cached_prompt_tokens: i64,
    /// Part of `promptTokens`.
    pub cache_write_tokens: i64,
    /// Part of `completionTokens`.
    pub reasoning_tokens: i64,
    /// `promptTokens + completionTokens`: what the budget counts.
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
    pub cost: Nullable<f64>,
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
    /// Part of `promptTokens`.
    pub cached_prompt_tokens: i64,
    /// Part of `promptTokens`.
    pub cache_write_tokens: i64,
    /// Part of `completionTokens`.
    pub reasoning_tokens: i64,
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
    pub agent_id: Nullable<String>,
    /// The same totals as the summary's, for this one.
    #[oai(flatten)]
    pub totals: UsageTotals,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct ModelUsage {
    /// The model as recorded, lower-cased.
    pub model: String,
    /// The same totals as the summary's, for this one.
    #[oai(flatten)]
    pub totals: UsageTotals,
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

// ---- repricing -------------------------------------------------------------

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RepriceRequest {
    /// Inclusive (RFC 3339).
    pub start: DateTime<Utc>,
    /// Exclusive (RFC 3339); after `start`.
    pub end: DateTime<Utc>,
    /// Only records whose model's price key is this (case-insensitive).
    pub model: Option<Ident>,
    /// Answer the figures without writing anything (default false).
    pub dry_run: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct RepriceResult {
    /// The run (a row of `reporting.usage_repricings`); null on a dry run.
    pub reprice_id: Nullable<i64>,
    /// Records in the range (and of the model).
    pub records: i64,
    /// Records whose cost or price version changed.
    pub changed: i64,
    /// USD, the records' costs before.
    pub previous_cost: f64,
    /// USD, their costs now.
    pub new_cost: f64,
    /// `newCost - previousCost`.
    pub difference: f64,
}

// ---- history ---------------------------------------------------------------

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageRecord {
    pub id: i64,
    pub thread_id: String,
    pub agent_id: Nullable<String>,
    pub model: String,
    pub provider: Nullable<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub total_tokens: i64,
    /// Part of `promptTokens`.
    pub cached_prompt_tokens: i64,
    /// Part of `promptTokens`.
    pub cache_write_tokens: i64,
    /// Part of `completionTokens`.
    pub reasoning_tokens: i64,
    pub latency_ms: Nullable<i64>,
    pub cost: Nullable<f64>,
    pub user_id: Nullable<String>,
    pub variant_id: Nullable<String>,
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
    pub next_after: Nullable<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageDay {
    /// UTC day.
    pub date: NaiveDate,
    pub total_tokens: i64,
    /// Part of `totalTokens`, as are `cacheWriteTokens` and `reasoningTokens`.
    pub cached_prompt_tokens: i64,
    pub cache_write_tokens: i64,
    pub reasoning_tokens: i64,
    pub request_count: i64,
    pub total_cost: f64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct UsageDaily {
    pub days: Vec<UsageDay>,
    pub count: i64,
}
