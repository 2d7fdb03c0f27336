//! Stripe's verified webhook events applied to our payments: the payment is found by its Checkout Session (or
//! PaymentIntent) id, or by the ids we put in the metadata; the event becomes a `Report` for `online::settle`.
//!
//! An event seen before (its id in `webhook_events`) is answered and nothing done. Otherwise it is applied, and
//! its id recorded only after that succeeded: a crash mid-way leaves it unrecorded for Stripe's retry. Applying
//! is idempotent on its own — `settle` locks the payment row and checks its state, flags and alerts happen once
//! — so the same event arriving at two instances at once (both finding it unseen) still fulfils once. No
//! connection is held while another is taken, so a burst of deliveries cannot starve the pool.
//!
//! Reconciliation ([`reconcile`], the `stripe_reconcile` sweep) covers webhooks that never came (a misconfigured
//! endpoint, or one down longer than Stripe retries): our pending Stripe payments a few minutes old are looked up
//! by their Checkout Session and settled the same way — complete and paid fulfils, expired (or a session Stripe
//! does not know) fails, open is left alone.

use std::any::Any;
use std::sync::Arc;

use sqlx::PgPool;

use super::online::{self, Gateways, Report, Settled};
use crate::config::Settings;
use crate::db::{self, payments::PaymentRow, payments::ProcessorRefs};
use crate::domain::Currency;
use crate::domain::status::PaymentMethod;
use crate::error::{AppError, AppResult, violated_constraint};
use crate::payments::GatewayError;
use crate::payments::stripe::Stripe;
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
            let Some((amount_minor, currency)) = priced(s.amount_total, s.currency.as_deref()) else {
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
    settle_or_hold(pool, settings, payment_id, &report, &format!("Stripe's {}", event.kind)).await
}

/// An amount and currency Stripe reported, when it is one we price in.
fn priced(amount_total: Option<i64>, currency: Option<&str>) -> Option<(i64, Currency)> {
    let currency = currency.and_then(|c| c.to_ascii_uppercase().parse::<Currency>().ok())?;
    Some((amount_total?, currency))
}

/// Settles the payment; money for an order that cannot take it (paid twice, by two sessions) grants nothing and
/// is held for an admin (`what` says where the report came from).
async fn settle_or_hold(
    pool: &PgPool,
    settings: &Settings,
    payment_id: i64,
    report: &Report,
    what: &str,
) -> AppResult<Applied> {
    match online::settle(pool, settings, payment_id, report).await {
        Ok(settled) => Ok(Applied::Settled { payment_id, settled }),
        Err(e) if paid_already(&e) => {
            tracing::debug!(error = %e, "the order cannot take this payment");
            let why = format!("{what} came for an order that is paid or closed already; refund it");
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

/// The Stripe client among the configured gateways.
pub fn client(gateways: &Gateways) -> Option<Arc<Stripe>> {
    let any: Arc<dyn Any + Send + Sync> = gateways.stripe.clone()?;
    any.downcast::<Stripe>().ok()
}

/// How old a pending payment must be before reconciliation asks Stripe about it: the webhook usually comes within
/// seconds; a customer still on the payment page is left alone meanwhile.
pub const RECONCILE_MIN_AGE_SECS: f64 = 300.0;

/// How many pending payments one run looks at.
const BATCH: i64 = 100;

/// What a reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Paid sessions whose payments this run fulfilled.
    pub paid: u64,
    /// Expired (or unknown) sessions whose payments this run failed.
    pub expired: u64,
    /// Payments that could not be settled and were skipped (held, refused by Stripe, an error).
    pub skipped: u64,
}

/// The reconciliation (see the module docs). A run stops when Stripe does not answer (the rest wait for the next
/// run); a payment Stripe refuses to show, or that cannot be settled, is logged and skipped.
pub async fn reconcile(pool: &PgPool, settings: &Settings, stripe: &Stripe) -> AppResult<Reconciled> {
    let mut done = Reconciled::default();
    let result = reconcile_into(pool, settings, stripe, &mut done).await;
    if done != Reconciled::default() {
        tracing::info!(paid = done.paid, expired = done.expired, skipped = done.skipped, "Stripe payments reconciled");
    }
    for (result, n) in [("paid", done.paid), ("expired", done.expired), ("skipped", done.skipped)] {
        metrics::counter!("vpnshop_stripe_reconciled_total", "result" => result).increment(n);
    }
    result.map(|()| done)
}

async fn reconcile_into(pool: &PgPool, settings: &Settings, stripe: &Stripe, done: &mut Reconciled) -> AppResult<()> {
    let pending = db::payments::pending_online(pool, PaymentMethod::Stripe, RECONCILE_MIN_AGE_SECS, BATCH).await?;
    let mut failed = None;
    for payment in pending {
        // held ones wait for an admin; one without a session never reached Stripe (the order replaces it)
        if payment.flagged_at.is_some() {
            continue;
        }
        let Some(session_id) = payment.stripe_session_id.clone() else { continue };
        let session = match stripe.retrieve_session(&session_id).await {
            Ok(session) => session,
            Err(GatewayError::Unavailable(why)) => {
                tracing::warn!(payment.id = payment.id, reason = %why, "Stripe did not answer; reconciled next run");
                break;
            }
            Err(GatewayError::Refused(why)) => {
                tracing::warn!(payment.id = payment.id, stripe.session = %session_id, reason = %why,
                    "Stripe refused to show a Checkout Session; skipped");
                done.skipped += 1;
                continue;
            }
        };
        match reconcile_one(pool, settings, &payment, &session_id, session.as_ref()).await {
            Ok(Some(Applied::Settled { settled: Settled::Fulfilled, .. })) => done.paid += 1,
            Ok(Some(Applied::Settled { settled: Settled::Failed, .. })) => done.expired += 1,
            Ok(Some(Applied::Settled { settled: Settled::Flagged(_), .. })) => done.skipped += 1,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(payment.id = payment.id, error = %e, "a Stripe payment could not be reconciled");
                done.skipped += 1;
                if e.is_internal() {
                    failed.get_or_insert(e);
                }
            }
        }
    }
    // the others went on; the run reports the first internal error
    failed.map_or(Ok(()), Err)
}

/// Settles one payment by its session as Stripe shows it (`None`: Stripe does not know it); `None` back when it
/// is left as it is.
async fn reconcile_one(
    pool: &PgPool,
    settings: &Settings,
    payment: &PaymentRow,
    session_id: &str,
    session: Option<&crate::payments::stripe::SessionState>,
) -> AppResult<Option<Applied>> {
    let Some(session) = session else {
        let report = Report::Failed { reason: "expired: Stripe does not know its Checkout Session".into() };
        return settle_or_hold(pool, settings, payment.id, &report, "Stripe").await.map(Some);
    };
    if session.id != session_id {
        return Err(AppError::Internal(anyhow::anyhow!(
            "Stripe answered for session {}, not {session_id}",
            session.id
        )));
    }
    let report = match (session.status.as_deref(), session.payment_status.as_deref()) {
        (Some("complete"), Some("paid")) => {
            let Some((amount_minor, currency)) = priced(session.amount_total, session.currency.as_deref()) else {
                let why = format!(
                    "Stripe reported {:?} {:?}, not an amount we price in",
                    session.amount_total, session.currency
                );
                return hold(pool, settings, payment.id, &why).await.map(Some);
            };
            let refs =
                ProcessorRefs { stripe_payment_intent_id: session.payment_intent.clone(), ..ProcessorRefs::default() };
            Report::Paid { amount_minor, currency, refs }
        }
        (Some("expired"), _) => Report::Failed { reason: "expired: the Checkout Session closed unpaid".into() },
        // open, or complete with the money still on its way (a delayed method): its webhook or a later run
        _ => return Ok(None),
    };
    settle_or_hold(pool, settings, payment.id, &report, "Stripe's paid Checkout Session").await.map(Some)
}
