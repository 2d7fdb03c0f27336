//! The free trial (what the old prototype called `create_temp_plan` / `grant_temp_plan`): once per Telegram
//! account for life, granted at once through the same subscription path as paid plans, and rate-limited per
//! customer and across all customers.

use std::time::Duration;

use sqlx::PgPool;

use crate::config::Settings;
use crate::db::{self, users::UserRow};
use crate::domain::PlanSpec;
use crate::error::{AppError, AppResult};
use crate::services::ratelimit::RateLimiter;
use crate::services::shop;
use crate::services::subscriptions::{self, NewSubscription};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    /// A pending trial subscription was created; it goes live like a paid one.
    Granted { subscription_id: i64 },
    /// This account already had its trial.
    AlreadyUsed,
    /// Too many trial requests (from this customer, or from everyone right now).
    RateLimited { retry_after: Duration },
    /// No node of that location can take it now.
    Unavailable,
    /// The shop offers no trials.
    Disabled,
}

pub async fn grant(
    pool: &PgPool,
    limiter: &RateLimiter,
    settings: &Settings,
    user: &UserRow,
    location: &str,
) -> AppResult<TrialOutcome> {
    let t = &settings.trial;
    if !t.enabled {
        return Ok(TrialOutcome::Disabled);
    }
    if user.trial_used_at.is_some() {
        return Ok(TrialOutcome::AlreadyUsed);
    }
    if let Err(limited) =
        limiter.hit(&format!("trial:user:{}", user.id), t.user_max, Duration::from_secs(t.user_window_secs)).await
    {
        return Ok(TrialOutcome::RateLimited { retry_after: limited.retry_after });
    }
    let offer = match shop::location(pool, location).await {
        Ok(offer) => offer,
        Err(AppError::NotFound(_)) => return Ok(TrialOutcome::Unavailable),
        Err(e) => return Err(e),
    };
    if offer.free_seats < i64::from(t.devices) {
        return Ok(TrialOutcome::Unavailable);
    }
    if let Err(limited) = limiter.hit("trial:global", t.global_max, Duration::from_secs(t.global_window_secs)).await {
        return Ok(TrialOutcome::RateLimited { retry_after: limited.retry_after });
    }
    let data = t.data_cap().map_err(|e| AppError::Internal(e.into()))?;
    let spec = PlanSpec {
        location_code: location.to_owned(),
        duration_days: t.duration_days,
        seats: t.devices,
        data_cap: data,
        is_trial: true,
    };
    let mut tx = pool.begin().await?;
    db::users::lock(&mut tx, user.id).await?;
    if !db::users::take_trial(&mut tx, user.id).await? {
        return Ok(TrialOutcome::AlreadyUsed);
    }
    let plan_id = db::plans::upsert_trial(&mut tx, &spec).await?;
    let new = NewSubscription {
        user_id: user.id,
        order_id: None,
        plan_id,
        location_code: location.to_owned(),
        is_trial: true,
        seats: t.devices,
        duration_days: t.duration_days,
        data_cap_bytes: data.to_db(),
    };
    let subscription_id = subscriptions::create(&mut tx, &new, &settings.jobs).await?;
    tx.commit().await?;
    metrics::counter!("vpnshop_trials_granted_total").increment(1);
    Ok(TrialOutcome::Granted { subscription_id })
}
