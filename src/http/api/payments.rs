//! `/api/v1/payments`: the filtered listing, one payment in full, and accepting or rejecting a card payment
//! under review — the same decision as the Telegram `/accept` and `/reject` (exactly one wins; the loser gets
//! 409 "already decided", by whom and when).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, Caller, Page, Params, PathOf, Writer, page_request};
use crate::app::AppState;
use crate::db::payments::{PaymentFilter, PaymentListRow};
use crate::domain::page::Order;
use crate::domain::status::{PaymentMethod, PaymentStatus};
use crate::domain::{Currency, Money};
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::payments::PaymentView;
use crate::services::payments::admin::{self, ApiVerdict};
use crate::services::payments::review::RejectReason;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PaymentQuery {
    pub status: Option<PaymentStatus>,
    pub method: Option<PaymentMethod>,
    /// The customer (through the payment's order).
    pub user_id: Option<i64>,
    pub order_id: Option<i64>,
    /// Created at or after (RFC 3339).
    pub created_from: Option<DateTime<Utc>>,
    /// Created before (RFC 3339).
    pub created_to: Option<DateTime<Utc>>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`, over (created_at, id).
    pub order: Option<Order>,
}

/// A payment in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentItem {
    pub id: i64,
    pub order_id: i64,
    pub user_id: i64,
    pub method: PaymentMethod,
    pub status: PaymentStatus,
    /// Integer minor units (cents; rials).
    pub amount_minor: i64,
    pub currency: Currency,
    /// Exact, in major units (`"12.50"`).
    pub amount: String,
    pub created_at: DateTime<Utc>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
}

fn decimal(minor: i64, currency: Currency) -> String {
    Money::from_minor(minor, currency).map(|m| m.to_major().to_string()).unwrap_or_else(|_| minor.to_string())
}

impl From<PaymentListRow> for PaymentItem {
    fn from(r: PaymentListRow) -> Self {
        PaymentItem {
            amount: decimal(r.amount_minor, r.currency),
            id: r.id,
            order_id: r.order_id,
            user_id: r.user_id,
            method: r.method,
            status: r.status,
            amount_minor: r.amount_minor,
            currency: r.currency,
            created_at: r.created_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
        }
    }
}

/// The gateway's identifiers of an online payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProcessorIds {
    pub stripe_session_id: Option<String>,
    pub stripe_payment_intent_id: Option<String>,
    pub zarinpal_authority: Option<String>,
    pub zarinpal_ref_id: Option<String>,
    /// Masked, as Zarinpal reports it.
    pub zarinpal_card_pan: Option<String>,
}

/// The receipt of a card payment (Telegram's file ids; the image itself stays in Telegram).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReceiptInfo {
    pub file_id: Option<String>,
    pub file_unique_id: Option<String>,
    /// `photo` or `document`.
    pub kind: Option<String>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub review_deadline: Option<DateTime<Utc>>,
}

/// Who decided, when, how and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewInfo {
    pub decided_by: Option<String>,
    /// `telegram`, `api`, `scheduler`, `cli` or `dashboard`.
    pub decided_via: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub reason_code: Option<String>,
    pub reason: Option<String>,
}

/// One payment in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDetail {
    #[serde(flatten)]
    pub item: PaymentItem,
    pub order_status: String,
    pub plan_id: Option<i64>,
    pub customer_telegram_id: i64,
    pub customer_username: Option<String>,
    pub processor: ProcessorIds,
    pub receipt: ReceiptInfo,
    pub review: ReviewInfo,
    pub failure_reason: Option<String>,
    pub flagged_at: Option<DateTime<Utc>>,
}

impl From<PaymentView> for PaymentDetail {
    fn from(v: PaymentView) -> Self {
        let p = v.payment;
        PaymentDetail {
            item: PaymentItem {
                amount: v.amount.to_major().to_string(),
                id: p.id,
                order_id: p.order_id,
                user_id: v.order.user_id,
                method: p.method,
                status: p.status,
                amount_minor: p.amount_minor,
                currency: p.currency,
                created_at: p.created_at,
                decided_at: p.decided_at,
                decided_by: p.decided_by.clone(),
            },
            order_status: v.order.status.as_str().to_owned(),
            plan_id: v.order.plan_id,
            customer_telegram_id: v.customer.telegram_id,
            customer_username: v.customer.username,
            processor: ProcessorIds {
                stripe_session_id: p.stripe_session_id,
                stripe_payment_intent_id: p.stripe_payment_intent_id,
                zarinpal_authority: p.zarinpal_authority,
                zarinpal_ref_id: p.zarinpal_ref_id,
                zarinpal_card_pan: p.zarinpal_card_pan,
            },
            receipt: ReceiptInfo {
                file_id: p.receipt_file_id,
                file_unique_id: p.receipt_file_unique_id,
                kind: p.receipt_kind,
                submitted_at: p.submitted_at,
                review_deadline: p.review_deadline,
            },
            review: ReviewInfo {
                decided_by: p.decided_by,
                decided_via: p.decided_via,
                decided_at: p.decided_at,
                reason_code: p.reason_code,
                reason: p.reason,
            },
            failure_reason: p.failure_reason,
            flagged_at: p.flagged_at,
        }
    }
}

/// Payments, newest first unless `order=asc`; every filter combines with the others.
#[utoipa::path(get, path = "/api/v1/payments", tag = "payments", params(PaymentQuery),
    responses((status = 200, body = Page<PaymentItem>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_payments(
    State(state): State<AppState>,
    _caller: Caller,
    Params(q): Params<PaymentQuery>,
) -> AppResult<Json<Page<PaymentItem>>> {
    let page = page_request(q.limit, q.cursor.as_deref(), q.order)?;
    let filter = PaymentFilter {
        status: q.status,
        method: q.method,
        user_id: q.user_id,
        order_id: q.order_id,
        created_from: q.created_from,
        created_to: q.created_to,
        ..Default::default()
    };
    let (rows, next) = admin::list(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(PaymentItem::from)))
}

/// One payment: amount, processor ids, receipt, reviewer and reason.
#[utoipa::path(get, path = "/api/v1/payments/{id}", tag = "payments", params(("id" = i64, Path, description = "payment id")),
    responses((status = 200, body = PaymentDetail), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get_payment(
    State(state): State<AppState>,
    _caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<PaymentDetail>> {
    Ok(Json(admin::get(&state.pool, id).await?.into()))
}

/// Accept a card payment under review: its order is fulfilled once. 409 when someone decided first.
#[utoipa::path(post, path = "/api/v1/payments/{id}/accept", tag = "payments",
    params(("id" = i64, Path, description = "payment id")),
    responses((status = 200, body = PaymentDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn accept_payment(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<PaymentDetail>> {
    let view = admin::decide(&state.pool, &state.settings, id, ApiVerdict::Accept, &writer.who()).await?;
    Ok(Json(view.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why, as the customer reads it (1–500 characters).
    pub reason: String,
    /// The kind of reason (`other` unless given).
    pub code: Option<RejectReason>,
}

/// Reject a card payment under review (or overrule an automatic acceptance, taking back what it granted).
#[utoipa::path(post, path = "/api/v1/payments/{id}/reject", tag = "payments", request_body = RejectRequest,
    params(("id" = i64, Path, description = "payment id")),
    responses((status = 200, body = PaymentDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reject_payment(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<RejectRequest>,
) -> AppResult<Json<PaymentDetail>> {
    let verdict = ApiVerdict::Reject { reason: req.reason, code: req.code };
    let view = admin::decide(&state.pool, &state.settings, id, verdict, &writer.who()).await?;
    Ok(Json(view.into()))
}
