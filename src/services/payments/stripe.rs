//! Stripe's verified webhook events applied to our payments: the payment is found by its Checkout Session (or
//! PaymentIntent) id, or by the ids we put in the metadata; the event becomes a `Report` for `online::settle`.
//!
//! An event seen before (its id in `webhook_events`) is answered and nothing done. Otherwise it is applied, and
//! its id recorded only after that succeeded: a crash mid-way leaves it unrecorded for Stripe's retry. Applying
//! is idempotent on its own — `settle` locks the payment row and checks its state, flags and alerts happen once
//! — so the same event arriving at two instances at once (both finding it unseen) still fulfils once. No
//! connection is held while another is taken, so a burst of deliveries cannot starve the pool.

use sqlx::PgPool;

use super::online::{self, Report, Settled};
use crate::config::Settings;
use crate::db::{self, payments::ProcessorRefs};
use crate::domain::Currency;
use crate::domain::status::PaymentMethod;
use crate::error::{AppError, AppResult, violated_constraint};
use crate::payments::stripe::webhook::{Event, Refs, What};
use crate::services::notify;

const PROVIDER: &str = "stripe";

/// What an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Seen before: nothing done.
    Duplicate,
    /// Not an event we act on, or one that changes nothing yet (a completed session still being paid).
    Ignored,
    /// About no payment of ours: nothing granted.
    UnknownPayment,
    /// Applied to our payment.
    Settled { payment_id: i64, settled: Settled },
}

impl Applied {
    pub fn label(&self) -> &'static str {
        match self {
            Applied::Duplicate => "duplicate",
            Applied::Ignored => "ignored",
            Applied::UnknownPayment => "unknown_payment",
            Applied::Settled { settled, .. } => match settled {
                Settled::Fulfilled => "fulfilled",
                Settled::Unchanged => "unchanged",
                Settled::Flagged(_) => "flagged",
                Settled::Failed => "failed",
                Settled::Refunded => "refunded",
            },
        }
    }
}

/// Applies a verified event once (see the module docs). `payload` is stored with its id.
pub async fn apply(
    pool: &PgPool,
    settings: &Settings,
    event: &Event,
    payload: &serde_json::Value,
) -> AppResult<Applied> {
    if db::payments::event_seen(pool, PROVIDER, &event.id).await? {
        return Ok(Applied::Duplicate);
    }
    // on an error nothing is recorded: Stripe's retry applies it
    let applied = act(pool, settings, event).await?;
    db::payments::record_event(pool, PROVIDER, &event.id, &event.kind, payload).await?;
    Ok(applied)
}

async fn act(pool: &PgPool, settings: &Settings, event: &Event) -> AppResult<Applied> {
    let refs = |payment_intent: &Option<String>| ProcessorRefs {
        stripe_payment_intent_id: payment_intent.clone(),
        stripe_event_id: Some(event.id.clone()),
        ..ProcessorRefs::default()
    };
    let (payment_id, report) = match &event.what {
        What::Ignored | What::Processing(_) => return Ok(Applied::Ignored),
        What::Paid(s) => {
            let Some(id) = find_payment(pool, [Some(&s.id), s.payment_intent.as_ref()], &s.metadata).await? else {
                return unknown(event, &s.id);
            };
            let currency = s.currency.as_deref().and_then(|c| c.to_ascii_uppercase().parse::<Currency>().ok());
            let (Some(amount_minor), Some(currency)) = (s.amount_total, currency) else {
                let why = format!("Stripe reported {:?} {:?}, not an amount we price in", s.amount_total, s.currency);
                return hold(pool, settings, id, &why).await;
            };
            (id, Report::Paid { amount_minor, currency, refs: refs(&s.payment_intent) })
        }
        What::Failed(s, reason) => {
            let Some(id) = find_payment(pool, [Some(&s.id), s.payment_intent.as_ref()], &s.metadata).await? else {
                return unknown(event, &s.id);
            };
            (id, Report::Failed { reason: (*reason).to_owned() })
        }
        What::Refunded(charge) => {
            let Some(id) = find_payment(pool, [charge.payment_intent.as_ref(), None], &charge.metadata).await? else {
                return unknown(event, &charge.id);
            };
            if !charge.refunded {
                let text = format!(
                    "Stripe payment #{id}: {} of {} {} refunded (charge {}); a partial refund takes nothing back.",
                    charge.amount_refunded,
                    charge.amount,
                    charge.currency.to_ascii_uppercase(),
                    charge.id
                );
                notify::enqueue_admin_alert(pool, &format!("stripe-partial:{}", event.id), &text, &settings.jobs)
                    .await?;
                return Ok(Applied::Ignored);
            }
            (id, Report::Refunded { refs: refs(&charge.payment_intent) })
        }
    };
    match online::settle(pool, settings, payment_id, &report).await {
        Ok(settled) => Ok(Applied::Settled { payment_id, settled }),
        // money for an order that cannot take it (paid twice, by two sessions): nothing granted, an admin decides
        Err(e) if paid_already(&e) => {
            tracing::debug!(error = %e, "the order cannot take this payment");
            let why = format!("Stripe's {} came for an order that is paid or closed already; refund it", event.kind);
            hold(pool, settings, payment_id, &why).await
        }
        Err(e) => Err(e),
    }
}

/// Whether settling failed because the order cannot take this payment: it is paid or decided already (one
/// settled payment per order, `payments_one_settled_per_order`).
fn paid_already(e: &AppError) -> bool {
    match e {
        AppError::Conflict(_) | AppError::IllegalTransition(_) => true,
        AppError::Internal(e) => e
            .downcast_ref::<sqlx::Error>()
            .and_then(violated_constraint)
            .is_some_and(|c| c == "payments_one_settled_per_order"),
        _ => false,
    }
}

/// Our Stripe payment: by a Checkout Session or PaymentIntent id, else by the metadata — its ids and its
/// `payment_ref`, our payment's public id, which another install sharing the Stripe account cannot name.
async fn find_payment(pool: &PgPool, ids: [Option<&String>; 2], meta: &Refs) -> AppResult<Option<i64>> {
    for id in ids.into_iter().flatten() {
        if let Some(found) = db::payments::by_processor_id(pool, PaymentMethod::Stripe, id).await? {
            return Ok(Some(found));
        }
    }
    let (Some(payment_id), Some(reference)) = (meta.payment_id, meta.payment_ref.as_deref()) else { return Ok(None) };
    let ours = db::payments::public_id(pool, payment_id).await?.is_some_and(|id| id.to_string() == reference);
    Ok(db::payments::find(pool, payment_id)
        .await?
        .filter(|p| ours && p.method == PaymentMethod::Stripe && Some(p.order_id) == meta.order_id)
        .map(|p| p.id))
}

fn unknown(event: &Event, object: &str) -> AppResult<Applied> {
    tracing::warn!(stripe.event = %event.id, stripe.kind = %event.kind, stripe.object = %object,
        "a Stripe event about no payment of ours: nothing done");
    Ok(Applied::UnknownPayment)
}

/// Holds a payment for an admin without granting anything; the admins are told once.
async fn hold(pool: &PgPool, settings: &Settings, payment_id: i64, why: &str) -> AppResult<Applied> {
    if db::payments::flag(pool, payment_id, why).await? {
        let text = format!("Payment #{payment_id} (stripe) was not fulfilled: {why}. Check it in Stripe.");
        notify::enqueue_admin_alert(pool, &format!("flagged:{payment_id}"), &text, &settings.jobs).await?;
    }
    tracing::warn!(payment.id = payment_id, reason = %why, "Stripe payment held for an admin");
    Ok(Applied::Settled { payment_id, settled: Settled::Flagged(why.to_owned()) })
}
