//! Credits (CONTRACT §2): users and refill policies, balances, spend,
//! top-up, adjust, history, holds, block prices. The rules live in
//! sql/credits.sql; this layer checks roles, user binding and shapes.

use super::types::Text;
use super::{ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::db::{self, DbError};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::ParseFromJSON,
    ApiResponse, Enum, Object, OpenApi,
};
use serde_json::Value;
use uuid::Uuid;

/// Turns the JSON a SQL function answered into the typed API object.
fn typed<T: ParseFromJSON>(v: Value) -> Result<T, ApiError> {
    T::parse_from_json(Some(v)).map_err(|e| ApiError::from(DbError::decode(e.into_message())))
}

/// `at` is honoured for admin and service keys only.
fn check_at<T>(auth: &Auth, at: &Option<T>) -> Result<(), ApiError> {
    if at.is_some() && !auth.is_privileged() {
        return Err(ApiError::forbidden(
            "`at` is only honoured for admin and service keys",
        ));
    }
    Ok(())
}

/// Role check, then the user binding of the key.
fn allow(auth: &Auth, role: Role, user_id: &str) -> Result<(), ApiError> {
    auth.require(role)?;
    auth.check_user(user_id)
}

// ---------------------------------------------------------------- users

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum RefillPolicy {
    /// Every month stands alone and starts at `refillAmount`.
    Reset,
    /// One running balance; each month tops it up to `refillAmount`.
    TopUpTo,
    /// No refill: a prepaid wallet.
    None,
}

impl RefillPolicy {
    fn as_str(self) -> &'static str {
        match self {
            RefillPolicy::Reset => "reset",
            RefillPolicy::TopUpTo => "top_up_to",
            RefillPolicy::None => "none",
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct PutUser {
    #[oai(validator(minimum(value = "0")))]
    pub refill_amount: i64,
    pub refill_policy: RefillPolicy,
    /// A `credits.low_balance` event is written when a movement takes the
    /// balance from ≥ t to < t (once per threshold and month). Omitted: unchanged.
    #[oai(validator(max_items = 32))]
    pub low_balance_thresholds: Option<Vec<i64>>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct User {
    pub user_id: String,
    pub refill_amount: i64,
    /// `reset|top_up_to|none`
    pub refill_policy: String,
    pub low_balance_thresholds: Vec<i64>,
    pub created_at: DateTime<Utc>,
}

pub struct UsersApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Users")]
impl UsersApi {
    /// Create or update a user's refill settings (admin).
    #[oai(path = "/users/:userId", method = "put", operation_id = "putUser")]
    async fn put_user(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        body: Json<PutUser>,
    ) -> ApiResult<Json<User>> {
        allow(&auth, Role::Admin, &user_id)?;
        let v = db::credits::put_user(
            &state.pool,
            &user_id,
            body.refill_amount,
            body.refill_policy.as_str(),
            body.low_balance_thresholds.as_deref(),
        )
        .await?;
        Ok(Json(typed(v)?))
    }

    /// A user's refill settings (404 if never touched).
    #[oai(path = "/users/:userId", method = "get", operation_id = "getUser")]
    async fn get_user(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
    ) -> ApiResult<Json<User>> {
        allow(&auth, Role::Reader, &user_id)?;
        Ok(Json(typed(
            db::credits::get_user(&state.pool, &user_id).await?,
        )?))
    }
}

// ---------------------------------------------------------------- credits

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
#[oai(rename_all = "camelCase")]
pub struct SpendRequest {
    #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
    pub block_id: Text,
    /// The block's input (a JSON object); priced by the block's cost entries.
    pub input: Option<Value>,
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
    pub metadata: Option<Value>,
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
    pub metadata: Option<Value>,
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
    fn as_str(self) -> &'static str {
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
    pub metadata: Option<Value>,
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
    fn as_str(self) -> &'static str {
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
    pub idempotency_key: Option<String>,
    pub block_id: Option<String>,
    /// The hold this usage row settled, if any.
    pub hold_id: Option<Uuid>,
    pub metadata: Value,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct TransactionList {
    pub transactions: Vec<Transaction>,
    pub count: i64,
    /// Pass as `after` for the next page; null on the last page.
    pub next_after: Option<i64>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct HoldRequest {
    /// Reserve this amount, or give `blockId` + `input` to reserve the block's price.
    #[oai(validator(minimum(value = "1")))]
    pub amount: Option<i64>,
    #[oai(validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))]
    pub block_id: Option<Text>,
    pub input: Option<Value>,
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

pub struct CreditsApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Credits")]
impl CreditsApi {
    /// A user's balance for the month of `at` (default now); performs the lazy refill.
    #[oai(
        path = "/users/:userId/credits",
        method = "get",
        operation_id = "getCredits"
    )]
    async fn get_credits(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        /// Admin/service keys only.
        at: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Credits>> {
        allow(&auth, Role::Reader, &user_id)?;
        check_at(&auth, &at.0)?;
        Ok(Json(typed(
            db::credits::get_credits(&state.pool, &user_id, at.0).await?,
        )?))
    }

    /// Charge a block run (or a fixed amount) to the user.
    #[oai(
        path = "/users/:userId/credits/spend",
        method = "post",
        operation_id = "spendCredits"
    )]
    async fn spend(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        body: Json<SpendRequest>,
    ) -> ApiResult<Json<Spent>> {
        allow(&auth, Role::Service, &user_id)?;
        check_at(&auth, &body.at)?;
        let s = db::credits::spend(
            &state.pool,
            &user_id,
            &db::credits::SpendArgs {
                block_id: &body.block_id,
                input: body.input.as_ref(),
                duration_seconds: body.duration_seconds,
                amount: body.amount,
                validate_balance: body.validate_balance.unwrap_or(true),
                idempotency_key: body.idempotency_key.as_deref(),
                metadata: body.metadata.as_ref(),
                at: body.at,
            },
        )
        .await?;
        Ok(Json(Spent {
            transaction_id: s.transaction_id,
            cost: s.cost,
            balance: s.balance,
        }))
    }

    /// Add purchased credits.
    #[oai(
        path = "/users/:userId/credits/top-up",
        method = "post",
        operation_id = "topUpCredits"
    )]
    async fn top_up(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        body: Json<TopUpRequest>,
    ) -> ApiResult<Json<Movement>> {
        allow(&auth, Role::Service, &user_id)?;
        check_at(&auth, &body.at)?;
        let v = db::credits::top_up(
            &state.pool,
            &user_id,
            body.amount,
            body.idempotency_key.as_deref(),
            body.metadata.as_ref(),
            body.at,
        )
        .await?;
        Ok(Json(typed(v)?))
    }

    /// Grant, refund or adjust credits (admin).
    #[oai(
        path = "/users/:userId/credits/adjust",
        method = "post",
        operation_id = "adjustCredits"
    )]
    async fn adjust(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        body: Json<AdjustRequest>,
    ) -> ApiResult<Json<Movement>> {
        allow(&auth, Role::Admin, &user_id)?;
        if body.amount == 0 {
            return Err(ApiError::bad_request(
                "invalid_amount",
                "amount must not be 0",
            ));
        }
        let v = db::credits::adjust(
            &state.pool,
            &user_id,
            body.amount,
            body.kind.as_str(),
            &body.reason,
            body.idempotency_key.as_deref(),
            body.metadata.as_ref(),
            body.at,
        )
        .await?;
        Ok(Json(typed(v)?))
    }

    /// The ledger, newest first by effective time then id (keyset paging).
    #[oai(
        path = "/users/:userId/credits/transactions",
        method = "get",
        operation_id = "listCreditTransactions"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn transactions(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        /// Effective at or after (inclusive).
        from: Query<Option<DateTime<Utc>>>,
        /// Effective before (exclusive).
        to: Query<Option<DateTime<Utc>>>,
        kind: Query<Option<TransactionKind>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "100")))] limit: Query<Option<i32>>,
        /// The last id seen (`nextAfter` of the previous page).
        #[oai(validator(minimum(value = "1")))]
        after: Query<Option<i64>>,
    ) -> ApiResult<Json<TransactionList>> {
        allow(&auth, Role::Reader, &user_id)?;
        let v = db::credits::list_transactions(
            &state.pool,
            &user_id,
            from.0,
            to.0,
            kind.0.map(TransactionKind::as_str),
            limit.0.unwrap_or(50),
            after.0,
        )
        .await?;
        Ok(Json(typed(v)?))
    }

    /// Stop counting a transaction (admin); the balance follows.
    #[oai(
        path = "/users/:userId/credits/transactions/:transactionId/deactivate",
        method = "post",
        operation_id = "deactivateCreditTransaction"
    )]
    async fn deactivate(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        #[oai(name = "transactionId", validator(minimum(value = "1")))] transaction_id: Path<i64>,
    ) -> ApiResult<Json<Transaction>> {
        allow(&auth, Role::Admin, &user_id)?;
        let v = db::credits::set_active(&state.pool, &user_id, transaction_id.0, false).await?;
        Ok(Json(typed(v)?))
    }

    /// Count a deactivated transaction again (admin); the balance follows.
    #[oai(
        path = "/users/:userId/credits/transactions/:transactionId/activate",
        method = "post",
        operation_id = "activateCreditTransaction"
    )]
    async fn activate(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        #[oai(name = "transactionId", validator(minimum(value = "1")))] transaction_id: Path<i64>,
    ) -> ApiResult<Json<Transaction>> {
        allow(&auth, Role::Admin, &user_id)?;
        let v = db::credits::set_active(&state.pool, &user_id, transaction_id.0, true).await?;
        Ok(Json(typed(v)?))
    }

    /// Reserve credits (402 if not available); settle or release later.
    #[oai(
        path = "/users/:userId/credits/holds",
        method = "post",
        operation_id = "createCreditHold"
    )]
    async fn hold(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        body: Json<HoldRequest>,
    ) -> ApiResult<HoldResponse> {
        allow(&auth, Role::Service, &user_id)?;
        let v = db::credits::hold(
            &state.pool,
            &user_id,
            &db::credits::HoldArgs {
                amount: body.amount,
                block_id: body.block_id.as_deref(),
                input: body.input.as_ref(),
                duration_seconds: body.duration_seconds,
                ttl_seconds: body.ttl_seconds,
                idempotency_key: body.idempotency_key.as_deref(),
            },
        )
        .await?;
        Ok(HoldResponse::Created(Json(typed(v)?)))
    }

    /// Charge what was used; the rest of the hold is released.
    #[oai(
        path = "/users/:userId/credits/holds/:holdId/settle",
        method = "post",
        operation_id = "settleCreditHold"
    )]
    async fn settle(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        #[oai(name = "holdId")] hold_id: Path<Uuid>,
        body: Json<SettleRequest>,
    ) -> ApiResult<Json<Settled>> {
        allow(&auth, Role::Service, &user_id)?;
        let v = db::credits::settle(
            &state.pool,
            &user_id,
            hold_id.0,
            body.amount,
            body.allow_debt.unwrap_or(false),
        )
        .await?;
        Ok(Json(typed(v)?))
    }

    /// Give a hold back without charging.
    #[oai(
        path = "/users/:userId/credits/holds/:holdId/release",
        method = "post",
        operation_id = "releaseCreditHold"
    )]
    async fn release(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] user_id: Path<
            String,
        >,
        #[oai(name = "holdId")] hold_id: Path<Uuid>,
    ) -> ApiResult<Json<Released>> {
        allow(&auth, Role::Service, &user_id)?;
        let v = db::credits::release(&state.pool, &user_id, hold_id.0).await?;
        Ok(Json(typed(v)?))
    }
}

// ---------------------------------------------------------------- block costs

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

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CostEntry {
    pub cost_type: CostType,
    #[oai(validator(minimum(value = "0")))]
    pub amount: i64,
    /// Matches when contained in the block input (nested objects included;
    /// null, missing and "" alike). Default `{}` matches everything.
    pub filter: Option<Value>,
}

#[derive(Debug, Object)]
pub struct PutBlockCosts {
    /// Ordered: the first matching entry prices the run.
    #[oai(validator(max_items = 100))]
    pub costs: Vec<CostEntry>,
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
        #[oai(name = "blockId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] block_id: Path<
            String,
        >,
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
                    "filter": c.filter.clone().unwrap_or(Value::Null),
                })
            })
            .collect();
        let v = db::credits::put_block_costs(&state.pool, &block_id, &Value::Array(costs)).await?;
        Ok(Json(typed(v)?))
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
        let v = db::credits::list_block_costs(
            &state.pool,
            limit.0.unwrap_or(50),
            offset.0.unwrap_or(0),
        )
        .await?;
        Ok(Json(typed(v)?))
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
        #[oai(name = "blockId", validator(pattern = r"^[A-Za-z0-9._:@/-]{1,128}$"))] block_id: Path<
            String,
        >,
    ) -> ApiResult<Json<BlockCosts>> {
        auth.require(Role::Reader)?;
        Ok(Json(typed(
            db::credits::get_block_costs(&state.pool, &block_id).await?,
        )?))
    }
}
