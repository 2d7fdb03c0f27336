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
