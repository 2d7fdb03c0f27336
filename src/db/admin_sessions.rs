//! The `admin_sessions` table: refresh tokens of admin API sessions (as SHA-256), in families that rotate.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: i64,
    pub admin_id: i64,
    pub family: Uuid,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub async fn insert(
    db: impl PgExecutor<'_>,
    admin_id: i64,
    family: Uuid,
    token_hash: &str,
    expires_at: DateTime<Utc>,
    source_ip: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO admin_sessions (admin_id, family, token_hash, expires_at, source_ip) VALUES ($1, $2, $3, $4, $5)",
        admin_id,
        family,
        token_hash,
        expires_at,
        source_ip
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The session of this refresh token, locked for the caller's transaction.
pub async fn lock_by_hash(db: impl PgExecutor<'_>, token_hash: &str) -> sqlx::Result<Option<SessionRow>> {
    sqlx::query_as!(
        SessionRow,
        "SELECT id, admin_id, family, expires_at, used_at, revoked_at FROM admin_sessions WHERE token_hash = $1 FOR UPDATE",
        token_hash
    )
    .fetch_optional(db)
    .await
}

pub async fn mark_used(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE admin_sessions SET used_at = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}

/// Revokes every token of a family (sign out, or a retired token used again).
pub async fn revoke_family(db: impl PgExecutor<'_>, family: Uuid) -> sqlx::Result<u64> {
    let done =
        sqlx::query!("UPDATE admin_sessions SET revoked_at = now() WHERE family = $1 AND revoked_at IS NULL", family)
            .execute(db)
            .await?;
    Ok(done.rows_affected())
}

/// Revokes every session of an admin.
pub async fn revoke_admin(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE admin_sessions SET revoked_at = now() WHERE admin_id = $1 AND revoked_at IS NULL",
        admin_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
