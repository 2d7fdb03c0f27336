//! The `dash_sessions` table: dashboard sign-ins, found by the SHA-256 of their cookie.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

/// A live session with the admin it belongs to (enabled, and signed in after their `tokens_valid_after`).
#[derive(Debug, Clone, PartialEq)]
pub struct LiveSession {
    pub id: i64,
    pub admin_id: i64,
    pub username: String,
    pub role: String,
    pub csrf_token: String,
    pub stage: String,
    pub last_seen_at: DateTime<Utc>,
}

/// A session as its owner sees it in the list of their sign-ins.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionInfo {
    pub id: i64,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
}

#[allow(clippy::too_many_arguments)]
pub async fn insert(
    db: impl PgExecutor<'_>,
    admin_id: i64,
    token_hash: &str,
    csrf_token: &str,
    stage: &str,
    expires_at: DateTime<Utc>,
    source_ip: Option<&str>,
    user_agent: Option<&str>,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO dash_sessions (admin_id, token_hash, csrf_token, stage, expires_at, source_ip, user_agent)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        admin_id,
        token_hash,
        csrf_token,
        stage,
        expires_at,
        source_ip,
        user_agent
    )
    .fetch_one(db)
    .await
}

/// The live session of this cookie: not revoked, not expired, not idle longer than `idle_secs`, its admin enabled
/// and not signed out everywhere since it began.
pub async fn live_by_hash(
    db: impl PgExecutor<'_>,
    token_hash: &str,
    idle_secs: i64,
) -> sqlx::Result<Option<LiveSession>> {
    sqlx::query_as!(
        LiveSession,
        r#"SELECT s.id, s.admin_id, a.username, a.role, s.csrf_token, s.stage, s.last_seen_at
           FROM dash_sessions s JOIN admins a ON a.id = s.admin_id
           WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
             AND s.last_seen_at > now() - make_interval(secs => $2::bigint::float8)
             AND a.disabled_at IS NULL AND s.created_at > a.tokens_valid_after"#,
        token_hash,
        idle_secs
    )
    .fetch_optional(db)
    .await
}

/// Marks the session as seen now (it stays signed in while used).
pub async fn touch(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE dash_sessions SET last_seen_at = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}

/// Completes the second factor: the session becomes active under a new cookie (the old one stops working).
pub async fn promote(
    db: impl PgExecutor<'_>,
    id: i64,
    new_token_hash: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE dash_sessions SET stage = 'active', token_hash = $2, expires_at = $3, last_seen_at = now()
         WHERE id = $1 AND stage = 'second_factor' AND revoked_at IS NULL",
        id,
        new_token_hash,
        expires_at
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE dash_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", id)
        .execute(db)
        .await?;
    Ok(())
}

/// Revokes one of an admin's own sessions; false when it is not theirs or already over.
pub async fn revoke_own(db: impl PgExecutor<'_>, admin_id: i64, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE dash_sessions SET revoked_at = now() WHERE id = $1 AND admin_id = $2 AND revoked_at IS NULL",
        id,
        admin_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn revoke_admin(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE dash_sessions SET revoked_at = now() WHERE admin_id = $1 AND revoked_at IS NULL",
        admin_id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// An admin's sessions that are still open, newest first.
pub async fn open_for_admin(db: impl PgExecutor<'_>, admin_id: i64) -> sqlx::Result<Vec<SessionInfo>> {
    sqlx::query_as!(
        SessionInfo,
        "SELECT id, created_at, last_seen_at, source_ip, user_agent FROM dash_sessions
         WHERE admin_id = $1 AND revoked_at IS NULL AND expires_at > now() AND stage = 'active'
         ORDER BY last_seen_at DESC LIMIT 50",
        admin_id
    )
    .fetch_all(db)
    .await
}
