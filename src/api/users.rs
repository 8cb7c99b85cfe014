//! `/api/v1/users/{userId}`: users and their refill policies
//! (docs/credits.md).
//! The rules live in sql/credits/users.sql.

use super::credits::allow;
use super::{reply, ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::types::Ident;
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{param::Path, payload::Json, Enum, Object, OpenApi};

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
        #[oai(name = "userId")] user_id: Path<Ident>,
        body: Json<PutUser>,
    ) -> ApiResult<Json<User>> {
        allow(&auth, Role::Admin, &user_id)?;
        reply(db::credits::put_user(
            &state.pool,
            &user_id,
            body.refill_amount,
            body.refill_policy.as_str(),
            body.low_balance_thresholds.as_deref(),
        ))
        .await
    }

    /// A user's refill settings (404 if never touched).
    #[oai(path = "/users/:userId", method = "get", operation_id = "getUser")]
    async fn get_user(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        #[oai(name = "userId")] user_id: Path<Ident>,
    ) -> ApiResult<Json<User>> {
        allow(&auth, Role::Reader, &user_id)?;
        reply(db::credits::get_user(&state.pool, &user_id)).await
    }
}
