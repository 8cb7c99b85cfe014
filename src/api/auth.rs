//! Bearer-key authentication and roles (docs/api.md).
//!
//! `Auth` is an OpenAPI extractor: it declares the `bearerAuth` scheme in the
//! spec and resolves the caller. Handlers then state the role they need with
//! [`Auth::require`] and, for per-user resources, [`Auth::check_user`];
//! operations that span users refuse user-bound keys with
//! [`Auth::require_unbound`].

use super::error::ApiError;
use super::AppState;
use crate::db;
use poem::{Request, RequestBody};
use poem_openapi::registry::{MetaSecurityScheme, Registry};
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Service,
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "service" => Some(Role::Service),
            "reader" => Some(Role::Reader),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Service => "service",
            Role::Reader => "reader",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone)]
pub struct Auth {
    /// `None` when no key was given and the server runs open.
    pub role: Option<Role>,
    /// A key bound to one user sees and moves only that user's data.
    pub user_id: Option<String>,
    /// True in open mode (no key was ever created, loopback only):
    /// everything allowed.
    pub open: bool,
    /// The stored key used (None for open mode and the configured admin key).
    pub key_id: Option<uuid::Uuid>,
}

impl Auth {
    /// 401 without a key (unless open), 403 when the key's role is too low.
    pub fn require(&self, needed: Role) -> Result<(), ApiError> {
        if self.open {
            return Ok(());
        }
        match self.role {
            None => Err(ApiError::unauthorized("an API key is required")),
            Some(r) if r >= needed => Ok(()),
            Some(r) => Err(ApiError::forbidden(format!(
                "this operation needs the {} role; the key has {}",
                needed.as_str(),
                r.as_str()
            ))),
        }
    }

    /// 403 when the key is bound to a different user.
    pub fn check_user(&self, user_id: &str) -> Result<(), ApiError> {
        match &self.user_id {
            Some(bound) if bound != user_id => {
                Err(ApiError::forbidden("this key is bound to another user"))
            }
            _ => Ok(()),
        }
    }

    /// [`Auth::require`], and 403 for a key bound to a user: the operation
    /// reaches beyond any one user (keys, totals over all users).
    pub fn require_unbound(&self, needed: Role) -> Result<(), ApiError> {
        self.require(needed)?;
        if self.user_id.is_some() {
            return Err(ApiError::forbidden(
                "a key bound to a user cannot do this: it reaches beyond that user",
            ));
        }
        Ok(())
    }

    /// Whether the caller may act on behalf of the platform (admin/service).
    pub fn is_privileged(&self) -> bool {
        self.open || self.role >= Some(Role::Service)
    }
}

/// SHA-256 hex of a key secret: what the database stores.
pub fn hash_key(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A fresh random key secret.
pub fn new_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("ap_{}", hex::encode(bytes))
}

/// Resolves the caller of `req` against the configured admin key and the
/// key table.
pub async fn authenticate(state: &AppState, req: &Request) -> Result<Auth, ApiError> {
    let Some(secret) = super::token::bearer_token(req) else {
        return Ok(Auth {
            role: None,
            user_id: None,
            open: state.access.is_open(&state.pool).await?,
            key_id: None,
        });
    };
    let hash = hash_key(&secret);
    if let Some(admin_hash) = &state.admin_key_hash {
        if **admin_hash == *hash {
            return Ok(Auth {
                role: Some(Role::Admin),
                user_id: None,
                open: false,
                key_id: None,
            });
        }
    }
    let grant = db::keys::lookup(&state.pool, &hash)
        .await?
        .ok_or_else(|| ApiError::unauthorized("the API key is invalid or revoked"))?;
    Ok(Auth {
        role: Role::parse(&grant.role),
        user_id: grant.user_id,
        open: false,
        key_id: Some(grant.id),
    })
}

impl<'a> ApiExtractor<'a> for Auth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        registry.create_security_scheme(
            "bearerAuth",
            MetaSecurityScheme {
                ty: "http",
                description: Some("`Authorization: Bearer <key>`; roles admin > service > reader"),
                name: None,
                key_in: None,
                scheme: Some("bearer"),
                bearer_format: None,
                flows: None,
                openid_connect_url: None,
            },
        );
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["bearerAuth"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut RequestBody,
        _opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let state = req.data::<AppState>().ok_or_else(|| {
            poem::Error::from_string(
                "state missing",
                poem::http::StatusCode::INTERNAL_SERVER_ERROR,
            )
        })?;
        authenticate(state, req).await.map_err(Into::into)
    }
}
