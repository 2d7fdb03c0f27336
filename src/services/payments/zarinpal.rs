//! Zarinpal's side of online payments: the customer coming back from Zarinpal (the callback) and the
//! reconciliation sweep. Zarinpal's `Status` is no proof of anything: a payment is paid only when `verify.json`,
//! asked with the amount from our database, answers 100 or 101 — and then it goes through `online::settle`, which
//! locks the payment and fulfils its order exactly once, however many callbacks, instances and sweeps report it.
//!
//! - Callback `OK`: a payment of ours already paid is answered from our state (Zarinpal is not asked again); an
//!   order another payment already paid is not verified at all (unverified money goes back to the payer by
//!   itself) and this payment fails. Otherwise the `VERIFY_KIND` job is queued first (due once the request
//!   timeout has surely cut the callback off, so a cut-off callback is always followed up), then verify → 100/101 paid; -51 (not paid) and -54 (no such authority) fail the payment; -50 (the
//!   amount is not ours) fails it and holds it for an admin; anything else (Zarinpal down, -12 …) leaves it
//!   pending and a job verifies it again with backoff (`VERIFY_KIND`). `NOK` fails it (money arriving later
//!   still fulfils: see `settle`).
//! - Sweep: every payment `unVerified.json` lists that is ours (and whose order no other payment paid) is verified (with our amount) and settled; pending
//!   ones older than the checkout window are verified once more and, still unpaid, fail as expired.

use std::any::Any;
use std::sync::Arc;

use sqlx::PgPool;

use super::online::{self, Gateways, Report, Settled};
use crate::config::Settings;
use crate::db::{self, payments::PaymentRow, payments::ProcessorRefs};
use crate::domain::Language;
use crate::domain::status::{PaymentMethod, PaymentStatus};
use crate::error::{AppError, AppResult};
use crate::payments::zarinpal::{AMOUNT_MISMATCH, INVALID_AUTHORITY, NOT_PAID, Zarinpal, ZarinpalError};
use crate::services::notify;
use crate::services::queue::JobSpec;

/// The job that verifies a payment again (payload `payment_id`) after a callback Zarinpal could not confirm.
pub const VERIFY_KIND: &str = "zarinpal.verify";

/// The Zarinpal client among the configured gateways.
pub fn client(gateways: &Gateways) -> Option<Arc<Zarinpal>> {
    let any: Arc<dyn Any + Send + Sync> = gateways.zarinpal.clone()?;
    any.downcast::<Zarinpal>().ok()
}

/// What a payment came to, as the customer is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Verified (now or before); the order is fulfilled.
    Paid,
    /// The customer cancelled at Zarinpal (`Status=NOK`).
    Cancelled,
    /// Zarinpal says it was not paid (-51).
    NotPaid,
    /// Zarinpal does not know the authority (-54).
    Invalid,
    /// The amount paid is not the order's (-50): not fulfilled, held for an admin.
    AmountMismatch,
    /// Paid, but the order could not take it (paid another way meanwhile): held for an admin.
    Held,
    /// The order was paid already by another payment: this one was not verified (so not captured: Zarinpal
    /// returns the money to the payer by itself) and failed.
    AlreadyPaid,
    /// Not known yet (Zarinpal did not answer, or answered something else): the sweep tries again.
    Pending,
}

/// The customer's return from Zarinpal: their order and language, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Returned {
    pub order_id: i64,
    pub language: Language,
    pub outcome: Outcome,
}

/// Handles Zarinpal's callback for `authority` (`ok`: `Status=OK`). `None`: no payment of ours has it.
pub async fn callback(
    pool: &PgPool,
    settings: &Settings,
    zarinpal: &Zarinpal,
    authority: &str,
    ok: bool,
) -> AppResult<Option<Returned>> {
    let Some(payment_id) = db::payments::by_processor_id(pool, PaymentMethod::Zarinpal, authority).await? else {
        return Ok(None);
    };
    let payment = db::payments::find(pool, payment_id).await?.ok_or(AppError::NotFound("payment"))?;
    let order = db::orders::find(pool, payment.order_id).await?.ok_or(AppError::NotFound("order"))?;
    let language = db::users::find(pool, order.user_id).await?.map_or(settings.shop.default_language, |u| u.language);
    let outcome = if !ok {
        let failed = settle_failed(pool, settings, payment_id, "cancelled at Zarinpal (Status=NOK)").await?;
        if failed { Outcome::Cancelled } else { now_stands(pool, payment_id, Outcome::Cancelled).await? }
    } else if is_paid(payment.status) {
        // a reload of a paid payment: answered from our state, Zarinpal is not asked again (-12 is near)
        Outcome::Paid
    } else {
        // queued before verifying: a callback cut off (the request timeout) after Zarinpal verified but before we
        // settled is followed up all the same; the job does nothing once the payment is settled
        follow_up(pool, settings, payment_id, verify_job_delay(settings)).await?;
        verify_and_settle(pool, settings, zarinpal, &payment, Why::Callback).await?
    };
    if outcome == Outcome::Pending {
        // Zarinpal did not say, and this callback is over: its follow-up is due now (then retried with backoff)
        follow_up(pool, settings, payment_id, std::time::Duration::ZERO).await?;
    }
    tracing::info!(payment.id = payment_id, order.id = order.id, ok, outcome = ?outcome, "Zarinpal callback");
    Ok(Some(Returned { order_id: order.id, language, outcome }))
}

/// Verifies a payment again after a callback Zarinpal could not confirm; `Pending` while it still cannot.
pub async fn verify_again(
    pool: &PgPool,
    settings: &Settings,
    zarinpal: &Zarinpal,
    payment_id: i64,
) -> AppResult<Outcome> {
    let payment = db::payments::find(pool, payment_id).await?.ok_or(AppError::NotFound("payment"))?;
    if payment.method != PaymentMethod::Zarinpal || payment.flagged_at.is_some() {
        return Ok(Outcome::Held);
    }
    // settled (paid, failed, …) by the callback, another instance or the sweep meanwhile: nothing to do (money
    // arriving for a failed one later is found by the sweep through `unVerified.json`)
    if payment.status != PaymentStatus::Pending {
        return now_stands(pool, payment_id, Outcome::NotPaid).await;
    }
    verify_and_settle(pool, settings, zarinpal, &payment, Why::Callback).await
}

/// Queues the payment's `VERIFY_KIND` job, due after `delay`: one waiting job per payment (queuing it again only
/// moves it earlier).
async fn follow_up(pool: &PgPool, settings: &Settings, payment_id: i64, delay: std::time::Duration) -> AppResult<()> {
    JobSpec::new(VERIFY_KIND, serde_json::json!({ "payment_id": payment_id }))
        .coalesce(format!("{VERIFY_KIND}:{payment_id}"))
        .after(delay)
        .enqueue(pool, &settings.jobs)
        .await?;
    Ok(())
}

/// How long after a callback starts its follow-up job is due: once the callback is surely over (the HTTP request
/// timeout cuts it off by then), so the two do not verify at once.
fn verify_job_delay(settings: &Settings) -> std::time::Duration {
    std::time::Duration::from_secs(settings.http.request_timeout_secs + 5)
}

/// Whether our payment took money already (Zarinpal is not asked again).
fn is_paid(status: PaymentStatus) -> bool {
    status.is_settled() || status == PaymentStatus::Refunded
}

/// Why a payment is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Callback,
    /// Listed by `unVerified.json`.
    Unverified,
    /// Pending past its window: verified once more before it fails.
    Expiring,
}

impl Why {
    /// Why a payment failed, as recorded.
    fn reason(self, detail: &str) -> String {
        match self {
            Why::Expiring => format!("expired: {detail}"),
            _ => detail.to_owned(),
        }
    }
}

/// Verifies a payment with our amount and applies the answer.
async fn verify_and_settle(
    pool: &PgPool,
    settings: &Settings,
    zarinpal: &Zarinpal,
    payment: &PaymentRow,
    why: Why,
) -> AppResult<Outcome> {
    let Some(authority) = payment.zarinpal_authority.as_deref() else {
        return Err(AppError::Internal(anyhow::anyhow!("Zarinpal payment {} has no authority", payment.id)));
    };
    let id = payment.id;
    if db::payments::other_settled(pool, payment.order_id, id).await? {
        // not verified, so not captured: Zarinpal gives unverified money back to the payer by itself
        let reason = format!(
            "order #{} was paid already by another payment; not verified, Zarinpal returns the money to the payer",
            payment.order_id
        );
        settle_failed(pool, settings, id, &why.reason(&reason)).await?;
        return now_stands(pool, id, Outcome::AlreadyPaid).await;
    }
    match zarinpal.verify(authority, payment.amount_minor).await {
        Ok(verified) => {
            let refs = ProcessorRefs {
                zarinpal_ref_id: verified.ref_id,
                zarinpal_card_pan: verified.card_pan,
                zarinpal_card_hash: verified.card_hash,
                ..ProcessorRefs::default()
            };
            // verified for our amount in our currency: the report carries them
            let paid = Report::Paid { amount_minor: payment.amount_minor, currency: payment.currency, refs };
            match online::settle(pool, settings, id, &paid).await {
                Ok(Settled::Fulfilled | Settled::Unchanged) => Ok(Outcome::Paid),
                Ok(Settled::Flagged(_)) => Ok(Outcome::Held),
                Ok(_) => now_stands(pool, id, Outcome::Pending).await,
                Err(AppError::Conflict(why)) => {
                    let reason = format!("paid at Zarinpal (verified), but not applied: {why}");
                    hold(pool, settings, id, &reason).await?;
                    Ok(Outcome::Held)
                }
                Err(e) => Err(e),
            }
        }
        Err(ZarinpalError::Code { code: NOT_PAID, .. }) => {
            settle_failed(pool, settings, id, &why.reason("not paid (Zarinpal -51)")).await?;
            now_stands(pool, id, Outcome::NotPaid).await
        }
        Err(ZarinpalError::Code { code: INVALID_AUTHORITY, .. }) => {
            settle_failed(pool, settings, id, &why.reason("Zarinpal does not know its authority (-54)")).await?;
            now_stands(pool, id, Outcome::Invalid).await
        }
        Err(ZarinpalError::Code { code: AMOUNT_MISMATCH, .. }) => {
            let amount = payment.amount_minor;
            let reason = format!("Zarinpal holds another amount than ours ({amount} IRR) for it (-50)");
            hold(pool, settings, id, &reason).await?;
            settle_failed(pool, settings, id, &why.reason(&reason)).await?;
            now_stands(pool, id, Outcome::AmountMismatch).await
        }
        Err(e) => {
            tracing::warn!(payment.id = id, why = ?why, error = %e, "Zarinpal verify gave no answer; tried again later");
            now_stands(pool, id, Outcome::Pending).await
        }
    }
}

/// `pending → failed`; true when this call failed it.
async fn settle_failed(pool: &PgPool, settings: &Settings, payment_id: i64, reason: &str) -> AppResult<bool> {
    let report = Report::Failed { reason: reason.to_owned() };
    Ok(online::settle(pool, settings, payment_id, &report).await? == Settled::Failed)
}

/// The outcome as the payment stands now: paid if it succeeded meanwhile (another callback, instance or sweep),
/// else `otherwise`.
async fn now_stands(pool: &PgPool, payment_id: i64, otherwise: Outcome) -> AppResult<Outcome> {
    let payment = db::payments::find(pool, payment_id).await?.ok_or(AppError::NotFound("payment"))?;
    Ok(if is_paid(payment.status) { Outcome::Paid } else { otherwise })
}

/// Holds a payment for an admin and tells them (once).
async fn hold(pool: &PgPool, settings: &Settings, payment_id: i64, reason: &str) -> AppResult<()> {
    if db::payments::flag(pool, payment_id, reason).await? {
        let text = format!("Zarinpal payment #{payment_id} was not fulfilled: {reason}. Check it with Zarinpal.");
        notify::enqueue_admin_alert(pool, &format!("flagged:{payment_id}"), &text, &settings.jobs).await?;
        tracing::warn!(payment.id = payment_id, reason, "Zarinpal payment held for an admin");
    }
    Ok(())
}

/// What a reconciliation did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Paid payments found (through `unVerified.json` or a last verify) and settled.
    pub paid: u64,
    /// Stale unpaid payments failed as expired.
    pub expired: u64,
}

/// How many pending payments one run looks at.
const BATCH: i64 = 100;

/// The reconciliation (see the module docs). Stops early while Zarinpal does not answer.
pub async fn reconcile(pool: &PgPool, settings: &Settings, zarinpal: &Zarinpal) -> AppResult<Reconciled> {
    let mut done = Reconciled::default();
    let result = reconcile_into(pool, settings, zarinpal, &mut done).await;
    if done != Reconciled::default() {
        tracing::info!(paid = done.paid, expired = done.expired, "Zarinpal payments reconciled");
    }
    metrics::counter!("vpnshop_zarinpal_reconciled_total", "result" => "paid").increment(done.paid);
    metrics::counter!("vpnshop_zarinpal_reconciled_total", "result" => "expired").increment(done.expired);
    result.map(|()| done)
}

/// How many payments in a row Zarinpal may leave unanswered before a run stops.
const GIVE_UP_AFTER: u32 = 3;

async fn reconcile_into(
    pool: &PgPool,
    settings: &Settings,
    zarinpal: &Zarinpal,
    done: &mut Reconciled,
) -> AppResult<()> {
    let listed = match zarinpal.unverified().await {
        Ok(listed) => listed,
        Err(e) => {
            tracing::warn!(error = %e, "Zarinpal's unverified payments could not be read; tried again next run");
            return Ok(());
        }
    };
    // Zarinpal not answering several in a row: stop and leave the rest for the next run; one payment it answers
    // oddly (or that cannot be settled) is logged and skipped, never blocks the others
    let mut unanswered = 0;
    for item in listed {
        // another shop's payment on the same merchant, or one we no longer have
        let Some(id) = db::payments::by_processor_id(pool, PaymentMethod::Zarinpal, &item.authority).await? else {
            continue;
        };
        let Some(payment) = db::payments::find(pool, id).await? else { continue };
        if !matches!(payment.status, PaymentStatus::Pending | PaymentStatus::Failed) {
            continue;
        }
        match verify_and_settle(pool, settings, zarinpal, &payment, Why::Unverified).await {
            Ok(Outcome::Paid) => done.paid += 1,
            Ok(Outcome::Pending) => {
                unanswered += 1;
                if unanswered >= GIVE_UP_AFTER {
                    return Ok(());
                }
                continue;
            }
            Ok(_) => {}
            Err(e) if !e.is_internal() => {
                tracing::warn!(payment.id = payment.id, error = %e, "an unverified Zarinpal payment could not be settled");
            }
            Err(e) => return Err(e),
        }
        unanswered = 0;
    }
    let window = online::checkout_window(settings).as_secs_f64();
    for payment in db::payments::pending_online(pool, PaymentMethod::Zarinpal, window, BATCH).await? {
        // held ones wait for an admin
        if payment.flagged_at.is_some() {
            continue;
        }
        if payment.zarinpal_authority.is_none() {
            // never reached Zarinpal (the process stopped between the two steps of `start`)
            let reason = Why::Expiring.reason("never reached Zarinpal");
            done.expired += u64::from(settle_failed(pool, settings, payment.id, &reason).await?);
            continue;
        }
        match verify_and_settle(pool, settings, zarinpal, &payment, Why::Expiring).await {
            Ok(Outcome::Paid) => done.paid += 1,
            Ok(Outcome::NotPaid | Outcome::Invalid | Outcome::AmountMismatch | Outcome::AlreadyPaid) => {
                done.expired += 1
            }
            Ok(Outcome::Pending) => {
                unanswered += 1;
                if unanswered >= GIVE_UP_AFTER {
                    return Ok(());
                }
                // long past its window and still not confirmed: it expires (money Zarinpal still reports as
                // unverified later is settled all the same)
                if payment.created_at < chrono::Utc::now() - chrono::Duration::seconds((window * 2.0) as i64) {
                    let reason = Why::Expiring.reason("Zarinpal never confirmed it");
                    done.expired += u64::from(settle_failed(pool, settings, payment.id, &reason).await?);
                }
                continue;
            }
            Ok(Outcome::Cancelled | Outcome::Held) => {}
            Err(e) if !e.is_internal() => {
                tracing::warn!(payment.id = payment.id, error = %e, "a stale Zarinpal payment could not be settled");
            }
            Err(e) => return Err(e),
        }
        unanswered = 0;
    }
    Ok(())
}
