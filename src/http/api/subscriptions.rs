//! `/api/v1/subscriptions`: the filtered listing, one subscription in full, and what an operator does to one
//! (extend, add data, revoke, reset a device, rotate the feed URL), each audited with the caller. The state
//! rules are `services::subscriptions::admin`'s: an expired subscription comes back when extended, a limited
//! one only when data is added; pending and revoked ones cannot be extended (409).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, Caller, Page, Params, PathOf, Writer, page_request};
use crate::app::AppState;
use crate::db::subscriptions::{SubscriptionFilter, SubscriptionRow};
use crate::domain::page::Order;
use crate::domain::plan::BYTES_PER_GB;
use crate::domain::status::SubscriptionStatus;
use crate::error::{AppError, AppResult};
use crate::http::Problem;
use crate::services::subscriptions::admin::{self, Detail};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SubscriptionQuery {
    pub status: Option<SubscriptionStatus>,
    pub user_id: Option<i64>,
    pub server_id: Option<i64>,
    /// Location code (`de`).
    pub location: Option<String>,
    /// Ending before this instant (RFC 3339).
    pub expiring_before: Option<DateTime<Utc>>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`, over the id.
    pub order: Option<Order>,
}

/// A subscription in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionItem {
    pub id: i64,
    pub user_id: i64,
    pub order_id: Option<i64>,
    pub plan_id: i64,
    pub location: String,
    pub server_id: Option<i64>,
    pub is_trial: bool,
    pub status: SubscriptionStatus,
    pub seats: i32,
    pub duration_days: i32,
    /// Null: unlimited.
    pub data_cap_bytes: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub end_reason: Option<String>,
}

impl From<SubscriptionRow> for SubscriptionItem {
    fn from(s: SubscriptionRow) -> Self {
        SubscriptionItem {
            id: s.id,
            user_id: s.user_id,
            order_id: s.order_id,
            plan_id: s.plan_id,
            location: s.location_code,
            server_id: s.server_id,
            is_trial: s.is_trial,
            status: s.status,
            seats: s.seats,
            duration_days: s.duration_days,
            data_cap_bytes: s.data_cap_bytes,
            starts_at: s.starts_at,
            expires_at: s.expires_at,
            ended_at: s.ended_at,
            end_reason: s.end_reason,
        }
    }
}

/// A device's link.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub seat: i32,
    /// The inbound this link is for (e.g. `VLESS WS TLS`) when the node has several.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub link: String,
}

/// One subscription in full.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionDetail {
    #[serde(flatten)]
    pub item: SubscriptionItem,
    pub up_bytes: i64,
    pub down_bytes: i64,
    pub used_bytes: i64,
    /// What apps import; it changes when rotated. Working credentials: shown to callers who may change things
    /// only (null for viewers and `read` keys).
    pub feed_url: Option<String>,
    /// Each device's link (working credentials: empty for viewers and `read` keys).
    pub devices: Vec<Device>,
    /// How many devices (seats) it has.
    pub seats: usize,
}

impl From<Detail> for SubscriptionDetail {
    fn from(d: Detail) -> Self {
        SubscriptionDetail {
            item: d.sub.into(),
            up_bytes: d.up_bytes,
            down_bytes: d.down_bytes,
            used_bytes: d.up_bytes.saturating_add(d.down_bytes),
            feed_url: Some(d.feed_url),
            seats: d.devices.len(),
            devices: d.devices.into_iter().map(|l| Device { seat: l.seat, label: l.label, link: l.link }).collect(),
        }
    }
}

/// Subscriptions, newest first unless `order=asc`; every filter combines with the others.
#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions", params(SubscriptionQuery),
    responses((status = 200, body = Page<SubscriptionItem>), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn list_subscriptions(
    State(state): State<AppState>,
    _caller: Caller,
    Params(q): Params<SubscriptionQuery>,
) -> AppResult<Json<Page<SubscriptionItem>>> {
    let page = page_request(q.limit, q.cursor.as_deref(), q.order)?;
    if q.location.as_ref().is_some_and(|l| l.is_empty() || l.len() > 32) {
        return Err(AppError::field("location", "a location code"));
    }
    let filter = SubscriptionFilter {
        status: q.status,
        user_id: q.user_id,
        server_id: q.server_id,
        location_code: q.location,
        expiring_before: q.expiring_before,
    };
    let (rows, next) = admin::list(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(SubscriptionItem::from)))
}

/// One subscription: devices, usage, data cap and feed URL.
#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions",
    params(("id" = i64, Path, description = "subscription id")),
    responses((status = 200, body = SubscriptionDetail), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get_subscription(
    State(state): State<AppState>,
    caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<SubscriptionDetail>> {
    let mut detail: SubscriptionDetail = admin::get(&state.pool, &state.settings, id).await?.into();
    // the feed URL and the links are working VPN access: not for read-only callers
    if !caller.principal.can_write() {
        detail.feed_url = None;
        detail.devices.clear();
    }
    Ok(Json(detail))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// Days to add, 1–3650.
    pub days: i64,
}

/// Add days. An expired subscription comes back; a limited one gets the days but stays limited until data is
/// added; pending and revoked ones are refused (409).
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/extend", tag = "subscriptions", request_body = ExtendRequest,
    params(("id" = i64, Path, description = "subscription id")),
    responses((status = 200, body = SubscriptionDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn extend_subscription(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<ExtendRequest>,
) -> AppResult<Json<SubscriptionDetail>> {
    Ok(Json(admin::extend(&state.pool, &state.settings, id, req.days, &writer.who()).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddDataRequest {
    /// Gigabytes to add (binary, 2³⁰ bytes, as data caps count them); or give `bytes`.
    pub gb: Option<i64>,
    /// Bytes to add (at most 100 TiB).
    pub bytes: Option<i64>,
}

/// Raise the data cap (active or limited subscriptions with a cap; a limited one with data left comes back).
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/add-data", tag = "subscriptions", request_body = AddDataRequest,
    params(("id" = i64, Path, description = "subscription id")),
    responses((status = 200, body = SubscriptionDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn add_subscription_data(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<AddDataRequest>,
) -> AppResult<Json<SubscriptionDetail>> {
    let (bytes, field) = match (req.gb, req.bytes) {
        (Some(gb), None) => (gb.checked_mul(BYTES_PER_GB).unwrap_or(i64::MAX), "gb"),
        (None, Some(bytes)) => (bytes, "bytes"),
        _ => return Err(AppError::field("gb", "give either `gb` or `bytes`")),
    };
    Ok(Json(admin::add_data(&state.pool, &state.settings, id, bytes, field, &writer.who()).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeRequest {
    /// Why (1–500 characters; kept with the subscription and in the audit log).
    pub reason: String,
}

/// End it now: its clients leave the node and the customer is told. 409 when it is revoked already.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/revoke", tag = "subscriptions", request_body = RevokeRequest,
    params(("id" = i64, Path, description = "subscription id")),
    responses((status = 200, body = SubscriptionDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn revoke_subscription(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<RevokeRequest>,
) -> AppResult<Json<SubscriptionDetail>> {
    Ok(Json(admin::revoke(&state.pool, &state.settings, id, &req.reason, &writer.who()).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetSeatRequest {
    /// The device number (1 = the first).
    pub seat: i64,
}

/// Give one device a new link (the old one stops working) and the subscription a new feed URL; active
/// subscriptions only.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/reset-seat", tag = "subscriptions",
    request_body = ResetSeatRequest, params(("id" = i64, Path, description = "subscription id")),
    responses((status = 200, body = SubscriptionDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn reset_subscription_seat(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<ResetSeatRequest>,
) -> AppResult<Json<SubscriptionDetail>> {
    Ok(Json(admin::reset_seat(&state.pool, &state.settings, id, req.seat, &writer.who()).await?.into()))
}

/// Give it a new feed URL; the old one answers 404 from now on.
#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/rotate-url", tag = "subscriptions",
    params(("id" = i64, Path, description = "subscription id")),
    responses((status = 200, body = SubscriptionDetail), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn rotate_subscription_url(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<SubscriptionDetail>> {
    Ok(Json(admin::rotate_url(&state.pool, &state.settings, id, &writer.who()).await?.into()))
}
