//! Request and response bodies of the credits API.

use crate::api::nullable::Nullable;
use crate::api::types::Text;
use crate::api::types::{Ident, JsonObject};
use chrono::{DateTime, Utc};
use poem_openapi::{payload::Json, ApiResponse, Enum, Object};
use serde_json::Value;
use uuid::Uuid;

#[derive(Debug, Object)]
pub struct Period {
    /// First instant of the month (inclusive).
    pub start: DateTime<Utc>,
    /// First instant of the next month (exclusive).
    pub end: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Credits {
    pub user_id: String,
    pub balance: i64,
    /// `balance` minus the holds that still count.
    pub available: i64,
    pub period: Period,
    pub refill_amount: i64,
    pub refill_policy: String,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase", example, skip_serializing_if_is_none)]
pub struct SpendRequest {
    pub block_id: Ident,
    /// The block's input (a JSON object); priced by the block's cost entries.
    pub input: Option<JsonObject>,
    /// For `second` prices: charged per started second.
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000000")))]
    pub duration_seconds: Option<f64>,
    /// Charge this fixed amount instead of the block price.
    #[oai(validator(minimum(value = "1")))]
    pub amount: Option<i64>,
    /// Default true: refuse (402) when `available` is below the cost.
    /// False: the balance may go negative (debt is recorded).
    pub validate_balance: Option<bool>,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<Text>,
    pub metadata: Option<JsonObject>,
    /// Effective time (admin/service only).
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Spent {
    pub transaction_id: i64,
    pub cost: i64,
    pub balance: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TopUpRequest {
    #[oai(validator(minimum(value = "1")))]
    pub amount: i64,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<Text>,
    pub metadata: Option<JsonObject>,
    /// Effective time (admin/service only).
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum AdjustKind {
    Grant,
    Refund,
    Adjustment,
}

impl AdjustKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AdjustKind::Grant => "grant",
            AdjustKind::Refund => "refund",
            AdjustKind::Adjustment => "adjustment",
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct AdjustRequest {
    /// Signed, not 0.
    pub amount: i64,
    pub kind: AdjustKind,
    #[oai(validator(min_length = 1, max_length = 1000))]
    pub reason: Text,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<Text>,
    pub metadata: Option<JsonObject>,
    pub at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Movement {
    pub transaction_id: i64,
    pub balance: i64,
}

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "snake_case")]
pub enum TransactionKind {
    Refill,
    TopUp,
    Usage,
    Grant,
    Refund,
    Adjustment,
}

impl TransactionKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            TransactionKind::Refill => "refill",
            TransactionKind::TopUp => "top_up",
            TransactionKind::Usage => "usage",
            TransactionKind::Grant => "grant",
            TransactionKind::Refund => "refund",
            TransactionKind::Adjustment => "adjustment",
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Transaction {
    pub id: i64,
    pub user_id: String,
    /// `refill|top_up|usage|grant|refund|adjustment`
    pub kind: String,
    pub amount: i64,
    /// The period's balance right after this row.
    pub running_balance: i64,
    pub effective_at: DateTime<Utc>,
    /// The month's first day, e.g. `2022-02-01`.
    pub period: String,
    pub is_active: bool,
    pub idempotency_key: Nullable<String>,
    pub block_id: Nullable<String>,
    /// The hold this usage row settled, if any.
    pub hold_id: Nullable<Uuid>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TransactionList {
    pub transactions: Vec<Transaction>,
    pub count: i64,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Nullable<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct HoldRequest {
    /// Reserve this amount, or give `blockId` + `input` to reserve the block's price.
    #[oai(validator(minimum(value = "1")))]
    pub amount: Option<i64>,
    pub block_id: Option<Ident>,
    pub input: Option<JsonObject>,
    #[oai(validator(minimum(value = "0"), maximum(value = "1000000000000000")))]
    pub duration_seconds: Option<f64>,
    /// Default 300; 1 to 604800.
    #[oai(validator(minimum(value = "1"), maximum(value = "604800")))]
    pub ttl_seconds: Option<i32>,
    #[oai(validator(min_length = 1, max_length = 255))]
    pub idempotency_key: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Hold {
    pub hold_id: Uuid,
    pub amount: i64,
    pub expires_at: DateTime<Utc>,
    pub available: i64,
}

#[derive(ApiResponse)]
pub enum HoldResponse {
    /// The hold.
    #[oai(status = 201)]
    Created(Json<Hold>),
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct SettleRequest {
    /// What was really used (≥ 0); the rest of the hold is released.
    #[oai(validator(minimum(value = "0")))]
    pub amount: i64,
    /// Settling above the hold may take the balance below 0 only with this.
    pub allow_debt: Option<bool>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Settled {
    pub transaction_id: i64,
    pub amount: i64,
    pub balance: i64,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Released {
    pub hold_id: Uuid,
    pub available: i64,
}
