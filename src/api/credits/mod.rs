//! Credits (docs/credits.md): balances, spend, top-up, adjust, history and
//! holds. Users and refill policies live in `users`, block prices in
//! `block_costs`. The rules live in sql/credits/; this layer checks roles,
//! user binding and shapes.

mod types;

pub use types::*;

// The API wiring in src/api/mod.rs names these through `credits::`.

use super::{decode, reply, ApiError, ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::types::{Ident, JsonObject};
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    OpenApi,
};
use uuid::Uuid;

/// Deactivate and activate differ only in the flag.
async fn set_active(
    state: &AppState,
    user_id: &str,
    transaction_id: i64,
    active: bool,
) -> ApiResult<Json<Transaction>> {
    reply(db::credits::set_active(
        &state.pool,
        user_id,
        transaction_id,
        active,
    ))
    .await
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
pub(super) fn allow(auth: &Auth, role: Role, user_id: &str) -> Result<(), ApiError> {
    auth.require(role)?;
    auth.check_user(user_id)
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        /// Admin/service keys only.
        at: Query<Option<DateTime<Utc>>>,
    ) -> ApiResult<Json<Credits>> {
        allow(&auth, Role::Reader, &user_id)?;
        check_at(&auth, &at.0)?;
        reply(db::credits::get_credits(&state.pool, &user_id, at.0)).await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        body: Json<SpendRequest>,
    ) -> ApiResult<Json<Spent>> {
        allow(&auth, Role::Service, &user_id)?;
        check_at(&auth, &body.at)?;
        let body = body.0;
        let s = state
            .spends
            .spend(
                &user_id,
                db::credits::SpendArgs {
                    block_id: body.block_id.to_string(),
                    input: body.input.map(JsonObject::into_inner),
                    duration_seconds: body.duration_seconds,
                    amount: body.amount,
                    validate_balance: body.validate_balance.unwrap_or(true),
                    idempotency_key: body.idempotency_key.map(|k| k.to_string()),
                    metadata: body.metadata.map(JsonObject::into_inner),
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        body: Json<TopUpRequest>,
    ) -> ApiResult<Json<Movement>> {
        // Top-ups add purchased credits: a key bound to the user it would
        // credit must not be able to mint them.
        auth.require_unbound(Role::Service)?;
        check_at(&auth, &body.at)?;
        reply(db::credits::top_up(
            &state.pool,
            &user_id,
            body.amount,
            body.idempotency_key.as_deref(),
            body.metadata.as_ref().map(|m| &m.0),
            body.at,
        ))
        .await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        body: Json<AdjustRequest>,
    ) -> ApiResult<Json<Movement>> {
        allow(&auth, Role::Admin, &user_id)?;
        reply(db::credits::adjust(
            &state.pool,
            &user_id,
            body.amount,
            body.kind.as_str(),
            &body.reason,
            body.idempotency_key.as_deref(),
            body.metadata.as_ref().map(|m| &m.0),
            body.at,
        ))
        .await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
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
        reply(db::credits::list_transactions(
            &state.pool,
            &user_id,
            from.0,
            to.0,
            kind.0.map(TransactionKind::as_str),
            limit.0.unwrap_or(50),
            after.0,
        ))
        .await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        #[oai(name = "transactionId", validator(minimum(value = "1")))] transaction_id: Path<i64>,
    ) -> ApiResult<Json<Transaction>> {
        allow(&auth, Role::Admin, &user_id)?;
        set_active(&state, &user_id, transaction_id.0, false).await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        #[oai(name = "transactionId", validator(minimum(value = "1")))] transaction_id: Path<i64>,
    ) -> ApiResult<Json<Transaction>> {
        allow(&auth, Role::Admin, &user_id)?;
        set_active(&state, &user_id, transaction_id.0, true).await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        body: Json<HoldRequest>,
    ) -> ApiResult<HoldResponse> {
        allow(&auth, Role::Service, &user_id)?;
        let v = db::credits::hold(
            &state.pool,
            &user_id,
            &db::credits::HoldArgs {
                amount: body.amount,
                block_id: body.block_id.as_deref(),
                input: body.input.as_ref().map(|i| &i.0),
                duration_seconds: body.duration_seconds,
                ttl_seconds: body.ttl_seconds,
                idempotency_key: body.idempotency_key.as_deref(),
            },
        )
        .await?;
        Ok(HoldResponse::Created(Json(decode(v)?)))
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        #[oai(name = "holdId")] hold_id: Path<Uuid>,
        body: Json<SettleRequest>,
    ) -> ApiResult<Json<Settled>> {
        allow(&auth, Role::Service, &user_id)?;
        reply(db::credits::settle(
            &state.pool,
            &user_id,
            hold_id.0,
            body.amount,
            body.allow_debt.unwrap_or(false),
        ))
        .await
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
        #[oai(name = "userId")] user_id: Path<Ident>,
        #[oai(name = "holdId")] hold_id: Path<Uuid>,
    ) -> ApiResult<Json<Released>> {
        allow(&auth, Role::Service, &user_id)?;
        reply(db::credits::release(&state.pool, &user_id, hold_id.0)).await
    }
}
