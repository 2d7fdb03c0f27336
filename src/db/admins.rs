//! The `admins` table.

use sqlx::PgExecutor;

/// Telegram ids of active admins who have one.
pub async fn telegram_ids(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"SELECT telegram_id AS "id!" FROM admins WHERE telegram_id IS NOT NULL AND disabled_at IS NULL ORDER BY id"#
    )
    .fetch_all(db)
    .await
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminRow {
    pub id: i64,
    pub username: String,
    pub telegram_id: Option<i64>,
    pub role: String,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The active admin with this Telegram id, if any.
pub async fn by_telegram_id(db: impl PgExecutor<'_>, telegram_id: i64) -> sqlx::Result<Option<AdminRow>> {
    sqlx::query_as!(
        AdminRow,
        "SELECT id, username, telegram_id, role, disabled_at FROM admins WHERE telegram_id = $1 AND disabled_at IS NULL",
        telegram_id
    )
    .fetch_optional(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<AdminRow>> {
    sqlx::query_as!(AdminRow, "SELECT id, username, telegram_id, role, disabled_at FROM admins ORDER BY id")
        .fetch_all(db)
        .await
}

/// Adds an admin, or (same username) gives an existing one this Telegram id and role and enables them again.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    username: &str,
    telegram_id: Option<i64>,
    role: &str,
) -> sqlx::Result<AdminRow> {
    sqlx::query_as!(
        AdminRow,
        "INSERT INTO admins (username, telegram_id, role) VALUES ($1, $2, $3)
         ON CONFLICT (username) DO UPDATE SET telegram_id = COALESCE(EXCLUDED.telegram_id, admins.telegram_id),
                                             role = EXCLUDED.role, disabled_at = NULL
         RETURNING id, username, telegram_id, role, disabled_at",
        username,
        telegram_id,
        role
    )
    .fetch_one(db)
    .await
}

/// Disables an admin (kept for the audit trail) and ends their access tokens; their id, or None if there is no
/// enabled one by that name.
pub async fn disable(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        "UPDATE admins SET disabled_at = now(), tokens_valid_after = now()
          WHERE username = $1 AND disabled_at IS NULL RETURNING id",
        username
    )
    .fetch_optional(db)
    .await
}

/// What sign-in needs of an admin.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub id: i64,
    pub username: String,
    pub role: String,
    pub password_hash: Option<String>,
    pub disabled_at: Option<chrono::DateTime<chrono::Utc>>,
}

pub async fn credentials(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<Option<Credentials>> {
    sqlx::query_as!(
        Credentials,
        "SELECT id, username, role, password_hash, disabled_at FROM admins WHERE username = $1",
        username
    )
    .fetch_optional(db)
    .await
}

/// An enabled admin by id with the instant before which their access tokens no longer count.
pub async fn active_by_id(
    db: impl PgExecutor<'_>,
    id: i64,
) -> sqlx::Result<Option<(AdminRow, chrono::DateTime<chrono::Utc>)>> {
    let row = sqlx::query!(
        r#"SELECT id, username, telegram_id, role, disabled_at,
                  extract(epoch FROM tokens_valid_after)::float8 AS "valid_after!"
           FROM admins WHERE id = $1 AND disabled_at IS NULL"#,
        id
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        let after = if r.valid_after.is_finite() {
            chrono::DateTime::from_timestamp_micros((r.valid_after * 1e6) as i64).unwrap_or_default()
        } else {
            chrono::DateTime::<chrono::Utc>::MIN_UTC
        };
        (
            AdminRow {
                id: r.id,
                username: r.username,
                telegram_id: r.telegram_id,
                role: r.role,
                disabled_at: r.disabled_at,
            },
            after,
        )
    }))
}

/// Sets an admin's password hash and ends their sessions (tokens issued before now stop counting).
pub async fn set_password(db: impl PgExecutor<'_>, id: i64, password_hash: &str) -> sqlx::Result<()> {
    sqlx::query!("UPDATE admins SET password_hash = $2, tokens_valid_after = now() WHERE id = $1", id, password_hash)
        .execute(db)
        .await?;
    Ok(())
}

/// Access tokens issued before now no longer count for this admin.
pub async fn end_tokens(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE admins SET tokens_valid_after = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}
