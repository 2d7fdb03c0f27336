//! The `payments` table (and its receipts' side tables: `receipt_reuses`, `review_messages`). State changes are
//! conditional updates (`WHERE status = <expected>`) on a locked row, so whoever loses a race changes nothing.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};

use crate::domain::Currency;
use crate::domain::status::{PaymentMethod, PaymentStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct PaymentRow {
    pub id: i64,
    pub order_id: i64,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: Currency,
    pub receipt_file_id: Option<String>,
    pub receipt_file_unique_id: Option<String>,
    pub receipt_kind: Option<String>,
    pub review_deadline: Option<DateTime<Utc>>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_via: Option<String>,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Online payments: where the customer pays, the gateway's ids, why it failed or was held.
    pub checkout_url: Option<String>,
    pub stripe_session_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub zarinpal_authority: Option<String>,
    pub zarinpal_ref_id: Option<String>,
    pub zarinpal_card_pan: Option<String>,
    pub failure_reason: Option<String>,
    pub flagged_at: Option<DateTime<Utc>>,
}

macro_rules! select_payment {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            PaymentRow,
            r#"SELECT id, order_id, method AS "method: PaymentMethod", status AS "status: PaymentStatus", amount_minor,
                      currency AS "currency: Currency", receipt_file_id, receipt_file_unique_id, receipt_kind,
                      review_deadline, submitted_at, decided_at, decided_by, decided_via, reason_code, reason, created_at,
                      checkout_url, stripe_session_id, stripe_payment_intent_id, zarinpal_authority, zarinpal_ref_id,
                      zarinpal_card_pan, failure_reason, flagged_at
                 FROM payments "# + $tail
            $(, $arg)*
        )
    };
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<PaymentRow>> {
    select_payment!("WHERE id = $1", id).fetch_optional(db).await
}

pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<PaymentRow>> {
    select_payment!("WHERE id = $1 FOR UPDATE", id).fetch_optional(conn).await
}

/// The order's payment in flight (pending or under review), if any.
pub async fn open_of_order(db: impl PgExecutor<'_>, order_id: i64) -> sqlx::Result<Option<PaymentRow>> {
    select_payment!("WHERE order_id = $1 AND status IN ('pending', 'under_review')", order_id).fetch_optional(db).await
}

/// The order's payments, oldest first.
pub async fn of_order(db: impl PgExecutor<'_>, order_id: i64) -> sqlx::Result<Vec<PaymentRow>> {
    select_payment!("WHERE order_id = $1 ORDER BY id", order_id).fetch_all(db).await
}

/// The payments under review, oldest first.
pub async fn under_review(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<PaymentRow>> {
    select_payment!("WHERE status = 'under_review' ORDER BY submitted_at, id LIMIT $1", limit).fetch_all(db).await
}

/// Reviews whose window has passed, oldest first.
pub async fn overdue(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<PaymentRow>> {
    select_payment!(
        "WHERE status = 'under_review' AND review_deadline < now() ORDER BY review_deadline LIMIT $1",
        limit
    )
    .fetch_all(db)
    .await
}

/// A new card payment of an order, `pending` (the caller moves it on in the same transaction).
pub async fn insert_pending(
    conn: &mut PgConnection,
    order_id: i64,
    method: PaymentMethod,
    amount_minor: i64,
    currency: Currency,
) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "INSERT INTO payments (order_id, method, amount_minor, currency) VALUES ($1, $2, $3, $4) RETURNING id",
        order_id,
        method.as_str(),
        amount_minor,
        currency.as_str()
    )
    .fetch_one(conn)
    .await
}

/// A receipt as stored with its payment.
#[derive(Debug, Clone)]
pub struct ReceiptRecord<'a> {
    pub file_id: &'a str,
    pub file_unique_id: &'a str,
    pub sha256: &'a str,
    pub kind: &'a str,
}

/// `pending → under_review` with the receipt and the time its review is due. False if it was not pending.
/// A receipt stored before (same `file_unique_id` or same bytes) violates a unique index: the caller reads that
/// as a reused receipt.
pub async fn submit_receipt(
    conn: &mut PgConnection,
    id: i64,
    receipt: &ReceiptRecord<'_>,
    review_mins: i32,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE payments SET status = 'under_review', receipt_file_id = $2, receipt_file_unique_id = $3,
                  receipt_sha256 = $4, receipt_kind = $5, submitted_at = now(),
                  review_deadline = now() + make_interval(mins => $6), updated_at = now()
            WHERE id = $1 AND status = 'pending'"#,
        id,
        receipt.file_id,
        receipt.file_unique_id,
        receipt.sha256,
        receipt.kind,
        review_mins
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The payment that first used a receipt, found by its `file_unique_id` or its bytes' SHA-256.
#[derive(Debug, Clone, PartialEq)]
pub struct FirstUse {
    pub payment_id: i64,
    pub matched_on: &'static str,
    pub user_id: i64,
    pub telegram_id: i64,
    pub username: Option<String>,
    pub at: DateTime<Utc>,
}

pub async fn first_use(
    db: impl PgExecutor<'_>,
    file_unique_id: &str,
    sha256: Option<&str>,
) -> sqlx::Result<Option<FirstUse>> {
    let row = sqlx::query!(
        r#"SELECT p.id, p.receipt_file_unique_id = $1 AS "by_id!", u.id AS user_id, u.telegram_id, u.username,
                  COALESCE(p.submitted_at, p.created_at) AS "at!"
             FROM payments p JOIN orders o ON o.id = p.order_id JOIN users u ON u.id = o.user_id
            WHERE p.receipt_file_unique_id = $1 OR ($2::text IS NOT NULL AND p.receipt_sha256 = $2)
            ORDER BY p.id LIMIT 1"#,
        file_unique_id,
        sha256
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| FirstUse {
        payment_id: r.id,
        matched_on: if r.by_id { "file_unique_id" } else { "sha256" },
        user_id: r.user_id,
        telegram_id: r.telegram_id,
        username: r.username,
        at: r.at,
    }))
}

/// Records a refused reused receipt.
pub async fn record_reuse(
    db: impl PgExecutor<'_>,
    user_id: i64,
    order_id: Option<i64>,
    first: &FirstUse,
    file_unique_id: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO receipt_reuses (user_id, order_id, first_payment, matched_on, file_unique_id)
         VALUES ($1, $2, $3, $4, $5)",
        user_id,
        order_id,
        first.payment_id,
        first.matched_on,
        file_unique_id
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A decision on a payment under review (or on an auto-accepted one).
#[derive(Debug, Clone)]
pub struct DecisionRecord<'a> {
    pub to: PaymentStatus,
    pub by: &'a str,
    pub via: &'a str,
    pub admin_id: Option<i64>,
    pub reason_code: Option<&'a str>,
    pub reason: Option<&'a str>,
}

/// Moves a payment from `from` to the decision's status; false if it was not `from`.
pub async fn decide(
    conn: &mut PgConnection,
    id: i64,
    from: PaymentStatus,
    d: &DecisionRecord<'_>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE payments SET status = $3, decided_at = now(), decided_by = $4, decided_via = $5,
                  reviewer_admin_id = $6, reason_code = $7, reason = $8, updated_at = now()
            WHERE id = $1 AND status = $2"#,
        id,
        from.as_str(),
        d.to.as_str(),
        d.by,
        d.via,
        d.admin_id,
        d.reason_code,
        d.reason
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A customer's record as a reviewer sees it: paid orders and rejected receipts.
pub async fn history(db: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<(i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT count(*) FILTER (WHERE p.status IN ('accepted', 'auto_accepted', 'succeeded')) AS "paid!",
                  count(*) FILTER (WHERE p.status = 'rejected') AS "rejected!"
             FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.user_id = $1"#,
        user_id
    )
    .fetch_one(db)
    .await?;
    Ok((r.paid, r.rejected))
}

/// Records an admin's copy of a review (the receipt with a caption, or a text message).
pub async fn add_review_message(
    db: impl PgExecutor<'_>,
    payment_id: i64,
    chat_id: i64,
    message_id: i32,
    has_photo: bool,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO review_messages (payment_id, chat_id, message_id, has_photo) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        payment_id,
        chat_id,
        message_id,
        has_photo
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether the receipt was posted to this chat already.
pub async fn review_posted(db: impl PgExecutor<'_>, payment_id: i64, chat_id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM review_messages WHERE payment_id = $1 AND chat_id = $2 AND has_photo) AS "x!""#,
        payment_id,
        chat_id
    )
    .fetch_one(db)
    .await
}

/// An admin's copy of a review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewMessage {
    pub chat_id: i64,
    pub message_id: i32,
    pub has_photo: bool,
}

/// The copies of a review not yet edited to show its decision.
pub async fn open_review_messages(db: impl PgExecutor<'_>, payment_id: i64) -> sqlx::Result<Vec<ReviewMessage>> {
    sqlx::query_as!(
        ReviewMessage,
        "SELECT chat_id, message_id, has_photo FROM review_messages
          WHERE payment_id = $1 AND closed_at IS NULL ORDER BY sent_at",
        payment_id
    )
    .fetch_all(db)
    .await
}

/// Marks a copy as showing the payment's decision, if the payment still stands at `shown` (a later decision has
/// reopened the copies, and it stays open for the edit that shows that one).
pub async fn close_review_message(
    db: impl PgExecutor<'_>,
    payment_id: i64,
    chat_id: i64,
    message_id: i32,
    shown: PaymentStatus,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE review_messages r SET closed_at = now() FROM payments p
          WHERE r.payment_id = $1 AND r.chat_id = $2 AND r.message_id = $3 AND p.id = r.payment_id AND p.status = $4",
        payment_id,
        chat_id,
        message_id,
        shown.as_str()
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Opens every copy of a review again: a new decision is to be shown on each.
pub async fn reopen_review_messages(db: impl PgExecutor<'_>, payment_id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE review_messages SET closed_at = NULL WHERE payment_id = $1", payment_id).execute(db).await?;
    Ok(())
}

/// Sales over one window, for `/stats`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sales {
    /// Money taken per currency (minor units).
    pub revenue: Vec<(Currency, i64)>,
    pub paid_orders: i64,
    pub new_customers: i64,
    pub trials: i64,
}

pub async fn sales_since(db: &mut PgConnection, since: DateTime<Utc>) -> sqlx::Result<Sales> {
    let revenue = sqlx::query!(
        r#"SELECT currency AS "currency: Currency", sum(amount_minor)::bigint AS "total!"
             FROM payments WHERE status IN ('accepted', 'auto_accepted', 'succeeded') AND decided_at >= $1
            GROUP BY currency ORDER BY currency"#,
        since
    )
    .fetch_all(&mut *db)
    .await?
    .into_iter()
    .map(|r| (r.currency, r.total))
    .collect();
    let counts = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM orders WHERE paid_at >= $1) AS "paid!",
                  (SELECT count(*) FROM users WHERE created_at >= $1) AS "customers!",
                  (SELECT count(*) FROM users WHERE trial_used_at >= $1) AS "trials!""#,
        since
    )
    .fetch_one(&mut *db)
    .await?;
    Ok(Sales { revenue, paid_orders: counts.paid, new_customers: counts.customers, trials: counts.trials })
}

/// Subscriptions active now and reviews waiting now.
pub async fn now_counts(db: impl PgExecutor<'_>) -> sqlx::Result<(i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT (SELECT count(*) FROM subscriptions WHERE status = 'active') AS "active!",
                  (SELECT count(*) FROM payments WHERE status = 'under_review') AS "reviews!""#
    )
    .fetch_one(db)
    .await?;
    Ok((r.active, r.reviews))
}

mod online;
pub use online::*;

mod list;
pub use list::*;

mod stats;
pub use stats::*;
