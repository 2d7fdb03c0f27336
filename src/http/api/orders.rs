//! Orders (`/orders`): filtered pages, and one order with its payments. Read-only: orders change through the
//! bot, the payment routes and their reviews.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Caller, Page, Params, PathOf, page_request};
use crate::app::AppState;
use crate::db::orders::{OrderFilter, OrderRow};
use crate::db::payments::PaymentRow;
use crate::domain::Currency;
use crate::domain::page::Order as SortOrder;
use crate::domain::status::{OrderStatus, PaymentMethod, PaymentStatus};
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::orders::admin;

/// An order: what was bought, at which price (the snapshot taken when it was submitted), and where it stands.
#[derive(Debug, Serialize, ToSchema)]
pub struct Order {
    pub id: i64,
    pub public_id: uuid::Uuid,
    pub user_id: i64,
    /// `new`, `renewal` or `topup`.
    pub kind: String,
    pub status: OrderStatus,
    pub plan_id: Option<i64>,
    /// The price snapshot, in minor units (cents; rials for IRR).
    pub amount_minor: Option<i64>,
    pub currency: Option<Currency>,
    pub subscription_id: Option<i64>,
    pub pay_by: Option<DateTime<Utc>>,
    pub granted_days: Option<i32>,
    pub granted_bytes: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<OrderRow> for Order {
    fn from(o: OrderRow) -> Self {
        Order {
            id: o.id,
            public_id: o.public_id,
            user_id: o.user_id,
            kind: o.kind,
            status: o.status,
            plan_id: o.plan_id,
            amount_minor: o.amount_minor,
            currency: o.currency,
            subscription_id: o.subscription_id,
            pay_by: o.pay_by,
            granted_days: o.granted_days,
            granted_bytes: o.granted_bytes,
            created_at: o.created_at,
            updated_at: o.updated_at,
        }
    }
}

/// A payment of an order, as listed with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderPayment {
    pub id: i64,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    pub amount_minor: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub failure_reason: Option<String>,
}

impl From<PaymentRow> for OrderPayment {
    fn from(p: PaymentRow) -> Self {
        OrderPayment {
            id: p.id,
            method: p.method,
            status: p.status,
            amount_minor: p.amount_minor,
            currency: p.currency,
            created_at: p.created_at,
            submitted_at: p.submitted_at,
            decided_at: p.decided_at,
            decided_by: p.decided_by,
            reason: p.reason,
            failure_reason: p.failure_reason,
        }
    }
}

/// An order with its payments (oldest first).
#[derive(Debug, Serialize, ToSchema)]
pub struct OrderDetail {
    #[serde(flatten)]
    pub order: Order,
    pub payments: Vec<OrderPayment>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct OrderQuery {
    pub status: Option<OrderStatus>,
    pub user_id: Option<i64>,
    pub plan_id: Option<i64>,
    /// `new`, `renewal` or `topup`.
    pub kind: Option<String>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// By (created_at, id): `desc` (newest first, the default) or `asc`.
    pub order: Option<SortOrder>,
}

/// Orders, newest first, filtered (the filters combine).
#[utoipa::path(get, path = "/api/v1/orders", tag = "orders", params(OrderQuery),
    responses((status = 200, body = Page<Order>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_orders(
    State(state): State<AppState>,
    _caller: Caller,
    Params(query): Params<OrderQuery>,
) -> AppResult<Json<Page<Order>>> {
    let page = page_request(query.limit, query.cursor.as_deref(), query.order)?;
    let filter = OrderFilter {
        status: query.status,
        user_id: query.user_id,
        plan_id: query.plan_id,
        kind: query.kind,
        created_from: query.created_from,
        created_to: query.created_to,
        ..Default::default()
    };
    let (rows, next) = admin::page(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(Order::from)))
}

/// One order with its payments.
#[utoipa::path(get, path = "/api/v1/orders/{id}", tag = "orders", params(("id" = i64, Path, description = "The order's id")),
    responses((status = 200, body = OrderDetail), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_order(
    State(state): State<AppState>,
    _caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<OrderDetail>> {
    let (order, payments) = admin::detail(&state.pool, id).await?;
    Ok(Json(OrderDetail { order: order.into(), payments: payments.into_iter().map(OrderPayment::from).collect() }))
}
