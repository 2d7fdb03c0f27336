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

/// Disables an admin (kept for the audit trail); false if there is none by that name.
pub async fn disable(db: impl PgExecutor<'_>, username: &str) -> sqlx::Result<bool> {
    let done =
        sqlx::query!("UPDATE admins SET disabled_at = now() WHERE username = $1 AND disabled_at IS NULL", username)
            .execute(db)
            .await?;
    Ok(done.rows_affected() == 1)
}
