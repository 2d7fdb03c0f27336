//! The admin listing of payments: keyset pages over `(created_at, id)`, filtered by status, method, order,
//! customer (through `orders`, payments have no user column), currency and creation time. Each filter is a bound value;
//! a status or method filter walks `payments_status_created` / `payments_method_created`, none walks
//! `payments_created`.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use crate::domain::Currency;
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::status::{PaymentMethod, PaymentStatus};

/// Which payments a listing shows (all filters combine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    pub status: Option<PaymentStatus>,
    pub method: Option<PaymentMethod>,
    pub user_id: Option<i64>,
    pub order_id: Option<i64>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created before.
    pub created_to: Option<DateTime<Utc>>,
    pub currency: Option<Currency>,
}

/// A payment of a listing with its customer's Telegram id and username (the dashboard and its CSV export).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentLine {
    #[sqlx(flatten)]
    pub payment: PaymentListRow,
    pub telegram_id: i64,
    pub username: Option<String>,
}

/// One payment of a listing, with its order's customer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentListRow {
    pub id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
}

impl PaymentListRow {
    pub fn cursor(&self) -> Cursor {
        Cursor::at(self.created_at, self.id)
    }
}

/// The listing's query: `fetch()` rows of the page (the caller cuts them).
fn list_query(prefix: &str, f: &PaymentFilter, page: &PageRequest) -> QueryBuilder<Postgres> {
    let mut q = QueryBuilder::new(prefix);
    q.push(
        "SELECT p.id, p.order_id, o.user_id, p.method, p.status, p.amount_minor, p.currency, p.created_at, \
         p.decided_at, p.decided_by FROM payments p JOIN orders o ON o.id = p.order_id WHERE true",
    );
    if let Some(status) = f.status {
        q.push(" AND p.status = ").push_bind(status.as_str());
    }
    if let Some(method) = f.method {
        q.push(" AND p.method = ").push_bind(method.as_str());
    }
    if let Some(currency) = f.currency {
        q.push(" AND p.currency = ").push_bind(currency.as_str());
    }
    if let Some(order_id) = f.order_id {
        q.push(" AND p.order_id = ").push_bind(order_id);
    }
    if let Some(user_id) = f.user_id {
        q.push(" AND o.user_id = ").push_bind(user_id);
    }
    if let Some(from) = f.created_from {
        q.push(" AND p.created_at >= ").push_bind(from);
    }
    if let Some(to) = f.created_to {
        q.push(" AND p.created_at < ").push_bind(to);
    }
    if let Some(after) = page.after {
        q.push(" AND (p.created_at, p.id) ").push(page.op()).push(" (");
        q.push_bind(after.time()).push(", ").push_bind(after.id).push(")");
    }
    let dir = page.dir();
    q.push(format_args!(" ORDER BY p.created_at {dir}, p.id {dir} LIMIT ")).push_bind(page.fetch());
    q
}

/// A page of payments (up to `page.fetch()` rows: one more than a page tells that another follows).
pub async fn list(db: impl PgExecutor<'_>, f: &PaymentFilter, page: &PageRequest) -> sqlx::Result<Vec<PaymentListRow>> {
    list_query("", f, page).build_query_as().fetch_all(db).await
}

/// [`list`] with each payment's customer.
pub async fn lines(db: impl PgExecutor<'_>, f: &PaymentFilter, page: &PageRequest) -> sqlx::Result<Vec<PaymentLine>> {
    let mut q = list_query("SELECT x.*, u.telegram_id, u.username FROM (", f, page);
    let dir = page.dir();
    q.push(format_args!(") x JOIN users u ON u.id = x.user_id ORDER BY x.created_at {dir}, x.id {dir}"));
    q.build_query_as().fetch_all(db).await
}

/// The plan of [`list`]'s query, run (`EXPLAIN (ANALYZE, BUFFERS)`), one line per row — for benchmarks.
pub async fn explain_list(db: impl PgExecutor<'_>, f: &PaymentFilter, page: &PageRequest) -> sqlx::Result<Vec<String>> {
    list_query("EXPLAIN (ANALYZE, BUFFERS) ", f, page).build_query_scalar().fetch_all(db).await
}
