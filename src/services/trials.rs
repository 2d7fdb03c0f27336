//! The free trial (what the old prototype called `create_temp_plan` / `grant_temp_plan`): once per Telegram
//! account for life, granted at once through the same subscription path as paid plans, and rate-limited per
//! customer and across all customers. A trial that cannot be set up right now (provisioning is off, or no
//! enabled, reachable node of its location has room for it) is granted all the same and says so: it waits in the
//! placement queue, the admins are alerted (once an hour per location and reason), and the customer gets the
//! usual "ready" message with the link when it is placed.

use std::time::Duration;

use sqlx::PgPool;

use crate::config::Settings;
use crate::db::{self, users::UserRow};
use crate::domain::PlanSpec;
use crate::error::{AppError, AppResult};
use crate::services::notify;
use crate::services::ratelimit::RateLimiter;
use crate::services::shop;
use crate::services::subscriptions::{self, NewSubscription};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrialOutcome {
    /// A pending trial subscription was created; it goes live like a paid one. `queued` when it cannot be set
    /// up right now (it waits for a node; the admins were told).
    Granted { subscription_id: i64, queued: Option<Queued> },
    /// This account already had its trial.
    AlreadyUsed,
    /// Too many trial requests (from this customer, or from everyone right now).
    RateLimited { retry_after: Duration },
    /// No node of that location can take it now.
    Unavailable,
    /// The shop offers no trials.
    Disabled,
}

/// Why a new subscription waits instead of being set up at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queued {
    /// No SSH key: nothing is provisioned at all.
    ProvisioningOff,
    /// No enabled node of the location that is not down has room for all its devices.
    NoRoom,
}

impl Queued {
    fn alert(self, location: &str, devices: i32) -> (&'static str, String) {
        match self {
            Queued::ProvisioningOff => (
                "provisioning-off",
                "Trials are waiting: provisioning is off (set provision.ssh_key_path or VPNSHOP__PROVISION__SSH_KEY)."
                    .to_owned(),
            ),
            Queued::NoRoom => (
                "no-room",
                format!(
                    "Trials in {location} are waiting: no enabled, reachable node there has room for {devices} \
                     devices. Add a node or raise a node's capacity."
                ),
            ),
        }
    }
}

/// Whether a subscription of `seats` devices in `location` can be set up now.
async fn queued(pool: &PgPool, settings: &Settings, location: &str, seats: i32) -> AppResult<Option<Queued>> {
    let p = &settings.provision;
    if p.ssh_key.is_none() && p.ssh_key_path.is_none() {
        return Ok(Some(Queued::ProvisioningOff));
    }
    let room = db::locations::room_on_one_node(pool, location).await?;
    Ok((room < i64::from(seats)).then_some(Queued::NoRoom))
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
    let queued = queued(pool, settings, location, t.devices).await?;
    if let Some(why) = queued {
        let (reason, text) = why.alert(location, t.devices);
        let key = format!("trial-queued:{reason}:{location}:{}", chrono::Utc::now().format("%Y%m%d%H"));
        notify::enqueue_admin_alert(&mut *tx, &key, &text, &settings.jobs).await?;
    }
    tx.commit().await?;
    metrics::counter!("vpnshop_trials_granted_total").increment(1);
    Ok(TrialOutcome::Granted { subscription_id, queued })
}
