//! Request and response bodies of the variants API.

use crate::api::agent_config::agent_config_struct;
use crate::api::nullable::Nullable;
use crate::api::types::Ident;
use crate::api::types::Text;
use chrono::{DateTime, Utc};
use poem_openapi::{payload::Json, types::MaybeUndefined, ApiResponse, Enum, Object};
use uuid::Uuid;

agent_config_struct! {
    /// The AgentConfig fields as stored (null: not set).
    #[derive(Debug, Clone, PartialEq, Object)]
    #[oai(rename_all = "camelCase")]
    pub struct ConfigValues {}
    config: plain Nullable<String>
}

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
    #[oai(flatten)]
    pub config: ConfigValues,
}

#[derive(Debug, Object)]
pub struct VariantList {
    pub variants: Vec<Variant>,
    pub count: i64,
}

agent_config_struct! {
    /// A new variant. Config fields not given (or null) are copied from the agent.
    #[derive(Debug, Object)]
    #[oai(rename_all = "camelCase", deny_unknown_fields, example)]
    pub struct CreateVariant {
        /// Free text, 1-200 characters.
        #[oai(validator(min_length = 1, max_length = 200))]
        pub name: Text,
        /// Defaults to the slugified name. Must already be a slug: lowercase
        /// ASCII letters and digits in runs joined by single `-`.
        #[oai(validator(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 128))]
        pub slug: Option<Text>,
    }
    config: validated Option<Text>
}

agent_config_struct! {
    /// A partial update: only the fields given change; an explicit null clears a
    /// config field (it then falls back to the agent's value).
    #[derive(Debug, Default, Object)]
    #[oai(rename_all = "camelCase", deny_unknown_fields)]
    pub struct VariantPatch {
        /// Not nullable; 1-200 characters.
        #[oai(validator(min_length = 1, max_length = 200))]
        pub name: MaybeUndefined<Text>,
    }
    config: nullable MaybeUndefined<Text>
}

agent_config_struct! {
    /// Clone `overrides`: the config fields that differ from the source (an
    /// explicit null clears one: it then falls back to the agent's value). The
    /// fields of a PATCH but `name`, which is given at the top level.
    #[derive(Debug, Default, Object)]
    #[oai(rename_all = "camelCase", deny_unknown_fields)]
    pub struct ConfigOverrides {}
    config: nullable MaybeUndefined<Text>
}

/// Clone the agent's own config (no `source`) or another variant's.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloneVariant {
    /// The slug of the variant to clone; absent: the agent's own config.
    pub source: Option<Ident>,
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    #[oai(validator(pattern = r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length = 128))]
    pub slug: Option<Text>,
    pub overrides: Option<ConfigOverrides>,
}

/// The result of a deletion or deactivation.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantChange {
    pub success: bool,
    pub agent_name: String,
    /// The variant deleted or deactivated (null when nothing was active).
    pub variant_id: Nullable<Uuid>,
    pub variant_slug: Nullable<String>,
    /// False for a no-op (deactivating when none is active).
    pub changed: bool,
}

/// The config a runtime should use now.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct ResolvedConfig {
    pub agent_name: String,
    /// The active variant; null when none is active (the agent's own config).
    pub variant_id: Nullable<Uuid>,
    pub variant_slug: Nullable<String>,
    #[oai(flatten)]
    pub config: ConfigValues,
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
    pub variant_slug: Option<Ident>,
    /// When the run happened; absent: now.
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PerformanceRecord {
    pub id: i64,
    pub agent_name: String,
    /// The variant the run was attributed to (null: none).
    pub variant_id: Nullable<Uuid>,
    pub variant_slug: Nullable<String>,
    pub success: bool,
    pub latency_ms: f64,
    pub prompt_tokens: Nullable<i64>,
    pub completion_tokens: Nullable<i64>,
    pub cost: Nullable<f64>,
    pub quality_score: Nullable<f64>,
    pub error: Nullable<String>,
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
    pub start: Nullable<DateTime<Utc>>,
    pub end: Nullable<DateTime<Utc>>,
    pub runs: i64,
    /// Successes / runs; null when there are no runs.
    pub success_rate: Nullable<f64>,
    pub avg_latency_ms: Nullable<f64>,
    /// Linear interpolation, as PostgreSQL's percentile_cont.
    pub p50_latency_ms: Nullable<f64>,
    pub p95_latency_ms: Nullable<f64>,
    /// Prompt + completion tokens.
    pub total_tokens: i64,
    /// USD, 4 decimals.
    pub total_cost: f64,
    pub avg_quality_score: Nullable<f64>,
}

#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename_all = "camelCase")]
pub struct VariantHistoryPoint {
    /// Start of the hour or day (UTC).
    pub bucket_start: DateTime<Utc>,
    pub runs: i64,
    pub success_rate: Nullable<f64>,
    pub avg_latency_ms: Nullable<f64>,
    pub p50_latency_ms: Nullable<f64>,
    pub p95_latency_ms: Nullable<f64>,
    pub total_tokens: i64,
    pub total_cost: f64,
    pub avg_quality_score: Nullable<f64>,
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
