//! The `users` table: Telegram customers.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::domain::{Currency, Language};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRow {
    pub id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub language: Language,
    pub language_chosen: bool,
    /// The currency the customer sees and pays in (fixed when first met; `None` only for customers met before).
    pub currency: Option<Currency>,
    pub banned_at: Option<DateTime<Utc>>,
    pub ban_notified_at: Option<DateTime<Utc>>,
    pub trial_used_at: Option<DateTime<Utc>>,
}

/// Inserts the user on first contact or refreshes their name; the language and currency are only set on insert.
pub async fn upsert(
    db: impl PgExecutor<'_>,
    telegram_id: i64,
    username: Option<&str>,
    first_name: Option<&str>,
    language: Language,
    currency: Currency,
) -> sqlx::Result<UserRow> {
    sqlx::query_as!(
        UserRow,
        r#"INSERT INTO users (telegram_id, username, first_name, language, currency) VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (telegram_id) DO UPDATE
              SET username = EXCLUDED.username, first_name = EXCLUDED.first_name,
                  updated_at = CASE WHEN (users.username, users.first_name) IS DISTINCT FROM
                                         (EXCLUDED.username, EXCLUDED.first_name) THEN now() ELSE users.updated_at END
           RETURNING id, telegram_id, username, first_name, language AS "language: Language", language_chosen,
                     currency AS "currency: Currency", banned_at, ban_notified_at, trial_used_at"#,
        telegram_id,
        username,
        first_name,
        language.as_str(),
        currency.as_str(),
    )
    .fetch_one(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, telegram_id, username, first_name, language AS "language: Language", language_chosen,
                  currency AS "currency: Currency", banned_at, ban_notified_at, trial_used_at
             FROM users WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as!(
        UserRow,
        r#"SELECT id, telegram_id, username, first_name, language AS "language: Language", language_chosen,
                  currency AS "currency: Currency", banned_at, ban_notified_at, trial_used_at
             FROM users WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await
}

pub async fn set_language(db: impl PgExecutor<'_>, id: i64, language: Language) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET language = $2, language_chosen = TRUE, updated_at = now() WHERE id = $1",
        id,
        language.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Fixes the currency of a customer who has none yet (met before currencies were fixed); returns the one they
/// have now.
pub async fn fix_currency(db: impl PgExecutor<'_>, id: i64, currency: Currency) -> sqlx::Result<Currency> {
    sqlx::query_scalar!(
        r#"UPDATE users SET currency = COALESCE(currency, $2) WHERE id = $1 RETURNING currency AS "currency!: Currency""#,
        id,
        currency.as_str()
    )
    .fetch_one(db)
    .await
}

/// Marks the ban notice as sent; false if it was sent before.
pub async fn take_ban_notice(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE users SET ban_notified_at = now() WHERE id = $1 AND banned_at IS NOT NULL AND ban_notified_at IS NULL",
        id
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the trial as used; false if it already was (the first one wins).
pub async fn take_trial(conn: &mut PgConnection, id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!("UPDATE users SET trial_used_at = now() WHERE id = $1 AND trial_used_at IS NULL", id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}
