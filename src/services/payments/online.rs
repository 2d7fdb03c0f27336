//! Online payments (Stripe, Zarinpal): a payment attempt of an order awaiting payment is sent to its gateway
//! (`start`), and whatever the gateway later reports — a signed webhook, a verified callback, a reconciliation —
//! ends in `settle`, which locks the payment, checks its state and the amount, and fulfils the order through the
//! same `fulfil` as card payments, in one transaction, exactly once however often and in whatever order the
//! gateway reports. A gateway that is down leaves the order payable again.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;

use super::{PAYMENT_NOTICE_KIND, audit, fulfil};
use crate::config::Settings;
use crate::db::{self, payments::ProcessorRefs};
use crate::domain::status::{OrderStatus, PaymentMethod, PaymentStatus};
use crate::domain::{Currency, Money};
use crate::error::{AppError, AppResult};
use crate::payments::{CheckoutRequest, Gateway, GatewayError};
use crate::services::notify;
use crate::services::queue::JobSpec;

pub const ANNOUNCE_KIND: &str = "payments.announce";
/// How long a digest of online payments gathers before it goes to the admins.
const ANNOUNCE_DELAY: Duration = Duration::from_secs(5);
/// The most payments one digest lists.
const ANNOUNCE_MAX: i64 = 30;

/// The admins' digest of online payments received since the last one: the lines to send (none when nothing is
/// new). Marks them announced in the caller's transaction, so a failed send announces them again.
pub async fn take_digest(conn: &mut sqlx::PgConnection) -> AppResult<Option<String>> {
    let paid = db::payments::take_unannounced(conn, ANNOUNCE_MAX).await?;
    if paid.is_empty() {
        return Ok(None);
    }
    let lines: Vec<String> = paid
        .iter()
        .map(|p| {
            let amount = Money::from_minor(p.amount_minor, p.currency)
                .map(|m| m.format(crate::domain::Language::En))
                .unwrap_or_else(|_| format!("{} {}", p.amount_minor, p.currency));
            format!("• {} payment #{}: {amount} for order #{}", p.method, p.id, p.order_id)
        })
        .collect();
    Ok(Some(format!("Online payments received:\n{}", lines.join("\n"))))
}

/// The gateways this shop has configured.
#[derive(Clone, Default)]
pub struct Gateways {
    pub stripe: Option<Arc<dyn Gateway>>,
    pub zarinpal: Option<Arc<dyn Gateway>>,
}

impl Gateways {
    pub fn get(&self, method: PaymentMethod) -> Option<&Arc<dyn Gateway>> {
        match method {
            PaymentMethod::Stripe => self.stripe.as_ref(),
            PaymentMethod::Zarinpal => self.zarinpal.as_ref(),
            PaymentMethod::Card => None,
        }
    }

    /// The online methods that take `currency`.
    pub fn methods_for(&self, currency: Currency) -> Vec<PaymentMethod> {
        [&self.stripe, &self.zarinpal]
            .into_iter()
            .flatten()
            .filter(|g| g.currencies().contains(&currency))
            .map(|g| g.method())
            .collect()
    }
}

/// How long a customer has to finish paying online (Stripe's session expiry; Zarinpal's authority is
/// reconciled and expired after it).
pub fn checkout_window(settings: &Settings) -> Duration {
    Duration::from_secs(u64::from(settings.payments.online_expiry_mins.max(30)) * 60)
}

/// Where a customer comes back to after paying: the bot (`https://t.me/<bot>?start=paid_<order>`) when its
/// username is known, else our own page for the order.
pub fn return_url(settings: &Settings, order_id: i64) -> String {
    match settings.telegram.bot_username.as_deref().filter(|u| !u.is_empty()) {
        Some(bot) => format!("https://t.me/{bot}?start=paid_{order_id}"),
        None => public_url(settings, &format!("pay/return/{order_id}")),
    }
}

/// A URL under the shop's public base URL (its path kept).
pub fn public_url(settings: &Settings, path: &str) -> String {
    let base = settings.public_base_url();
    let base = base.as_str().trim_end_matches('/');
    format!("{base}/{path}")
}

/// How long a payment attempt without its page yet is taken to be still talking to the gateway.
const CHECKOUT_PATIENCE_SECS: i64 = 60;

/// A payment attempt sent to its gateway: where the customer pays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub payment_id: i64,
    pub url: String,
}

/// Starts (or, on a second tap, shows again) the online payment of the customer's order awaiting payment by
/// `method`. `Ok(Err(_))`: the gateway is down or refused; the order stays payable and the customer is told.
pub async fn start(
    pool: &PgPool,
    settings: &Settings,
    gateways: &Gateways,
    user_id: i64,
    order_id: i64,
    method: PaymentMethod,
) -> AppResult<Result<Started, GatewayError>> {
    let gateway = gateways.get(method).ok_or_else(|| AppError::invalid("that payment method is not available"))?;
    let window = checkout_window(settings);
    let mut tx = pool.begin().await?;
    let order = db::orders::lock(&mut tx, order_id)
        .await?
        .filter(|o| o.user_id == user_id)
        .ok_or(AppError::NotFound("order"))?;
    if order.status != OrderStatus::AwaitingPayment {
        return Err(AppError::conflict("this order no longer awaits payment"));
    }
    let (Some(amount), Some(currency)) = (order.amount_minor, order.currency) else {
        return Err(AppError::Internal(anyhow::anyhow!("order {order_id} awaits payment without a price")));
    };
    if !gateway.currencies().contains(&currency) {
        return Err(AppError::invalid("that payment method does not take this currency"));
    }
    // a second tap: the same place to pay, while it is fresh
    let fresh = window.as_secs_f64() * 0.8;
    if let Some(open) = db::payments::open_online(&mut *tx, order_id, method, fresh).await?
        && let Some(url) = open.checkout_url
    {
        return Ok(Ok(Started { payment_id: open.id, url }));
    }
    if let Some(open) = db::payments::open_of_order(&mut *tx, order_id).await? {
        let age = (db::now(&mut *tx).await? - open.created_at).num_seconds();
        match open.method {
            PaymentMethod::Card => return Err(AppError::conflict("a receipt of this order is being checked")),
            // another tap is talking to the gateway right now
            _ if open.checkout_url.is_none() && age < CHECKOUT_PATIENCE_SECS => {
                return Ok(Err(GatewayError::Unavailable("the payment page is being prepared".into())));
            }
            // stale, another method's, or left without a page by a crash: this attempt replaces it (money it
            // still brings is settled all the same, or held if the order was paid meanwhile)
            _ => {
                let why = Some("replaced by a new attempt");
                let refs = ProcessorRefs::default();
                db::payments::settle_online(
                    &mut tx,
                    open.id,
                    PaymentStatus::Pending,
                    PaymentStatus::Failed,
                    &refs,
                    why,
                )
                .await?;
            }
        }
    }
    let payment_id = db::payments::insert_pending(&mut tx, order_id, method, amount, currency).await?;
    let reference = db::payments::public_id(&mut *tx, payment_id).await?.unwrap_or_default().to_string();
    tx.commit().await?;

    let money = Money::from_minor(amount, currency).map_err(|e| AppError::Internal(e.into()))?;
    let request = CheckoutRequest {
        payment_id,
        order_id,
        amount: money,
        description: format!("{} order #{order_id}", settings.provision.shop_name),
        idempotency_key: format!("vpnshop-{reference}"),
        reference,
        success_url: return_url(settings, order_id),
        cancel_url: return_url(settings, order_id),
        callback_url: public_url(settings, "pay/zarinpal/callback"),
        expires_in: window,
    };
    match gateway.checkout(&request).await {
        Ok(checkout) => {
            db::payments::set_checkout(pool, payment_id, method, &checkout.processor_id, &checkout.url).await?;
            metrics::counter!("vpnshop_online_checkouts_total", "method" => method.as_str(), "result" => "ok")
                .increment(1);
            Ok(Ok(Started { payment_id, url: checkout.url }))
        }
        Err(e) => {
            tracing::warn!(payment.id = payment_id, order.id = order_id, method = %method, error = %e, "checkout failed");
            let mut tx = pool.begin().await?;
            db::payments::settle_online(
                &mut tx,
                payment_id,
                PaymentStatus::Pending,
                PaymentStatus::Failed,
                &ProcessorRefs::default(),
                Some(&e.to_string()),
            )
            .await?;
            tx.commit().await?;
            let result = if matches!(e, GatewayError::Unavailable(_)) { "unavailable" } else { "refused" };
            metrics::counter!("vpnshop_online_checkouts_total", "method" => method.as_str(), "result" => result)
                .increment(1);
            Ok(Err(e))
        }
    }
}

/// What a gateway reports about a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// The money arrived: this much, in this currency (checked against ours before anything is granted).
    Paid { amount_minor: i64, currency: Currency, refs: ProcessorRefs },
    /// It did not, and will not (expired, declined, cancelled).
    Failed { reason: String },
    /// The money went back to the customer.
    Refunded { refs: ProcessorRefs },
}

/// What `settle` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// This report fulfilled the order.
    Fulfilled,
    /// Known already (the same report again, or a later one that changes nothing).
    Unchanged,
    /// Held for an admin: the gateway's amount or currency is not ours; nothing was granted.
    Flagged(String),
    Failed,
    Refunded,
}

/// Applies a gateway's report to our payment `payment_id` (see the module docs).
pub async fn settle(pool: &PgPool, settings: &Settings, payment_id: i64, report: &Report) -> AppResult<Settled> {
    let jobs = &settings.jobs;
    let mut tx = pool.begin().await?;
    let payment = db::payments::lock(&mut tx, payment_id).await?.ok_or(AppError::NotFound("payment"))?;
    if payment.method == PaymentMethod::Card {
        return Err(AppError::invalid("card payments are decided by review"));
    }
    let method = payment.method;
    let settled = match report {
        Report::Paid { amount_minor, currency, refs } => {
            if !matches!(payment.status, PaymentStatus::Pending | PaymentStatus::Failed) {
                return Ok(Settled::Unchanged);
            }
            let paid_twice = db::payments::other_settled(&mut *tx, payment.order_id, payment_id).await?;
            if paid_twice || (*amount_minor, *currency) != (payment.amount_minor, payment.currency) {
                let why = if paid_twice {
                    format!("order #{} was paid already by another payment; refund this one", payment.order_id)
                } else {
                    format!(
                        "the gateway reported {amount_minor} {currency} for a payment of {} {}",
                        payment.amount_minor, payment.currency
                    )
                };
                drop(tx);
                if db::payments::flag(pool, payment_id, &why).await? {
                    let text = format!(
                        "Payment #{payment_id} ({method}) was not fulfilled: {why}. Check it with the gateway."
                    );
                    notify::enqueue_admin_alert(pool, &format!("flagged:{payment_id}"), &text, jobs).await?;
                }
                tracing::warn!(payment.id = payment_id, reason = %why, "online payment held for an admin");
                return Ok(Settled::Flagged(why));
            }
            if !db::payments::settle_online(&mut tx, payment_id, payment.status, PaymentStatus::Succeeded, refs, None)
                .await?
            {
                return Ok(Settled::Unchanged);
            }
            if let Err(e) = fulfil::fulfil_paid(&mut tx, payment.order_id, jobs).await {
                if e.is_internal() {
                    return Err(e);
                }
                // the money is in, but the order cannot take it (its subscription ended meanwhile, …): nothing is
                // granted and an admin decides (refund, or grant by hand)
                drop(tx);
                let why = format!("the order could not be fulfilled: {e}");
                if db::payments::flag(pool, payment_id, &why).await? {
                    let text = format!(
                        "Payment #{payment_id} ({method}) was paid but not fulfilled: {why}. Refund it or grant it by hand."
                    );
                    notify::enqueue_admin_alert(pool, &format!("flagged:{payment_id}"), &text, jobs).await?;
                }
                tracing::warn!(payment.id = payment_id, reason = %why, "paid online payment held for an admin");
                return Ok(Settled::Flagged(why));
            }
            JobSpec::new(PAYMENT_NOTICE_KIND, serde_json::json!({ "payment_id": payment_id, "event": "accepted" }))
                .once(format!("payment.notice:{payment_id}:accepted"))
                .enqueue(&mut *tx, jobs)
                .await?;
            // the admins hear of it in the next digest (one message for however many arrive meanwhile)
            JobSpec::new(ANNOUNCE_KIND, serde_json::json!({}))
                .coalesce(ANNOUNCE_KIND)
                .after(ANNOUNCE_DELAY)
                .enqueue(&mut *tx, jobs)
                .await?;
            Settled::Fulfilled
        }
        Report::Failed { reason } => {
            if payment.status != PaymentStatus::Pending {
                return Ok(Settled::Unchanged);
            }
            let refs = ProcessorRefs::default();
            db::payments::settle_online(
                &mut tx,
                payment_id,
                PaymentStatus::Pending,
                PaymentStatus::Failed,
                &refs,
                Some(reason),
            )
            .await?;
            Settled::Failed
        }
        Report::Refunded { refs } => match payment.status {
            PaymentStatus::Succeeded => {
                db::payments::settle_online(
                    &mut tx,
                    payment_id,
                    PaymentStatus::Succeeded,
                    PaymentStatus::Refunded,
                    refs,
                    None,
                )
                .await?;
                let order = db::orders::find(&mut *tx, payment.order_id).await?.ok_or(AppError::NotFound("order"))?;
                if order.status == OrderStatus::Fulfilled {
                    fulfil::take_back_to(&mut tx, &order, OrderStatus::Refunded, jobs).await?;
                }
                JobSpec::new(PAYMENT_NOTICE_KIND, serde_json::json!({ "payment_id": payment_id, "event": "refunded" }))
                    .once(format!("payment.notice:{payment_id}:refunded"))
                    .enqueue(&mut *tx, jobs)
                    .await?;
                Settled::Refunded
            }
            // refunded before its completion was reported: it will never grant anything
            PaymentStatus::Pending | PaymentStatus::Failed => {
                let from = payment.status;
                if from == PaymentStatus::Failed {
                    // failed → refunded is not a move of ours: keep it failed, noting the refund
                    db::payments::flag(&mut *tx, payment_id, "refunded by the gateway").await?;
                } else {
                    db::payments::settle_online(&mut tx, payment_id, from, PaymentStatus::Refunded, refs, None).await?;
                }
                Settled::Refunded
            }
            _ => return Ok(Settled::Unchanged),
        },
    };
    audit(
        &mut tx,
        "system",
        Some(method.as_str()),
        &format!(
            "payment.{}",
            match settled {
                Settled::Fulfilled => "succeeded",
                Settled::Failed => "failed",
                _ => "refunded",
            }
        ),
        payment_id,
        serde_json::json!({ "via": method.as_str(), "order_id": payment.order_id }),
    )
    .await?;
    tx.commit().await?;
    let result = match settled {
        Settled::Fulfilled => "fulfilled",
        Settled::Failed => "failed",
        _ => "refunded",
    };
    metrics::counter!("vpnshop_online_settlements_total", "method" => method.as_str(), "result" => result).increment(1);
    match (&settled, payment.status) {
        (Settled::Fulfilled, _) => crate::metrics::revenue(payment.currency, method, payment.amount_minor),
        // only money that was counted comes back out (a refund before the payment completed never counted)
        (Settled::Refunded, PaymentStatus::Succeeded) => {
            crate::metrics::revenue_reversed(payment.currency, method, payment.amount_minor)
        }
        _ => {}
    }
    Ok(settled)
}
