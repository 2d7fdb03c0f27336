//! Customers as the bot meets them: created on first contact with a language (from Telegram) and a currency
//! (from the shop's language → currency map) that is fixed from then on, so switching the bot's language never
//! changes what a customer pays.

use sqlx::PgPool;

use crate::config::Settings;
use crate::db::{self, users::UserRow};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::{Currency, Language};
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;

/// Who sent an update, as Telegram describes them.
#[derive(Debug, Clone)]
pub struct TelegramUser<'a> {
    pub telegram_id: i64,
    pub username: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub language_code: Option<&'a str>,
}

/// The currency the shop sells in to speakers of `lang`.
pub fn currency_for(settings: &Settings, lang: Language) -> Currency {
    settings.shop.currency.get(&lang).copied().unwrap_or(Currency::Usd)
}

/// The customer's currency: fixed when they were first met.
pub fn currency(settings: &Settings, user: &UserRow) -> Currency {
    user.currency.unwrap_or_else(|| currency_for(settings, user.language))
}

/// The customer behind an update, created on first contact with a language from Telegram's `language_code` and
/// the currency of that language. A customer met before currencies were fixed gets one now, from the language
/// they use.
pub async fn touch(pool: &PgPool, who: &TelegramUser<'_>, settings: &Settings) -> AppResult<UserRow> {
    let language = Language::from_ietf_tag(who.language_code, settings.shop.default_language);
    let currency = currency_for(settings, language);
    let mut user = db::users::upsert(pool, who.telegram_id, who.username, who.first_name, language, currency).await?;
    if user.currency.is_none() {
        user.currency = Some(db::users::fix_currency(pool, user.id, currency_for(settings, user.language)).await?);
    }
    Ok(user)
}

/// Changes the bot's language (prices stay in the customer's currency).
pub async fn set_language(pool: &PgPool, user_id: i64, language: Language) -> AppResult<()> {
    Ok(db::users::set_language(pool, user_id, language).await?)
}

/// Whether the banned customer should still be told (once).
pub async fn take_ban_notice(pool: &PgPool, user_id: i64) -> AppResult<bool> {
    Ok(db::users::take_ban_notice(pool, user_id).await?)
}

pub async fn find(pool: &PgPool, user_id: i64) -> AppResult<Option<UserRow>> {
    Ok(db::users::find(pool, user_id).await?)
}

/// Telegram ids of active admins (from the `admins` table).
pub async fn admin_telegram_ids(pool: &PgPool) -> AppResult<Vec<i64>> {
    Ok(db::admins::telegram_ids(pool).await?)
}

/// Whether this Telegram account belongs to one of the shop's admins (`telegram.admin_ids`, or an active admin
/// with this Telegram id).
pub async fn is_admin(pool: &PgPool, settings: &Settings, telegram_id: i64) -> AppResult<bool> {
    if settings.telegram.admin_ids.contains(&telegram_id) {
        return Ok(true);
    }
    Ok(admin_telegram_ids(pool).await?.contains(&telegram_id))
}

/// Adds an admin (or updates one with the same username), recorded in the audit log.
pub async fn add_admin(
    pool: &PgPool,
    username: &str,
    telegram_id: Option<i64>,
    role: &str,
) -> AppResult<db::admins::AdminRow> {
    let valid_name = !username.is_empty()
        && username.len() <= 64
        && username.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'));
    if !valid_name {
        return Err(AppError::invalid("an admin's username is 1-64 characters of A-Z, a-z, 0-9, _ . @ -"));
    }
    if !["owner", "admin", "viewer"].contains(&role) {
        return Err(AppError::invalid("the role is owner, admin or viewer"));
    }
    if telegram_id.is_some_and(|id| id <= 0) {
        return Err(AppError::invalid("a Telegram id is a positive number"));
    }
    let mut tx = pool.begin().await?;
    let admin = match db::admins::upsert(&mut *tx, username, telegram_id, role).await {
        Ok(admin) => admin,
        Err(e) if crate::error::violated_constraint(&e).is_some() => {
            return Err(AppError::conflict("another admin has this Telegram id"));
        }
        Err(e) => return Err(e.into()),
    };
    let id = admin.id.to_string();
    db::audit::record(
        &mut *tx,
        &db::audit::AuditEntry {
            actor_kind: "cli",
            actor_id: None,
            action: "admin.add",
            entity: "admin",
            entity_id: Some(&id),
            detail: serde_json::json!({ "username": username, "telegram_id": telegram_id, "role": role }),
            source_ip: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(admin)
}

pub async fn admins(pool: &PgPool) -> AppResult<Vec<db::admins::AdminRow>> {
    Ok(db::admins::list(pool).await?)
}

/// Disables an admin: their sessions, access tokens and API keys end for good (adding them again later does not
/// bring any back); false when there is no active one by that name.
pub async fn remove_admin(pool: &PgPool, username: &str) -> AppResult<bool> {
    let mut tx = pool.begin().await?;
    let Some(id) = db::admins::disable(&mut *tx, username).await? else { return Ok(false) };
    let sessions =
        db::admin_sessions::revoke_admin(&mut *tx, id).await? + db::dash_sessions::revoke_admin(&mut *tx, id).await?;
    let keys = db::api_keys::revoke_for_admin(&mut *tx, id).await?;
    let detail = serde_json::json!({ "username": username, "sessions_ended": sessions, "keys_revoked": keys });
    crate::services::audit::Who::cli().record(&mut tx, "admin.remove", "admin", id, detail).await?;
    tx.commit().await?;
    Ok(true)
}

/// A customer search as the admin API takes it: `q` is a Telegram id (digits) or a username prefix (with or
/// without `@`, any case).
pub fn parse_query(q: &str) -> AppResult<db::users::UserFilter> {
    let q = q.trim();
    let mut filter = db::users::UserFilter::default();
    if q.is_empty() {
        return Ok(filter);
    }
    if q.bytes().all(|b| b.is_ascii_digit()) {
        let id = q.parse::<i64>().map_err(|_| AppError::field("q", "a Telegram id is at most 19 digits"))?;
        filter.telegram_id = Some(id);
        return Ok(filter);
    }
    let name = q.strip_prefix('@').unwrap_or(q);
    if name.is_empty() || name.len() > 32 || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(AppError::field("q", "a Telegram id (digits) or a username (letters, digits, `_`; `@` optional)"));
    }
    filter.username_prefix = Some(name.to_ascii_lowercase());
    Ok(filter)
}

/// One page of customers (by id) matching `filter`.
pub async fn list(
    pool: &PgPool,
    filter: &db::users::UserFilter,
    page: &PageRequest,
) -> AppResult<(Vec<db::users::UserListRow>, Option<Cursor>)> {
    let rows = db::users::list(pool, filter, page).await?;
    Ok(page.cut(rows, |r| Cursor { key: r.id, id: r.id }))
}

/// A customer with their orders, payments and active subscriptions counted.
pub async fn detail(pool: &PgPool, id: i64) -> AppResult<(db::users::UserListRow, db::users::UserCounts)> {
    let user = db::users::find_listed(pool, id).await?.ok_or(AppError::NotFound("user"))?;
    let counts = db::users::counts(pool, id).await?;
    Ok((user, counts))
}

/// Bans a customer: the bot answers them with one notice and nothing else from then on. Banning a banned
/// customer changes nothing (and records nothing).
pub async fn ban(pool: &PgPool, id: i64, reason: &str, who: &Who) -> AppResult<db::users::UserListRow> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::field("reason", "1-500 characters"));
    }
    let mut tx = pool.begin().await?;
    let user = db::users::lock(&mut tx, id).await?.ok_or(AppError::NotFound("user"))?;
    if user.banned_at.is_none() {
        db::users::ban(&mut tx, id, reason).await?;
        who.record(&mut tx, "user.ban", "user", id, serde_json::json!({ "reason": reason })).await?;
    }
    let row = db::users::find_listed(&mut *tx, id).await?.ok_or(AppError::NotFound("user"))?;
    tx.commit().await?;
    Ok(row)
}

/// Lifts a ban; unbanning a customer who is not banned changes nothing (and records nothing).
pub async fn unban(pool: &PgPool, id: i64, who: &Who) -> AppResult<db::users::UserListRow> {
    let mut tx = pool.begin().await?;
    let user = db::users::lock(&mut tx, id).await?.ok_or(AppError::NotFound("user"))?;
    if user.banned_at.is_some() {
        db::users::unban(&mut tx, id).await?;
        who.record(&mut tx, "user.unban", "user", id, serde_json::json!({})).await?;
    }
    let row = db::users::find_listed(&mut *tx, id).await?.ok_or(AppError::NotFound("user"))?;
    tx.commit().await?;
    Ok(row)
}

/// A message to this Telegram chat was refused because the customer blocked the bot (or deleted their account).
pub async fn blocked_bot(pool: &PgPool, telegram_id: i64) -> AppResult<()> {
    if telegram_id > 0 {
        db::users::mark_blocked_bot(pool, telegram_id).await?;
    }
    Ok(())
}
