//! Renewals and data top-ups of a subscription. Whether the subscription can take one is checked before a draft
//! is made (so nobody pays for what would be refused) and again when the order is submitted: a renewal for an
//! active, limited or expired paid subscription; a top-up for an active or limited one with a data cap.
//!
//! A renewal costs what its plan costs now while the plan is on sale (and priced in the order's currency); a
//! plan taken off sale is renewed at the price the customer paid for it (the original order's snapshot, converted
//! through the catalogue's rates when the currency differs). A top-up is priced like the plan on sale it names.

use sqlx::PgPool;

use super::{Draft, Quote, RENEWAL, TOPUP, new_draft};
use crate::db::{self, subscriptions::SubscriptionRow};
use crate::domain::draft::Selection;
use crate::domain::status::SubscriptionStatus;
use crate::domain::{Currency, DataCap, Money, Rates};
use crate::error::{AppError, AppResult};
use crate::services::shop::{PlanOption, price_in};

/// Why a renewal or top-up cannot be bought: each has its own message for the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A free trial is neither renewed nor topped up.
    Trial,
    /// Not set up yet.
    Pending,
    /// Ended by the shop.
    Revoked,
    /// Data for an expired subscription: renew it first.
    Expired,
    /// Unlimited data already.
    Unlimited,
    /// No price in the order's currency, and none to convert from.
    NoPrice,
}

fn renewable(sub: &SubscriptionRow) -> Result<(), Refusal> {
    match sub.status {
        _ if sub.is_trial => Err(Refusal::Trial),
        SubscriptionStatus::Pending => Err(Refusal::Pending),
        SubscriptionStatus::Revoked => Err(Refusal::Revoked),
        SubscriptionStatus::Active | SubscriptionStatus::Limited | SubscriptionStatus::Expired => Ok(()),
    }
}

fn toppable(sub: &SubscriptionRow) -> Result<(), Refusal> {
    match sub.status {
        _ if sub.is_trial => Err(Refusal::Trial),
        SubscriptionStatus::Pending => Err(Refusal::Pending),
        SubscriptionStatus::Revoked => Err(Refusal::Revoked),
        SubscriptionStatus::Expired => Err(Refusal::Expired),
        _ if sub.data_cap_bytes.is_none() => Err(Refusal::Unlimited),
        SubscriptionStatus::Active | SubscriptionStatus::Limited => Ok(()),
    }
}

async fn owned_subscription(pool: &PgPool, user_id: i64, id: i64) -> AppResult<SubscriptionRow> {
    db::subscriptions::find(pool, id).await?.filter(|s| s.user_id == user_id).ok_or(AppError::NotFound("subscription"))
}

/// Starts a renewal in `currency`: the same plan again, straight to the summary.
pub async fn start_renewal(
    pool: &PgPool,
    user_id: i64,
    subscription_id: i64,
    currency: Currency,
) -> AppResult<Result<Draft, Refusal>> {
    let sub = owned_subscription(pool, user_id, subscription_id).await?;
    if let Err(refusal) = renewable(&sub) {
        return Ok(Err(refusal));
    }
    let plan = plan_option(pool, sub.plan_id).await?;
    let selection = Selection {
        location: Some(sub.location_code),
        duration_days: Some(plan.duration_days),
        seats: Some(plan.seats),
        data: Some(plan.data),
        method: None,
    };
    new_draft(pool, user_id, RENEWAL, Some(subscription_id), &selection, currency).await.map(Ok)
}

/// Starts buying more data in `currency`: the subscription's location, 30 days' worth of the chosen data tier.
pub async fn start_topup(
    pool: &PgPool,
    user_id: i64,
    subscription_id: i64,
    currency: Currency,
) -> AppResult<Result<Draft, Refusal>> {
    let sub = owned_subscription(pool, user_id, subscription_id).await?;
    if let Err(refusal) = toppable(&sub) {
        return Ok(Err(refusal));
    }
    let selection = Selection {
        location: Some(sub.location_code),
        duration_days: Some(30),
        seats: Some(sub.seats),
        data: None,
        method: None,
    };
    new_draft(pool, user_id, TOPUP, Some(subscription_id), &selection, currency).await.map(Ok)
}

/// Whether a draft's subscription can still take it (it may have ended since the draft started).
pub(super) async fn still_possible(pool: &PgPool, draft: &Draft) -> AppResult<Result<(), Refusal>> {
    let Some(id) = draft.subscription_id else { return Ok(Ok(())) };
    let sub = db::subscriptions::find(pool, id).await?.ok_or(AppError::NotFound("subscription"))?;
    Ok(match draft.kind.as_str() {
        RENEWAL => renewable(&sub),
        TOPUP => toppable(&sub),
        _ => Ok(()),
    })
}

/// A plan (on sale or not) as the shop describes it, with its prices.
async fn plan_option(pool: &PgPool, plan_id: i64) -> AppResult<PlanOption> {
    let plan =
        db::plans::list(pool, false).await?.into_iter().find(|p| p.id == plan_id).ok_or(AppError::NotFound("plan"))?;
    Ok(PlanOption {
        plan_id: plan.id,
        duration_days: plan.duration_days,
        seats: plan.seats,
        data: DataCap::from_db(plan.data_cap_bytes).map_err(|e| AppError::Internal(e.into()))?,
        prices: if plan.active { plan.prices } else { Vec::new() },
    })
}

/// A renewal's price: its plan's price now while it is on sale, else what the customer paid for it.
pub(super) async fn renewal_quote(
    pool: &PgPool,
    draft: &Draft,
    currency: Currency,
    rates: Option<&Rates>,
) -> AppResult<Result<Quote, Refusal>> {
    let id = draft.subscription_id.ok_or_else(|| AppError::invalid("a renewal names its subscription"))?;
    let sub = db::subscriptions::find(pool, id).await?.ok_or(AppError::NotFound("subscription"))?;
    let plan = plan_option(pool, sub.plan_id).await?;
    if let Some(price) = plan.price_in(currency, rates) {
        return Ok(Ok(Quote { plan, price }));
    }
    let paid = match sub.order_id {
        Some(order) => db::orders::find(pool, order).await?,
        None => None,
    };
    let snapshot = paid.and_then(|o| Money::from_minor(o.amount_minor?, o.currency?).ok());
    let price = snapshot.and_then(|paid| price_in(&[(paid.currency(), paid.minor())], currency, rates));
    Ok(price.map(|price| Quote { plan, price }).ok_or(Refusal::NoPrice))
}
