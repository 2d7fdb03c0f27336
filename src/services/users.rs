//! Customers as the bot meets them: created on first contact with a language (from Telegram) and a currency
//! (from the shop's language → currency map) that is fixed from then on, so switching the bot's language never
//! changes what a customer pays.

use sqlx::PgPool;

use crate::config::Settings;
use crate::db::{self, users::UserRow};
use crate::domain::{Currency, Language};
use crate::error::AppResult;

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
