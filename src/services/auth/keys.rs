//! API keys: `vpnshop_<prefix>_<secret>`, random, stored as SHA-256, one scope, revocable, shown once.

use rand::Rng;
use serde::Serialize;
use sqlx::PgPool;

use super::{KEY_PREFIX, Role, Scope, digest, random_token};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;

/// A new API key: `key` is shown this once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NewKey {
    pub id: i64,
    pub name: String,
    pub scope: Scope,
    pub key: String,
}

/// Creates an API key (for an admin by username, or the shop's when None); the key is in the answer only.
pub async fn create_key(
    pool: &PgPool,
    name: &str,
    scope: Scope,
    admin: Option<&str>,
    actor: &Who,
) -> AppResult<NewKey> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(AppError::field("name", "a key's name is 1 to 100 characters"));
    }
    let admin_id = match admin {
        Some(username) => {
            let admin = db::admins::credentials(pool, username)
                .await?
                .filter(|a| a.disabled_at.is_none())
                .ok_or(AppError::NotFound("admin"))?;
            if scope == Scope::Write && admin.role == Role::Viewer.as_str() {
                return Err(AppError::field("scope", "a viewer's key can only read"));
            }
            Some(admin.id)
        }
        None => None,
    };
    let prefix: String = hex::encode(rand::rng().random::<[u8; 4]>());
    let key = format!("{KEY_PREFIX}{prefix}_{}", random_token(32));
    let mut tx = pool.begin().await?;
    let row = db::api_keys::insert(&mut *tx, admin_id, name, &prefix, &digest(&key), scope.as_str()).await?;
    let detail = serde_json::json!({ "name": name, "scope": scope, "prefix": prefix, "admin_id": admin_id });
    actor.record(&mut tx, "api_key.create", "api_key", row.id, detail).await?;
    tx.commit().await?;
    Ok(NewKey { id: row.id, name: row.name, scope, key })
}

pub async fn keys(pool: &PgPool) -> AppResult<Vec<db::api_keys::ApiKeyRow>> {
    Ok(db::api_keys::list(pool).await?)
}

/// Revokes a key by id (`42`), by prefix (`vpnshop_ab12cd34`; a bare `ab12cd34` unless it is all digits), or
/// given the whole key.
pub async fn revoke_key(pool: &PgPool, which: &str, actor: &Who) -> AppResult<db::api_keys::ApiKeyRow> {
    let which = which.trim();
    // `vpnshop_<prefix>` (or the whole key) is a prefix; a bare number is an id, anything else a bare prefix
    let (id, prefix) = match (which.strip_prefix(KEY_PREFIX), which.parse::<i64>()) {
        (Some(rest), _) => (None, Some(rest.split('_').next().unwrap_or(rest))),
        (None, Ok(id)) => (Some(id), None),
        (None, Err(_)) => (None, Some(which)),
    };
    let mut tx = pool.begin().await?;
    let row = db::api_keys::revoke(&mut *tx, id, prefix).await?.ok_or(AppError::NotFound("API key"))?;
    actor.record(&mut tx, "api_key.revoke", "api_key", row.id, serde_json::json!({ "prefix": row.prefix })).await?;
    tx.commit().await?;
    Ok(row)
}
