//! The `orders` table. A `draft` is the purchase being put together in the bot (one per user); its currency is
//! fixed when it starts, its price when it is submitted (`awaiting_payment`).

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::domain::Currency;
use crate::domain::status::{OrderStatus, PaymentMethod};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrderRow {
    pub id: i64,
    pub public_id: Uuid,
    pub user_id: i64,
    pub kind: String,
    pub selection: serde_json::Value,
    pub plan_id: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency: Option<Currency>,
    pub status: OrderStatus,
    pub subscription_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// A card order: pay by then (the order expires after it unless a receipt is being checked).
    pub pay_by: Option<DateTime<Utc>>,
    /// A card order: the card shown (number, holder, bank), fixed when it was submitted.
    pub pay_to: Option<serde_json::Value>,
    /// What its fulfilment granted: days added (renewal) and bytes added (renewal or top-up).
    pub granted_days: Option<i32>,
    pub granted_bytes: Option<i64>,
}

macro_rules! select_order {
    ($tail:literal $(, $arg:expr)*) => {
        sqlx::query_as!(
            OrderRow,
            r#"SELECT id, public_id, user_id, kind, selection, plan_id, amount_minor, currency AS "currency: Currency",
                      status AS "status: OrderStatus", subscription_id, created_at, updated_at,
                      pay_by, pay_to, granted_days, granted_bytes
                 FROM orders "# + $tail
            $(, $arg)*
        )
    };
}

pub async fn find(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<OrderRow>> {
    select_order!("WHERE id = $1", id).fetch_optional(db).await
}

pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<OrderRow>> {
    select_order!("WHERE id = $1 FOR UPDATE", id).fetch_optional(conn).await
}

/// The user's draft, if any.
pub async fn draft_of(db: impl PgExecutor<'_>, user_id: i64) -> sqlx::Result<Option<OrderRow>> {
    select_order!("WHERE user_id = $1 AND status = 'draft'", user_id).fetch_optional(db).await
}

/// The user's orders awaiting payment, newest first (at most `limit`).
pub async fn awaiting_payment_of(db: impl PgExecutor<'_>, user_id: i64, limit: i64) -> sqlx::Result<Vec<OrderRow>> {
    select_order!(
        "WHERE user_id = $1 AND status = 'awaiting_payment' ORDER BY updated_at DESC, id DESC LIMIT $2",
        user_id,
        limit
    )
    .fetch_all(db)
    .await
}

/// Inserts a new draft in `currency` (the caller has ended any earlier one: one draft per user).
pub async fn insert_draft(
    conn: &mut PgConnection,
    user_id: i64,
    kind: &str,
    subscription_id: Option<i64>,
    selection: &serde_json::Value,
    currency: Currency,
) -> sqlx::Result<OrderRow> {
    sqlx::query_as!(
        OrderRow,
        r#"INSERT INTO orders (user_id, kind, subscription_id, selection, currency) VALUES ($1, $2, $3, $4, $5)
           RETURNING id, public_id, user_id, kind, selection, plan_id, amount_minor, currency AS "currency: Currency",
                     status AS "status: OrderStatus", subscription_id, created_at, updated_at,
                     pay_by, pay_to, granted_days, granted_bytes"#,
        user_id,
        kind,
        subscription_id,
        selection,
        currency.as_str()
    )
    .fetch_one(conn)
    .await
}

/// Cancels the user's draft, if any (a new purchase replaces it; its buttons go stale).
pub async fn cancel_draft_of(conn: &mut PgConnection, user_id: i64) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE orders SET status = 'cancelled', updated_at = now() WHERE user_id = $1 AND status = 'draft'",
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Stores a draft's selection; false if the order is not this user's draft any more.
pub async fn set_selection(
    db: impl PgExecutor<'_>,
    id: i64,
    user_id: i64,
    selection: &serde_json::Value,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE orders SET selection = $3, updated_at = now() WHERE id = $1 AND user_id = $2 AND status = 'draft'",
        id,
        user_id,
        selection
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Cancels the user's order while it is a draft or awaits payment and no payment of it is open (pending or under
/// review); false otherwise.
pub async fn cancel_open(conn: &mut PgConnection, id: i64, user_id: i64) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE orders o SET status = 'cancelled', updated_at = now()
            WHERE o.id = $1 AND o.user_id = $2 AND o.status IN ('draft', 'awaiting_payment')
              AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status IN ('pending', 'under_review'))"#,
        id,
        user_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves an order between states, checking the current one; false if it was not `from`.
pub async fn transition(conn: &mut PgConnection, id: i64, from: OrderStatus, to: OrderStatus) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE orders SET status = $3, updated_at = now(),
                  paid_at = CASE WHEN $3 = 'paid' THEN now() ELSE paid_at END,
                  fulfilled_at = CASE WHEN $3 = 'fulfilled' THEN now() ELSE fulfilled_at END
            WHERE id = $1 AND status = $2"#,
        id,
        from.as_str(),
        to.as_str()
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// `draft → awaiting_payment` with the plan and the price snapshot it will be paid at, the minutes it may take
/// to pay, and for a card order the card shown.
pub async fn submit(
    conn: &mut PgConnection,
    id: i64,
    plan_id: i64,
    price: crate::domain::Money,
    selection: &serde_json::Value,
    pay_to: Option<&serde_json::Value>,
    pay_within_mins: i32,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE orders SET status = 'awaiting_payment', plan_id = $2, amount_minor = $3, currency = $4,
                  selection = $5, updated_at = now(), pay_to = $6, pay_by = now() + make_interval(mins => $7)
            WHERE id = $1 AND status = 'draft'"#,
        id,
        plan_id,
        price.minor(),
        price.currency().as_str(),
        selection,
        pay_to,
        pay_within_mins,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives an order awaiting a card payment at least `mins` from now to be paid (a receipt of it was rejected and the
/// customer asked for a new one). False if it no longer awaits payment.
pub async fn extend_pay_by(conn: &mut PgConnection, id: i64, mins: i32) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE orders SET pay_by = GREATEST(pay_by, now() + make_interval(mins => $2)), updated_at = now()
            WHERE id = $1 AND status = 'awaiting_payment' AND pay_by IS NOT NULL"#,
        id,
        mins
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records what fulfilment granted (for taking it back if the payment is rejected later).
pub async fn set_granted(
    conn: &mut PgConnection,
    id: i64,
    subscription_id: i64,
    days: Option<i32>,
    bytes: Option<i64>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE orders SET subscription_id = $2, granted_days = $3, granted_bytes = $4, updated_at = now() WHERE id = $1",
        id,
        subscription_id,
        days,
        bytes
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Card orders past their deadline with no receipt being checked: they expire.
pub async fn overdue_unpaid(db: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"SELECT o.id FROM orders o
            WHERE o.status = 'awaiting_payment' AND o.pay_by < now()
              AND NOT EXISTS (SELECT 1 FROM payments p WHERE p.order_id = o.id AND p.status IN ('pending', 'under_review'))
            ORDER BY o.pay_by LIMIT $1"#,
        limit
    )
    .fetch_all(db)
    .await
}

/// How to find orders: every given filter must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    pub user_id: Option<i64>,
    pub plan_id: Option<i64>,
    pub kind: Option<String>,
    pub created_from: Option<DateTime<Utc>>,
    pub created_to: Option<DateTime<Utc>>,
    /// The price snapshot's currency.
    pub currency: Option<Currency>,
    /// Orders with a payment by this method.
    pub method: Option<PaymentMethod>,
}

/// An order of a listing with its customer (the dashboard and its CSV export).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct OrderLine {
    #[sqlx(flatten)]
    pub order: OrderRow,
    pub telegram_id: i64,
    pub username: Option<String>,
}

/// One page of orders by (created_at, id), `created_from` inclusive and `created_to` exclusive.
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &OrderFilter,
    page: &crate::domain::page::PageRequest,
) -> sqlx::Result<Vec<OrderRow>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("");
    page_query(&mut q, filter, page);
    q.build_query_as().fetch_all(db).await
}

/// [`page`] with each order's customer.
pub async fn lines(
    db: impl PgExecutor<'_>,
    filter: &OrderFilter,
    page: &crate::domain::page::PageRequest,
) -> sqlx::Result<Vec<OrderLine>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new("SELECT x.*, u.telegram_id, u.username FROM (");
    page_query(&mut q, filter, page);
    let dir = page.dir();
    q.push(format_args!(") x JOIN users u ON u.id = x.user_id ORDER BY x.created_at {dir}, x.id {dir}"));
    q.build_query_as().fetch_all(db).await
}

fn page_query(
    q: &mut sqlx::QueryBuilder<sqlx::Postgres>,
    filter: &OrderFilter,
    page: &crate::domain::page::PageRequest,
) {
    q.push(
        "SELECT id, public_id, user_id, kind, selection, plan_id, amount_minor, currency, status, subscription_id,
                created_at, updated_at, pay_by, pay_to, granted_days, granted_bytes
           FROM orders WHERE TRUE",
    );
    if let Some(currency) = filter.currency {
        q.push(" AND currency = ").push_bind(currency.as_str());
    }
    if let Some(method) = filter.method {
        q.push(" AND EXISTS (SELECT 1 FROM payments p WHERE p.order_id = orders.id AND p.method = ")
            .push_bind(method.as_str())
            .push(")");
    }
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(user_id) = filter.user_id {
        q.push(" AND user_id = ").push_bind(user_id);
    }
    if let Some(plan_id) = filter.plan_id {
        q.push(" AND plan_id = ").push_bind(plan_id);
    }
    if let Some(kind) = &filter.kind {
        q.push(" AND kind = ").push_bind(kind.clone());
    }
    if let Some(from) = filter.created_from {
        q.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.created_to {
        q.push(" AND created_at < ").push_bind(to);
    }
    if let Some(after) = page.after {
        q.push(" AND (created_at, id) ")
            .push(page.op())
            .push(" (")
            .push_bind(after.time())
            .push(", ")
            .push_bind(after.id);
        q.push(")");
    }
    q.push(" ORDER BY created_at ").push(page.dir()).push(", id ").push(page.dir());
    q.push(" LIMIT ").push_bind(page.fetch());
}
