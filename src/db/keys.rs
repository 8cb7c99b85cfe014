//! API keys: thin calls to the auth.* SQL functions.

use super::DbError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: Uuid,
    pub name: String,
    pub role: String,
    pub user_id: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// The role and user binding of an active key.
#[derive(Debug, Clone)]
pub struct KeyGrant {
    pub id: Uuid,
    pub role: String,
    pub user_id: Option<String>,
}

fn key_row(r: &tokio_postgres::Row) -> Result<KeyRow, DbError> {
    Ok(KeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        role: r.try_get("role")?,
        user_id: r.try_get("user_id")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Stores a new key (by hash) and returns its row.
pub async fn create(
    client: &impl tokio_postgres::GenericClient,
    name: &str,
    role: &str,
    user_id: Option<&str>,
    key_hash: &str,
) -> Result<KeyRow, DbError> {
    let id = Uuid::new_v4();
    let row = client
        .query_one(
            "SELECT * FROM auth.create_key($1, $2, $3, $4, $5)",
            &[&id, &name, &role, &user_id, &key_hash],
        )
        .await?;
    key_row(&row)
}

pub async fn list(pool: &Pool) -> Result<Vec<KeyRow>, DbError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            "SELECT id, name, role, user_id, created_at FROM auth.api_keys \
             WHERE revoked_at IS NULL ORDER BY created_at, id",
            &[],
        )
        .await?;
    rows.iter().map(key_row).collect()
}

/// Revokes key `id`. With `keep_an_admin`, the last active admin key is
/// refused (409 `last_admin_key`).
pub async fn revoke(pool: &Pool, id: Uuid, keep_an_admin: bool) -> Result<(), DbError> {
    let client = pool.get().await?;
    client
        .execute("SELECT auth.revoke_key($1, $2)", &[&id, &keep_an_admin])
        .await?;
    Ok(())
}

pub async fn lookup(pool: &Pool, key_hash: &str) -> Result<Option<KeyGrant>, DbError> {
    let client = pool.get().await?;
    // Runs before every authenticated request: a cached prepared statement
    // keeps it to one round trip.
    let stmt = client
        .prepare_cached("SELECT * FROM auth.lookup_key($1)")
        .await?;
    let row = client.query_opt(&stmt, &[&key_hash]).await?;
    row.map(|r| {
        Ok(KeyGrant {
            id: r.try_get("id")?,
            role: r.try_get("role")?,
            user_id: r.try_get("user_id")?,
        })
    })
    .transpose()
}

/// Whether any key was ever created (open mode ends with the first).
pub async fn any_created(pool: &Pool) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let stmt = client
        .prepare_cached("SELECT auth.any_key_created()")
        .await?;
    Ok(client.query_one(&stmt, &[]).await?.try_get(0)?)
}

/// The ids of the keys revoked at or after `since`, and the database's clock
/// now (the next look's starting point, so clocks of servers never matter).
pub async fn revoked_since(
    pool: &Pool,
    since: DateTime<Utc>,
) -> Result<(Vec<Uuid>, DateTime<Utc>), DbError> {
    let client = pool.get().await?;
    let rows = client
        .query("SELECT id FROM auth.revoked_since($1)", &[&since])
        .await?;
    let ids = rows
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<Vec<Uuid>, _>>()?;
    let now = client.query_one("SELECT now()", &[]).await?.try_get(0)?;
    Ok((ids, now))
}
