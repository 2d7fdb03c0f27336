//! Fulfilment: the one path from money taken to what it bought, for every payment method. Called in the
//! transaction that settles the payment (card review, Stripe, Zarinpal), so it happens exactly once: the order
//! moves `awaiting_payment → paid → fulfilled` under its row lock, and
//! - a new order creates its subscription (one client per seat, placed on a node by a job; the customer gets the
//!   links when the node has them);
//! - a renewal extends the subscription from the later of now and its end (a limited or expired one comes back);
//! - a top-up raises the data cap (a limited one comes back).
//!
//! What was granted is recorded on the order, so rejecting an auto-accepted payment later can take it back.

use sqlx::PgConnection;

use crate::config::JobSettings;
use crate::db::{self, orders::OrderRow};
use crate::domain::status::{OrderStatus, SubscriptionStatus};
use crate::error::{AppError, AppResult};
use crate::services::orders::{RENEWAL, TOPUP};
use crate::services::subscriptions::{self, NewSubscription};

/// What an order gave the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    New { subscription_id: i64 },
    Renewed { subscription_id: i64 },
    ToppedUp { subscription_id: i64 },
}

impl Granted {
    pub fn subscription_id(self) -> i64 {
        match self {
            Granted::New { subscription_id }
            | Granted::Renewed { subscription_id }
            | Granted::ToppedUp { subscription_id } => subscription_id,
        }
    }
}

/// Fulfils the order in the caller's transaction. An order that is not awaiting payment is a conflict (it was
/// paid by another payment, cancelled or expired): the caller's transaction must then be rolled back.
pub async fn fulfil(conn: &mut PgConnection, order_id: i64, jobs: &JobSettings) -> AppResult<Granted> {
    fulfil_from(conn, order_id, &[OrderStatus::AwaitingPayment], jobs).await
}

/// [`fulfil`] for money a gateway took: also for an order that expired or was cancelled meanwhile (the customer
/// paid; they get what they paid for).
pub async fn fulfil_paid(conn: &mut PgConnection, order_id: i64, jobs: &JobSettings) -> AppResult<Granted> {
    let open = [OrderStatus::AwaitingPayment, OrderStatus::Expired, OrderStatus::Cancelled];
    fulfil_from(conn, order_id, &open, jobs).await
}

async fn fulfil_from(
    conn: &mut PgConnection,
    order_id: i64,
    from: &[OrderStatus],
    jobs: &JobSettings,
) -> AppResult<Granted> {
    let order = db::orders::lock(&mut *conn, order_id).await?.ok_or(AppError::NotFound("order"))?;
    if !from.contains(&order.status) {
        return Err(AppError::conflict(format!("the order is {}", order.status)));
    }
    order.status.check(OrderStatus::Paid)?;
    if !db::orders::transition(&mut *conn, order_id, order.status, OrderStatus::Paid).await? {
        return Err(AppError::conflict("the order changed meanwhile"));
    }
    let plan_id = order.plan_id.ok_or_else(|| AppError::Internal(anyhow::anyhow!("paid order without a plan")))?;
    let plan = db::plans::list(&mut *conn, false)
        .await?
        .into_iter()
        .find(|p| p.id == plan_id)
        .ok_or(AppError::NotFound("plan"))?;
    let granted = match (order.kind.as_str(), order.subscription_id) {
        (RENEWAL, Some(id)) => {
            let extra = plan.data_cap_bytes;
            subscriptions::renew(&mut *conn, id, plan.duration_days, extra, jobs).await?;
            db::orders::set_granted(&mut *conn, order_id, id, Some(plan.duration_days), extra).await?;
            Granted::Renewed { subscription_id: id }
        }
        (TOPUP, Some(id)) => {
            let bytes = plan.data_cap_bytes.ok_or_else(|| AppError::invalid("a top-up needs a data amount"))?;
            subscriptions::top_up(&mut *conn, id, bytes, jobs).await?;
            db::orders::set_granted(&mut *conn, order_id, id, None, Some(bytes)).await?;
            Granted::ToppedUp { subscription_id: id }
        }
        _ => {
            let new = NewSubscription {
                user_id: order.user_id,
                order_id: Some(order_id),
                plan_id,
                location_code: plan.location_code.clone(),
                is_trial: false,
                seats: plan.seats,
                duration_days: plan.duration_days,
                data_cap_bytes: plan.data_cap_bytes,
            };
            let id = subscriptions::create(&mut *conn, &new, jobs).await?;
            db::orders::set_granted(&mut *conn, order_id, id, None, None).await?;
            Granted::New { subscription_id: id }
        }
    };
    if !db::orders::transition(&mut *conn, order_id, OrderStatus::Paid, OrderStatus::Fulfilled).await? {
        return Err(AppError::conflict("the order changed meanwhile"));
    }
    metrics::counter!("vpnshop_orders_fulfilled_total", "kind" => order.kind.clone()).increment(1);
    Ok(granted)
}

/// Takes back what a fulfilled order granted (its payment was rejected after an automatic acceptance), in the
/// caller's transaction: a new subscription is revoked; a renewal loses its days and data (and ends if that puts
/// it past its end or over its cap); a top-up loses its data. The order is cancelled.
pub async fn take_back(conn: &mut PgConnection, order: &OrderRow, jobs: &JobSettings) -> AppResult<()> {
    take_back_to(conn, order, OrderStatus::Cancelled, jobs).await
}

/// [`take_back`], the order ending `to` (`cancelled` for a rejected payment, `refunded` for a refund).
pub async fn take_back_to(
    conn: &mut PgConnection,
    order: &OrderRow,
    to: OrderStatus,
    jobs: &JobSettings,
) -> AppResult<()> {
    let locked = db::orders::lock(&mut *conn, order.id).await?.ok_or(AppError::NotFound("order"))?;
    if locked.status != OrderStatus::Fulfilled {
        return Err(AppError::conflict(format!("the order is {}", locked.status)));
    }
    let Some(sub_id) = locked.subscription_id else {
        return Err(AppError::Internal(anyhow::anyhow!("fulfilled order {} names no subscription", order.id)));
    };
    const WHY: &str = "payment rejected";
    match locked.kind.as_str() {
        RENEWAL | TOPUP => {
            let until =
                db::subscriptions::take_back(&mut *conn, sub_id, locked.granted_days, locked.granted_bytes).await?;
            let now = db::now(&mut *conn).await?;
            if until.is_some_and(|end| end <= now) {
                subscriptions::end_in(&mut *conn, sub_id, SubscriptionStatus::Expired, WHY, true, jobs).await?;
            } else {
                // over the lowered cap: limited (end_in checks the usage itself)
                subscriptions::end_in(&mut *conn, sub_id, SubscriptionStatus::Limited, WHY, true, jobs).await?;
            }
        }
        _ => {
            // the payment's own notice tells the customer; a subscription that never started needs no other
            let started = db::subscriptions::find(&mut *conn, sub_id).await?.is_some_and(|s| s.starts_at.is_some());
            subscriptions::end_in(&mut *conn, sub_id, SubscriptionStatus::Revoked, WHY, started, jobs).await?;
        }
    }
    if !db::orders::transition(&mut *conn, order.id, OrderStatus::Fulfilled, to).await? {
        return Err(AppError::conflict("the order changed meanwhile"));
    }
    Ok(())
}
