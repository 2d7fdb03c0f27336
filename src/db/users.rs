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
                  -- writing to the bot means it is not blocked (any more)
                  blocked_bot_at = NULL,
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

/// A customer as the admin API lists them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserListRow {
    pub id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub first_name: Option<String>,
    pub language: Language,
    pub currency: Option<Currency>,
    pub created_at: DateTime<Utc>,
    pub banned_at: Option<DateTime<Utc>>,
    pub ban_reason: Option<String>,
    pub trial_used_at: Option<DateTime<Utc>>,
    pub blocked_bot_at: Option<DateTime<Utc>>,
}

/// How to find customers: every given filter must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub telegram_id: Option<i64>,
    /// Lowercase username prefix (ASCII letters, digits, `_`), matched against `lower(username)`.
    pub username_prefix: Option<String>,
    pub banned: Option<bool>,
    pub language: Option<Language>,
    /// Lowercase text found anywhere in the first name or the username.
    pub name_contains: Option<String>,
}

/// One page of customers by id (`page.after`'s key is the id).
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &UserFilter,
    page: &crate::domain::page::PageRequest,
) -> sqlx::Result<Vec<UserListRow>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
        "SELECT id, telegram_id, username, first_name, language, currency, created_at, banned_at, ban_reason,
                trial_used_at, blocked_bot_at
           FROM users WHERE TRUE",
    );
    if let Some(id) = filter.telegram_id {
        q.push(" AND telegram_id = ").push_bind(id);
    }
    if let Some(prefix) = &filter.username_prefix {
        // a range over the text_pattern_ops index: prefix <= lower(username) < prefix with its last byte + 1
        let mut upper = prefix.clone().into_bytes();
        if let Some(last) = upper.last_mut() {
            *last += 1;
        }
        let upper = String::from_utf8(upper).unwrap_or_default();
        q.push(" AND lower(username) ~>=~ ").push_bind(prefix.clone());
        q.push(" AND lower(username) ~<~ ").push_bind(upper);
    }
    if let Some(text) = &filter.name_contains {
        // strpos, not LIKE: the operator's text is matched as it is (no wildcards)
        q.push(" AND (strpos(lower(coalesce(first_name, '')), ").push_bind(text.clone());
        q.push(") > 0 OR strpos(lower(coalesce(username, '')), ").push_bind(text.clone()).push(") > 0)");
    }
    match filter.banned {
        Some(true) => {
            q.push(" AND banned_at IS NOT NULL");
        }
        Some(false) => {
            q.push(" AND banned_at IS NULL");
        }
        None => {}
    }
    if let Some(language) = filter.language {
        q.push(" AND language = ").push_bind(language.as_str());
    }
    if let Some(after) = page.after {
        q.push(" AND id ").push(page.op()).push(" ").push_bind(after.id);
    }
    q.push(" ORDER BY id ").push(page.dir()).push(" LIMIT ").push_bind(page.fetch());
    q.build_query_as().fetch_all(db).await
}

pub async fn find_listed(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<UserListRow>> {
    sqlx::query_as!(
        UserListRow,
        r#"SELECT id, telegram_id, username, first_name, language AS "language: Language",
                  currency AS "currency: Currency", created_at, banned_at, ban_reason, trial_used_at, blocked_bot_at
             FROM users WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// A customer's orders, payments and active subscriptions, counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCounts {
    pub orders: i64,
    pub payments: i64,
    pub active_subscriptions: i64,
}

pub async fn counts(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<UserCounts> {
    sqlx::query_as!(
        UserCounts,
        r#"SELECT (SELECT count(*) FROM orders WHERE user_id = $1) AS "orders!",
                  (SELECT count(*) FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.user_id = $1)
                      AS "payments!",
                  (SELECT count(*) FROM subscriptions WHERE user_id = $1 AND status = 'active')
                      AS "active_subscriptions!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// Bans a customer (the ban notice goes out again on their next message).
pub async fn ban(conn: &mut PgConnection, id: i64, reason: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET banned_at = now(), ban_reason = $2, ban_notified_at = NULL, updated_at = now() WHERE id = $1",
        id,
        reason
    )
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn unban(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET banned_at = NULL, ban_reason = NULL, ban_notified_at = NULL, updated_at = now() WHERE id = $1",
        id
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// The customer with this Telegram id blocked the bot (a message to them got 403): left out of broadcasts until
/// they write again.
pub async fn mark_blocked_bot(db: impl PgExecutor<'_>, telegram_id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE users SET blocked_bot_at = now() WHERE telegram_id = $1 AND blocked_bot_at IS NULL",
        telegram_id
    )
    .execute(db)
    .await?;
    Ok(())
}
