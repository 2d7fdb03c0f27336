//! Purchases: the draft a customer builds step by step in the bot (resumable at any time), and its
//! submission for payment with the price fixed at that moment.

use sqlx::PgPool;

use crate::config::Settings;
use crate::db::{self, orders::OrderRow};
use crate::domain::draft::{Selection, Step};
use crate::domain::status::{OrderStatus, PaymentMethod};
use crate::domain::{Currency, DataCap, Money};
use crate::error::{AppError, AppResult};
use crate::services::shop::{self, PlanOption};

/// What an order is for.
pub const NEW: &str = "new";
pub const RENEWAL: &str = "renewal";
pub const TOPUP: &str = "topup";

/// A draft order as the bot works with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub order_id: i64,
    pub kind: String,
    pub subscription_id: Option<i64>,
    pub selection: Selection,
}

impl Draft {
    fn from_row(row: OrderRow) -> Draft {
        let selection = serde_json::from_value(row.selection).unwrap_or_default();
        Draft { order_id: row.id, kind: row.kind, subscription_id: row.subscription_id, selection }
    }
}

/// One step of the purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Location(String),
    Duration(i32),
    Devices(i32),
    Data(DataCap),
    Back,
}

/// The plan a complete selection resolves to, and its price in the customer's currency.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub plan: PlanOption,
    pub price: Money,
}

/// The customer's unfinished purchase, if any.
pub async fn current_draft(pool: &PgPool, user_id: i64) -> AppResult<Option<Draft>> {
    Ok(db::orders::draft_of(pool, user_id).await?.map(Draft::from_row))
}

/// Starts a new purchase (an unfinished one is cancelled, so its buttons go stale).
pub async fn start(pool: &PgPool, user_id: i64) -> AppResult<Draft> {
    new_draft(pool, user_id, NEW, None, &serde_json::json!({})).await
}

async fn new_draft(
    pool: &PgPool,
    user_id: i64,
    kind: &str,
    subscription_id: Option<i64>,
    selection: &serde_json::Value,
) -> AppResult<Draft> {
    let mut tx = pool.begin().await?;
    db::users::lock(&mut tx, user_id).await?;
    db::orders::cancel_draft_of(&mut tx, user_id).await?;
    let row = db::orders::insert_draft(&mut tx, user_id, kind, subscription_id, selection).await?;
    tx.commit().await?;
    Ok(Draft::from_row(row))
}

/// Starts a renewal of a subscription: the same plan again, straight to the summary.
pub async fn start_renewal(pool: &PgPool, user_id: i64, subscription_id: i64) -> AppResult<Draft> {
    let sub = owned_subscription(pool, user_id, subscription_id).await?;
    let plan = db::plans::list(pool, false)
        .await?
        .into_iter()
        .find(|p| p.id == sub.plan_id)
        .ok_or(AppError::NotFound("plan"))?;
    if sub.is_trial {
        return Err(AppError::conflict("a trial cannot be renewed; buy a plan instead"));
    }
    let selection = Selection {
        location: Some(plan.location_code),
        duration_days: Some(plan.duration_days),
        seats: Some(plan.seats),
        data: Some(DataCap::from_db(plan.data_cap_bytes).map_err(|e| AppError::Internal(e.into()))?),
        method: None,
    };
    let json = serde_json::to_value(&selection).map_err(anyhow::Error::from)?;
    new_draft(pool, user_id, RENEWAL, Some(subscription_id), &json).await
}

/// Starts buying more data for a subscription: its location, 30 days' worth of the chosen data tier.
pub async fn start_topup(pool: &PgPool, user_id: i64, subscription_id: i64) -> AppResult<Draft> {
    let sub = owned_subscription(pool, user_id, subscription_id).await?;
    if sub.data_cap_bytes.is_none() {
        return Err(AppError::conflict("this subscription already has unlimited data"));
    }
    if sub.is_trial {
        return Err(AppError::conflict("a trial cannot be topped up; buy a plan instead"));
    }
    let selection = Selection {
        location: Some(sub.location_code),
        duration_days: Some(30),
        seats: Some(sub.seats),
        data: None,
        method: None,
    };
    let json = serde_json::to_value(&selection).map_err(anyhow::Error::from)?;
    new_draft(pool, user_id, TOPUP, Some(subscription_id), &json).await
}

async fn owned_subscription(pool: &PgPool, user_id: i64, id: i64) -> AppResult<db::subscriptions::SubscriptionRow> {
    db::subscriptions::find(pool, id).await?.filter(|s| s.user_id == user_id).ok_or(AppError::NotFound("subscription"))
}

/// The customer's draft with this id, or a conflict when the button belongs to an older purchase.
async fn own_draft(pool: &PgPool, user_id: i64, order_id: i64) -> AppResult<Draft> {
    match current_draft(pool, user_id).await? {
        Some(d) if d.order_id == order_id => Ok(d),
        _ => Err(AppError::conflict("this purchase is no longer open")),
    }
}

/// Applies one step, checked against what the location really sells.
pub async fn choose(pool: &PgPool, user_id: i64, order_id: i64, choice: Choice) -> AppResult<Draft> {
    let mut draft = own_draft(pool, user_id, order_id).await?;
    let s = &mut draft.selection;
    match choice {
        Choice::Back => s.back(),
        Choice::Location(code) => {
            shop::location(pool, &code).await.map_err(|_| AppError::invalid("that location is not on sale"))?;
            s.choose_location(&code);
        }
        other => {
            let location = s.location.clone().ok_or_else(|| AppError::invalid("choose a location first"))?;
            let plans = shop::plans_in(pool, &location).await?;
            let fits = |p: &&PlanOption| {
                s.duration_days.is_none_or(|d| p.duration_days == d) && s.seats.is_none_or(|n| p.seats == n)
            };
            match other {
                Choice::Duration(days) if plans.iter().any(|p| p.duration_days == days) => s.choose_duration(days),
                Choice::Devices(n) if s.duration_days.is_some() && plans.iter().filter(fits).any(|p| p.seats == n) => {
                    s.choose_seats(n)
                }
                Choice::Data(cap) if s.seats.is_some() && plans.iter().filter(fits).any(|p| p.data == cap) => {
                    s.choose_data(cap)
                }
                _ => return Err(AppError::invalid("that option is not available here")),
            }
        }
    }
    let json = serde_json::to_value(&draft.selection).map_err(anyhow::Error::from)?;
    if !db::orders::set_selection(pool, order_id, user_id, &json).await? {
        return Err(AppError::conflict("this purchase is no longer open"));
    }
    Ok(draft)
}

/// The plan and price of a complete selection.
pub async fn quote(pool: &PgPool, selection: &Selection, currency: Currency) -> AppResult<Quote> {
    if selection.step() != Step::Summary {
        return Err(AppError::invalid("the purchase is not complete yet"));
    }
    let location = selection.location.as_deref().unwrap_or_default();
    let plan = shop::plans_in(pool, location)
        .await?
        .into_iter()
        .find(|p| {
            Some(p.duration_days) == selection.duration_days
                && Some(p.seats) == selection.seats
                && Some(p.data) == selection.data
        })
        .ok_or_else(|| AppError::invalid("that plan is no longer on sale"))?;
    let price =
        plan.price(currency).ok_or_else(|| AppError::invalid(format!("this plan has no price in {currency}")))?;
    Ok(Quote { plan, price })
}

/// The payment methods customers can use now: card-to-card when card details are configured. (Stripe and
/// Zarinpal join this list with their checkout flows.)
pub fn payment_methods(settings: &Settings) -> Vec<PaymentMethod> {
    let mut methods = Vec::new();
    if !settings.payments.card.number.trim().is_empty() {
        methods.push(PaymentMethod::Card);
    }
    methods
}

/// A submitted order, awaiting payment.
#[derive(Debug, Clone, PartialEq)]
pub struct Submitted {
    pub order_id: i64,
    pub public_id: uuid::Uuid,
    pub price: Money,
    pub method: PaymentMethod,
}

/// `draft → awaiting_payment`: fixes the plan and the price (the snapshot later price changes never touch).
pub async fn submit(
    pool: &PgPool,
    settings: &Settings,
    user_id: i64,
    order_id: i64,
    method: PaymentMethod,
    currency: Currency,
) -> AppResult<Submitted> {
    if !payment_methods(settings).contains(&method) {
        return Err(AppError::invalid("that payment method is not available"));
    }
    let mut draft = own_draft(pool, user_id, order_id).await?;
    let quote = quote(pool, &draft.selection, currency).await?;
    draft.selection.method = Some(method);
    let json = serde_json::to_value(&draft.selection).map_err(anyhow::Error::from)?;
    let mut tx = pool.begin().await?;
    let row = db::orders::lock(&mut tx, order_id).await?.ok_or(AppError::NotFound("order"))?;
    row.status.check(OrderStatus::AwaitingPayment)?;
    let amount = quote.price.minor();
    if !db::orders::submit(&mut tx, order_id, quote.plan.plan_id, amount, currency.as_str(), &json).await? {
        return Err(AppError::conflict("this purchase is no longer open"));
    }
    tx.commit().await?;
    Ok(Submitted { order_id, public_id: row.public_id, price: quote.price, method })
}

/// Drops the customer's unfinished purchase.
pub async fn cancel(pool: &PgPool, user_id: i64, order_id: i64) -> AppResult<()> {
    own_draft(pool, user_id, order_id).await?;
    let mut tx = pool.begin().await?;
    if !db::orders::transition(&mut tx, order_id, OrderStatus::Draft, OrderStatus::Cancelled).await? {
        return Err(AppError::conflict("this purchase is no longer open"));
    }
    tx.commit().await?;
    Ok(())
}
