//! Taking money. Card-to-card here: a customer's receipt for an order awaiting payment becomes a payment under
//! review (refused when the same receipt, by Telegram's `file_unique_id` or by the bytes' SHA-256, was sent
//! before); `review` decides it and `fulfil` gives the customer what the order bought. The amount always comes
//! from the order, never from the customer.

pub mod admin;
pub mod fulfil;
pub mod online;
pub mod review;
pub mod stripe;
pub mod zarinpal;

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use std::time::Duration;

use crate::config::{Card, Settings};
pub use crate::db::payments::FirstUse;
use crate::db::{self, orders::OrderRow, payments::ReceiptRecord};
use crate::domain::Money;
use crate::domain::status::{OrderStatus, PaymentMethod, PaymentStatus};
use crate::error::{AppError, AppResult, violated_constraint};
use crate::services::notify;
use crate::services::queue::JobSpec;

pub const REVIEW_POST_KIND: &str = "review.post";
pub const REVIEW_CLOSE_KIND: &str = "review.close";
pub const PAYMENT_NOTICE_KIND: &str = "notify.payment";
pub const AUTO_ACCEPT_KIND: &str = "payment.auto_accept";

/// The card a card order in `currency` is paid to: the configured cards that take it, in turn, by order.
pub fn card_for(settings: &Settings, order_id: i64, currency: crate::domain::Currency) -> Option<Card> {
    let cards: Vec<Card> = settings.payments.card.all().into_iter().filter(|c| c.takes(currency)).collect();
    if cards.is_empty() {
        return None;
    }
    let turn = usize::try_from(order_id.rem_euclid(cards.len() as i64)).unwrap_or(0);
    cards.get(turn).cloned()
}

/// The card shown on an order (fixed when it was submitted).
pub fn card_of(order: &OrderRow) -> Option<Card> {
    order.pay_to.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A receipt the customer sent: Telegram's ids for the file, and what kind of message carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub file_id: String,
    pub file_unique_id: String,
    pub kind: ReceiptKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptKind {
    Photo,
    /// An image sent as a file.
    Document,
}

impl ReceiptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ReceiptKind::Photo => "photo",
            ReceiptKind::Document => "document",
        }
    }
}

/// Which order a receipt is for, before anything is downloaded.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptTarget {
    /// This order awaits a receipt.
    Order(Box<OrderRow>),
    /// Every card order of the customer already has a receipt being checked.
    UnderReview { order_id: i64 },
    /// Nothing to pay by card.
    NoOrder,
}

/// The customer's newest card order awaiting payment that has no receipt being checked.
pub async fn receipt_target(pool: &PgPool, user_id: i64) -> AppResult<ReceiptTarget> {
    let orders = db::orders::awaiting_payment_of(pool, user_id, 20).await?;
    let mut reviewing = None;
    for order in orders.into_iter().filter(|o| o.pay_to.is_some()) {
        match db::payments::open_of_order(pool, order.id).await? {
            None => return Ok(ReceiptTarget::Order(Box::new(order))),
            Some(_) => reviewing = reviewing.or(Some(order.id)),
        }
    }
    Ok(match reviewing {
        Some(order_id) => ReceiptTarget::UnderReview { order_id },
        None => ReceiptTarget::NoOrder,
    })
}

/// Counts a receipt against the customer's limit; `Err(retry_after)` when they sent too many.
pub async fn receipt_allowed(
    limiter: &crate::services::ratelimit::RateLimiter,
    settings: &Settings,
    user_id: i64,
) -> Result<(), Duration> {
    let card = &settings.payments.card;
    limiter
        .hit(&format!("receipt:user:{user_id}"), card.receipt_max, Duration::from_secs(card.receipt_window_secs))
        .await
        .map_err(|l| l.retry_after)
}

/// How a receipt was taken.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptOutcome {
    /// Under review now; reviews usually take `review_mins`.
    UnderReview { payment_id: i64, order_id: i64, review_mins: i32 },
    /// Sent before (by anyone): refused, and the admins were told.
    Reused(FirstUse),
    /// The order is past its deadline (it has expired now) or no longer awaits payment.
    OrderClosed,
    /// A receipt of this order is being checked already.
    AlreadyUnderReview,
}

/// The receipt was seen before? Checked before downloading it; another customer's receipt is recorded and
/// flagged to the admins.
pub async fn check_reuse(
    pool: &PgPool,
    settings: &Settings,
    user_id: i64,
    order_id: Option<i64>,
    receipt: &Receipt,
    sha256: Option<&str>,
) -> AppResult<Option<FirstUse>> {
    let Some(first) = db::payments::first_use(pool, &receipt.file_unique_id, sha256).await? else {
        return Ok(None);
    };
    // the customer's own receipt again (after a rejection, say) is refused too, but it is no one's fraud
    if first.user_id != user_id {
        flag_reuse(pool, settings, user_id, order_id, receipt, &first).await?;
    }
    Ok(Some(first))
}

async fn flag_reuse(
    pool: &PgPool,
    settings: &Settings,
    user_id: i64,
    order_id: Option<i64>,
    receipt: &Receipt,
    first: &FirstUse,
) -> AppResult<()> {
    let who = db::users::find(pool, user_id).await?.ok_or(AppError::NotFound("customer"))?;
    let mut tx = pool.begin().await?;
    db::payments::record_reuse(&mut *tx, user_id, order_id, first, &receipt.file_unique_id).await?;
    let text = format!(
        "Reused receipt refused: {} sent a receipt first used for payment #{} by {} on {} (matched by {}).",
        person(who.username.as_deref(), who.first_name.as_deref(), who.telegram_id),
        first.payment_id,
        person(first.username.as_deref(), None, first.telegram_id),
        first.at.format("%Y-%m-%d %H:%M UTC"),
        if first.matched_on == "sha256" { "identical image bytes" } else { "Telegram file id" },
    );
    let key = format!("reuse:{user_id}:{}", receipt.file_unique_id);
    notify::enqueue_admin_alert(&mut *tx, &key, &text, &settings.jobs).await?;
    tx.commit().await?;
    metrics::counter!("vpnshop_receipts_reused_total").increment(1);
    Ok(())
}

/// A customer as admins read them: `Name @username (id 123)`.
pub fn person(username: Option<&str>, first_name: Option<&str>, telegram_id: i64) -> String {
    let mut out = String::new();
    if let Some(name) = first_name.filter(|n| !n.is_empty()) {
        out.push_str(name);
        out.push(' ');
    }
    if let Some(u) = username.filter(|u| !u.is_empty()) {
        out.push('@');
        out.push_str(u);
        out.push(' ');
    }
    out.push_str(&format!("(id {telegram_id})"));
    out
}

/// `pending → under_review`: a new payment of the order, at the order's amount, carrying the receipt (whose
/// bytes hashed to `sha256`). Its review is posted to the admins after commit.
pub async fn submit_receipt(
    pool: &PgPool,
    settings: &Settings,
    user_id: i64,
    order_id: i64,
    receipt: &Receipt,
    sha256: &str,
) -> AppResult<ReceiptOutcome> {
    let review_mins = settings.payments.card.review_mins;
    let mut tx = pool.begin().await?;
    let order = db::orders::lock(&mut tx, order_id)
        .await?
        .filter(|o| o.user_id == user_id)
        .ok_or(AppError::NotFound("order"))?;
    if order.status != OrderStatus::AwaitingPayment {
        return Ok(ReceiptOutcome::OrderClosed);
    }
    let now = db::now(&mut *tx).await?;
    if order.pay_by.is_some_and(|by| by <= now) {
        // too late to pay this one: it expires now (a payment of it being checked keeps it open)
        if db::payments::open_of_order(&mut *tx, order_id).await?.is_none() {
            db::orders::transition(&mut tx, order_id, OrderStatus::AwaitingPayment, OrderStatus::Expired).await?;
            tx.commit().await?;
        }
        return Ok(ReceiptOutcome::OrderClosed);
    }
    if db::payments::open_of_order(&mut *tx, order_id).await?.is_some() {
        return Ok(ReceiptOutcome::AlreadyUnderReview);
    }
    let (Some(amount), Some(currency)) = (order.amount_minor, order.currency) else {
        return Err(AppError::Internal(anyhow::anyhow!("order {order_id} awaits payment without a price")));
    };
    let payment_id = db::payments::insert_pending(&mut tx, order_id, PaymentMethod::Card, amount, currency).await?;
    PaymentStatus::Pending.check(PaymentStatus::UnderReview, PaymentMethod::Card)?;
    let record = ReceiptRecord {
        file_id: &receipt.file_id,
        file_unique_id: &receipt.file_unique_id,
        sha256,
        kind: receipt.kind.as_str(),
    };
    match db::payments::submit_receipt(&mut tx, payment_id, &record, review_mins).await {
        Ok(true) => {}
        Ok(false) => return Err(AppError::conflict("the payment changed meanwhile")),
        Err(e) if matches!(violated_constraint(&e), Some(c) if c.contains("receipt")) => {
            // someone stored the same receipt a moment ago
            drop(tx);
            return Ok(match check_reuse(pool, settings, user_id, Some(order_id), receipt, Some(sha256)).await? {
                Some(first) => ReceiptOutcome::Reused(first),
                None => ReceiptOutcome::AlreadyUnderReview,
            });
        }
        Err(e) => return Err(e.into()),
    }
    JobSpec::new(REVIEW_POST_KIND, serde_json::json!({ "payment_id": payment_id }))
        .once(format!("review.post:{payment_id}"))
        .enqueue(&mut *tx, &settings.jobs)
        .await?;
    audit(
        &mut tx,
        "user",
        Some(&user_id.to_string()),
        "payment.receipt",
        payment_id,
        serde_json::json!({
            "order_id": order_id,
            "amount_minor": amount,
            "currency": currency.as_str(),
        }),
    )
    .await?;
    tx.commit().await?;
    metrics::counter!("vpnshop_receipts_total").increment(1);
    Ok(ReceiptOutcome::UnderReview { payment_id, order_id, review_mins })
}

/// Expires card orders past their deadline with no receipt being checked. Returns how many.
pub async fn expire_unpaid(pool: &PgPool) -> AppResult<u64> {
    let mut n = 0;
    for id in db::orders::overdue_unpaid(pool, 500).await? {
        let mut tx = pool.begin().await?;
        let Some(order) = db::orders::lock(&mut tx, id).await? else { continue };
        let still_open = db::payments::open_of_order(&mut *tx, id).await?.is_some();
        if order.status == OrderStatus::AwaitingPayment && !still_open {
            n += u64::from(
                db::orders::transition(&mut tx, id, OrderStatus::AwaitingPayment, OrderStatus::Expired).await?,
            );
        }
        tx.commit().await?;
    }
    Ok(n)
}

pub(crate) async fn audit(
    conn: &mut sqlx::PgConnection,
    actor_kind: &str,
    actor_id: Option<&str>,
    action: &str,
    payment_id: i64,
    detail: serde_json::Value,
) -> sqlx::Result<()> {
    let id = payment_id.to_string();
    db::audit::record(
        &mut *conn,
        &db::audit::AuditEntry {
            actor_kind,
            actor_id,
            action,
            entity: "payment",
            entity_id: Some(&id),
            detail,
            source_ip: None,
        },
    )
    .await
}

/// A payment as admins and customers see it, with its order and customer.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentView {
    pub payment: db::payments::PaymentRow,
    pub order: OrderRow,
    pub customer: db::users::UserRow,
    pub amount: Money,
    /// Paid orders and rejected receipts of the customer.
    pub history: (i64, i64),
    pub plan: Option<db::plans::PlanRow>,
}

impl PaymentView {
    pub fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.payment.decided_at
    }
}

/// Everything about one payment a reviewer needs.
pub async fn view(pool: &PgPool, payment_id: i64) -> AppResult<PaymentView> {
    let payment = db::payments::find(pool, payment_id).await?.ok_or(AppError::NotFound("payment"))?;
    let order = db::orders::find(pool, payment.order_id).await?.ok_or(AppError::NotFound("order"))?;
    let customer = db::users::find(pool, order.user_id).await?.ok_or(AppError::NotFound("customer"))?;
    let amount = Money::from_minor(payment.amount_minor, payment.currency).map_err(|e| AppError::Internal(e.into()))?;
    let history = db::payments::history(pool, customer.id).await?;
    let plan = match order.plan_id {
        Some(id) => db::plans::list(pool, false).await?.into_iter().find(|p| p.id == id),
        None => None,
    };
    Ok(PaymentView { payment, order, customer, amount, history, plan })
}

/// Admins' copies of review messages (posted by the bot, edited when the payment is decided).
pub mod copies {
    use sqlx::PgPool;

    use crate::db;
    pub use crate::db::payments::ReviewMessage;
    use crate::domain::status::PaymentStatus;
    use crate::error::AppResult;

    pub async fn record(pool: &PgPool, payment_id: i64, chat_id: i64, message_id: i32, photo: bool) -> AppResult<()> {
        Ok(db::payments::add_review_message(pool, payment_id, chat_id, message_id, photo).await?)
    }

    pub async fn posted(pool: &PgPool, payment_id: i64, chat_id: i64) -> AppResult<bool> {
        Ok(db::payments::review_posted(pool, payment_id, chat_id).await?)
    }

    pub async fn open(pool: &PgPool, payment_id: i64) -> AppResult<Vec<ReviewMessage>> {
        Ok(db::payments::open_review_messages(pool, payment_id).await?)
    }

    /// The copy shows the decision `shown`: it is closed, unless the payment has been decided otherwise since.
    pub async fn close(pool: &PgPool, payment_id: i64, copy: &ReviewMessage, shown: PaymentStatus) -> AppResult<()> {
        Ok(db::payments::close_review_message(pool, payment_id, copy.chat_id, copy.message_id, shown).await?)
    }
}
