//! Orders as the admin API and the dashboard read them: filtered pages (with their customers for the dashboard),
//! and one order with its payments.

use sqlx::PgPool;

use crate::db::{self, orders::OrderFilter, orders::OrderLine, orders::OrderRow, payments::PaymentRow};
use crate::domain::page::{Cursor, PageRequest};
use crate::error::{AppError, AppResult};

/// One page of orders (newest first unless asked otherwise) matching `filter`.
pub async fn page(
    pool: &PgPool,
    filter: &OrderFilter,
    page: &PageRequest,
) -> AppResult<(Vec<OrderRow>, Option<Cursor>)> {
    check(filter)?;
    let rows = db::orders::page(pool, filter, page).await?;
    Ok(page.cut(rows, |o| Cursor::at(o.created_at, o.id)))
}

/// [`page`] with each order's customer (Telegram id and username), for the dashboard and its CSV export.
pub async fn lines(
    pool: &PgPool,
    filter: &OrderFilter,
    page: &PageRequest,
) -> AppResult<(Vec<OrderLine>, Option<Cursor>)> {
    check(filter)?;
    let rows = db::orders::lines(pool, filter, page).await?;
    Ok(page.cut(rows, |l| Cursor::at(l.order.created_at, l.order.id)))
}

fn check(filter: &OrderFilter) -> AppResult<()> {
    if let Some(kind) = &filter.kind
        && ![super::NEW, super::RENEWAL, super::TOPUP].contains(&kind.as_str())
    {
        return Err(AppError::field("kind", "new, renewal or topup"));
    }
    if let (Some(from), Some(to)) = (filter.created_from, filter.created_to)
        && from > to
    {
        return Err(AppError::field("created_to", "before created_from"));
    }
    Ok(())
}

/// An order with its payments (oldest first).
pub async fn detail(pool: &PgPool, id: i64) -> AppResult<(OrderRow, Vec<PaymentRow>)> {
    let order = db::orders::find(pool, id).await?.ok_or(AppError::NotFound("order"))?;
    let payments = db::payments::of_order(pool, id).await?;
    Ok((order, payments))
}
