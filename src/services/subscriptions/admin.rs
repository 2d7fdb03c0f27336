//! What an operator does to a subscription through the admin API: list and inspect, extend, add data, revoke,
//! give a device a new link, replace the feed URL. Each change runs in one transaction that locks the row and
//! checks its state (the same functions the payments, the bot and `vpnshop subscription …` use), enqueues the
//! node work the same way, and records the caller in the audit log.
//!
//! Extending follows the state machine: an `active` subscription runs longer; an `expired` one comes back
//! (`expired → active`) with its clients, when it has data left; a `limited` one gets the days but stays
//! limited until data is added (its cap, not its time, stopped it); `pending` and `revoked` ones are refused
//! (409). Adding data works on `active` and `limited` ones with a cap (a limited one with data left comes back).

use sqlx::PgPool;

use super::{end_in, new_token, renew, reset_seat_in, top_up};
use crate::config::Settings;
use crate::db::{self, subscriptions::SubscriptionFilter, subscriptions::SubscriptionRow};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::status::SubscriptionStatus;
use crate::error::{AppError, AppResult};
use crate::services::access::{self, SeatLink};
use crate::services::audit::Who;

/// The most days one extension may add.
pub const MAX_EXTEND_DAYS: i32 = 3650;
/// The most data one top-up may add: 100 TiB.
pub const MAX_ADD_BYTES: i64 = 100 << 40;
/// The longest reason a revocation may give.
pub const MAX_REASON_CHARS: usize = 500;

/// A page of subscriptions (in id order) and the cursor of the next one.
pub async fn list(
    pool: &PgPool,
    filter: &SubscriptionFilter,
    page: &PageRequest,
) -> AppResult<(Vec<SubscriptionRow>, Option<Cursor>)> {
    let rows = db::subscriptions::list(pool, filter, page).await?;
    Ok(page.cut(rows, |s| Cursor { key: s.id, id: s.id }))
}

/// One subscription in full: usage, the feed URL and each device's link.
#[derive(Debug, Clone)]
pub struct Detail {
    pub sub: SubscriptionRow,
    pub up_bytes: i64,
    pub down_bytes: i64,
    pub feed_url: String,
    pub devices: Vec<SeatLink>,
}

pub async fn get(pool: &PgPool, settings: &Settings, id: i64) -> AppResult<Detail> {
    let sub = db::subscriptions::find(pool, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let (up_bytes, down_bytes) = access::usage(pool, id).await?;
    let devices = access::links(pool, &sub, &settings.provision.shop_name).await?;
    let feed_url = access::feed_url(settings, &sub.token);
    Ok(Detail { sub, up_bytes, down_bytes, feed_url, devices })
}

/// Adds `days` (1–3650) to its end; see the module docs for which states may be extended.
pub async fn extend(pool: &PgPool, settings: &Settings, id: i64, days: i64, who: &Who) -> AppResult<Detail> {
    let days = i32::try_from(days)
        .ok()
        .filter(|d| (1..=MAX_EXTEND_DAYS).contains(d))
        .ok_or_else(|| AppError::field("days", format!("between 1 and {MAX_EXTEND_DAYS}")))?;
    let mut tx = pool.begin().await?;
    let before = db::subscriptions::lock(&mut tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    renew(&mut tx, id, days, None, &settings.jobs).await?;
    let after = db::subscriptions::find(&mut *tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let detail = serde_json::json!({
        "days": days,
        "from": before.status.as_str(),
        "to": after.status.as_str(),
        "expires_at": after.expires_at,
    });
    who.record(&mut tx, "subscription.extend", "subscription", id, detail).await?;
    tx.commit().await?;
    get(pool, settings, id).await
}

/// Adds `bytes` (1 byte – 100 TiB) to its data cap; `field` names the input for errors.
pub async fn add_data(
    pool: &PgPool,
    settings: &Settings,
    id: i64,
    bytes: i64,
    field: &str,
    who: &Who,
) -> AppResult<Detail> {
    if !(1..=MAX_ADD_BYTES).contains(&bytes) {
        return Err(AppError::field(field, "positive, at most 100 TiB"));
    }
    let mut tx = pool.begin().await?;
    let before = db::subscriptions::lock(&mut tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    top_up(&mut tx, id, bytes, &settings.jobs).await?;
    let after = db::subscriptions::find(&mut *tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let detail = serde_json::json!({
        "bytes": bytes,
        "from": before.status.as_str(),
        "to": after.status.as_str(),
        "data_cap_bytes": after.data_cap_bytes,
    });
    who.record(&mut tx, "subscription.add_data", "subscription", id, detail).await?;
    tx.commit().await?;
    get(pool, settings, id).await
}

/// Ends it now (`→ revoked`): its clients leave the node and the customer is told. A conflict when it has
/// ended that way already.
pub async fn revoke(pool: &PgPool, settings: &Settings, id: i64, reason: &str, who: &Who) -> AppResult<Detail> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        return Err(AppError::field("reason", format!("1 to {MAX_REASON_CHARS} characters")));
    }
    let mut tx = pool.begin().await?;
    let before = db::subscriptions::lock(&mut tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    if !end_in(&mut tx, id, SubscriptionStatus::Revoked, reason, true, &settings.jobs).await? {
        return Err(AppError::conflict(format!("the subscription is {} and cannot be revoked", before.status)));
    }
    let detail = serde_json::json!({ "from": before.status.as_str(), "reason": reason });
    who.record(&mut tx, "subscription.revoke", "subscription", id, detail).await?;
    tx.commit().await?;
    metrics::counter!("vpnshop_subscription_transitions_total", "to" => "revoked").increment(1);
    get(pool, settings, id).await
}

/// Gives device `seat` a new link (and the subscription a new feed URL); active subscriptions only.
pub async fn reset_seat(pool: &PgPool, settings: &Settings, id: i64, seat: i64, who: &Who) -> AppResult<Detail> {
    let seat = i32::try_from(seat)
        .ok()
        .filter(|s| (1..=100).contains(s))
        .ok_or_else(|| AppError::field("seat", "a device number, 1 to 100"))?;
    let mut tx = pool.begin().await?;
    let client = reset_seat_in(&mut tx, id, seat, &settings.jobs).await?;
    let detail = serde_json::json!({ "seat": seat, "client_id": client });
    who.record(&mut tx, "subscription.reset_seat", "subscription", id, detail).await?;
    tx.commit().await?;
    get(pool, settings, id).await
}

/// Replaces the feed URL: the old one answers 404 from now on.
pub async fn rotate_url(pool: &PgPool, settings: &Settings, id: i64, who: &Who) -> AppResult<Detail> {
    let mut tx = pool.begin().await?;
    db::subscriptions::lock(&mut tx, id).await?.ok_or(AppError::NotFound("subscription"))?;
    db::subscriptions::set_token(&mut tx, id, &new_token()).await?;
    who.record(&mut tx, "subscription.rotate_feed", "subscription", id, serde_json::json!({})).await?;
    tx.commit().await?;
    get(pool, settings, id).await
}
