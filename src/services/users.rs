//! Customers as the bot meets them.

use sqlx::PgPool;

use crate::db::{self, users::UserRow};
use crate::domain::Language;
use crate::error::AppResult;

/// Who sent an update, as Telegram describes them.
#[derive(Debug, Clone)]
pub struct TelegramUser<'a> {
    pub telegram_id: i64,
    pub username: Option<&'a str>,
    pub first_name: Option<&'a str>,
    pub language_code: Option<&'a str>,
}

/// The customer behind an update, created on first contact with a language from Telegram's `language_code`.
pub async fn touch(pool: &PgPool, who: &TelegramUser<'_>, fallback: Language) -> AppResult<UserRow> {
    let language = Language::from_ietf_tag(who.language_code, fallback);
    Ok(db::users::upsert(pool, who.telegram_id, who.username, who.first_name, language).await?)
}

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
