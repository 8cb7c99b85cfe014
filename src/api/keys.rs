//! `/api/v1/keys`: create, list, revoke API keys (admin).

use super::types::Text;
use super::{ApiResult, ApiTags, AppState, Auth, Role};
use crate::api::nullable::Nullable;
use crate::api::types::Ident;
use crate::db;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{param::Path, payload::Json, ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, Enum)]
#[oai(rename_all = "lowercase")]
pub enum KeyRole {
    Admin,
    Service,
    Reader,
}

impl KeyRole {
    fn as_str(self) -> &'static str {
        match self {
            KeyRole::Admin => "admin",
            KeyRole::Service => "service",
            KeyRole::Reader => "reader",
        }
    }
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreateKey {
    /// A label for people (1-200 characters).
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: Text,
    pub role: KeyRole,
    /// Bind the key to one user: it then sees and moves only that user's
    /// data. Not allowed for `admin` keys (400).
    pub user_id: Option<Ident>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct CreatedKey {
    pub id: Uuid,
    /// The secret, shown only in this response.
    pub key: String,
    pub name: String,
    pub role: String,
    pub user_id: Nullable<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct KeyInfo {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub user_id: Nullable<String>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct KeyList {
    pub keys: Vec<KeyInfo>,
}

/// Who the caller is: what a client (the console, for one) needs to know to
/// offer only what the key may do.
#[derive(Debug, Object)]
#[oai(rename_all = "camelCase")]
pub struct Caller {
    /// `admin`, `service` or `reader`; null when the request carried no key.
    pub role: Nullable<String>,
    /// The user the key is bound to (it sees and moves only that user's data).
    pub user_id: Nullable<String>,
    /// True when the request carried no key and the server runs open
    /// (everything is allowed); false otherwise, so no key and `open: false`
    /// means a key is needed.
    pub open: bool,
    /// The stored key's id; null for the configured admin key and open mode.
    pub key_id: Nullable<Uuid>,
}

#[derive(Debug, Object)]
pub struct Revoked {
    pub success: bool,
    pub id: Uuid,
}

#[derive(ApiResponse)]
pub enum CreateKeyResponse {
    /// The key; its secret is never shown again.
    #[oai(status = 201)]
    Created(Json<CreatedKey>),
}

pub struct KeysApi;

#[OpenApi(prefix_path = "/api/v1", tag = "ApiTags::Keys")]
impl KeysApi {
    /// Create an API key (admin).
    #[oai(path = "/keys", method = "post", operation_id = "createKey")]
    async fn create(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        body: Json<CreateKey>,
    ) -> ApiResult<CreateKeyResponse> {
        auth.require_unbound(Role::Admin)?;
        let secret = super::auth::new_secret();
        let client = state.pool.get().await.map_err(db::DbError::from)?;
        let row = db::keys::create(
            &**client,
            &body.name,
            body.role.as_str(),
            body.user_id.as_deref(),
            &super::auth::hash_key(&secret),
        )
        .await?;
        state.access.end_open_mode();
        Ok(CreateKeyResponse::Created(Json(CreatedKey {
            id: row.id,
            key: secret,
            name: row.name,
            role: row.role,
            user_id: row.user_id.into(),
            created_at: row.created_at,
        })))
    }

    /// List active API keys (admin); secrets are never returned.
    #[oai(path = "/keys", method = "get", operation_id = "listKeys")]
    async fn list(&self, auth: Auth, state: Data<&AppState>) -> ApiResult<Json<KeyList>> {
        auth.require_unbound(Role::Admin)?;
        let keys = db::keys::list(&state.pool)
            .await?
            .into_iter()
            .map(|k| KeyInfo {
                id: k.id,
                name: k.name,
                role: k.role,
                user_id: k.user_id.into(),
                created_at: k.created_at,
            })
            .collect();
        Ok(Json(KeyList { keys }))
    }

    /// Describe the caller: the key's role and user binding. The one
    /// operation besides `/health` that answers without a key: then it says
    /// whether the server runs open (`open: true`, everything allowed) or
    /// needs a key (`open: false`, `role` null), so a client can tell which
    /// before asking its user for one. An invalid or revoked key is a 401.
    #[oai(path = "/keys/me", method = "get", operation_id = "getCurrentKey")]
    async fn me(&self, auth: Auth) -> ApiResult<Json<Caller>> {
        Ok(Json(Caller {
            role: auth.role.map(|r| r.as_str().to_string()).into(),
            user_id: auth.user_id.into(),
            open: auth.open,
            key_id: auth.key_id.into(),
        }))
    }

    /// Revoke an API key (admin); effective immediately for requests, and
    /// within seconds for open WebSockets. The last active admin key cannot
    /// be revoked unless an admin key is configured outside the database.
    #[oai(path = "/keys/:id", method = "delete", operation_id = "revokeKey")]
    async fn revoke(
        &self,
        auth: Auth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<Json<Revoked>> {
        auth.require_unbound(Role::Admin)?;
        let keep_an_admin = state.config.admin_key.is_none();
        db::keys::revoke(&state.pool, id.0, keep_an_admin).await?;
        state.access.poke();
        Ok(Json(Revoked {
            success: true,
            id: id.0,
        }))
    }
}
