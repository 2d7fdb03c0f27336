//! The `api_keys` table: keys for the admin API, stored as the SHA-256 of the key (keys are long and random,
//! so a fast hash is enough), with one scope each.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRow {
    pub id: i64,
    pub admin_id: Option<i64>,
    pub name: String,
    pub prefix: String,
    pub scope: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    admin_id: Option<i64>,
    name: &str,
    prefix: &str,
    key_hash: &str,
    scope: &str,
) -> sqlx::Result<ApiKeyRow> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"INSERT INTO api_keys (admin_id, name, prefix, key_hash, scopes) VALUES ($1, $2, $3, $4, ARRAY[$5])
           RETURNING id, admin_id, name, prefix, scopes[1] AS "scope!", created_at, last_used_at, revoked_at"#,
        admin_id,
        name,
        prefix,
        key_hash,
        scope
    )
    .fetch_one(db)
    .await
}

/// The unrevoked key with this hash whose admin, if it has one, is still enabled.
pub async fn active_by_hash(db: impl PgExecutor<'_>, key_hash: &str) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"SELECT id, admin_id, name, prefix, scopes[1] AS "scope!", created_at, last_used_at, revoked_at
           FROM api_keys k
           WHERE key_hash = $1 AND revoked_at IS NULL
             AND (admin_id IS NULL OR EXISTS (SELECT 1 FROM admins a WHERE a.id = k.admin_id AND a.disabled_at IS NULL))"#,
        key_hash
    )
    .fetch_optional(db)
    .await
}

/// Notes that a key was used (callers do it at most once a minute per key, not on every request).
pub async fn touch(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE api_keys SET last_used_at = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"SELECT id, admin_id, name, prefix, scopes[1] AS "scope!", created_at, last_used_at, revoked_at
           FROM api_keys ORDER BY id"#
    )
    .fetch_all(db)
    .await
}

/// Revokes a key by id or by its prefix; the key, or None when there is no unrevoked one.
pub async fn revoke(db: impl PgExecutor<'_>, id: Option<i64>, prefix: Option<&str>) -> sqlx::Result<Option<ApiKeyRow>> {
    sqlx::query_as!(
        ApiKeyRow,
        r#"UPDATE api_keys SET revoked_at = now()
           WHERE (id = $1 OR prefix = $2) AND revoked_at IS NULL
           RETURNING id, admin_id, name, prefix, scopes[1] AS "scope!", created_at, last_used_at, revoked_at"#,
        id,
        prefix
    )
    .fetch_optional(db)
    .await
}

/// Revokes every key of an admin (they were removed); how many.
pub async fn revoke_for_admin(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<u64> {
    let done =
        sqlx::query!("UPDATE api_keys SET revoked_at = now() WHERE admin_id = $1 AND revoked_at IS NULL", admin_id)
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}
