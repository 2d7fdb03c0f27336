//! `/api/v1/broadcasts`: a message to many customers (a dry run counts them first), its progress, and pausing,
//! resuming or cancelling it. Texts are Telegram HTML, checked when the broadcast is made.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, Caller, Page, Params, PathOf, Writer, page_request};
use crate::app::AppState;
use crate::domain::page::Order;
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::broadcasts::{self, Action, BroadcastStatus, Draft, Progress, Request};

/// Who a broadcast goes to. Banned customers and customers who blocked the bot are always left out.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AudienceInput {
    /// `all`; `active` (an active or data-limited subscription); `expired` (a subscription expired in the last
    /// `days` days, none running now); `never_bought` (no paid order; trial users included); `location` (an
    /// active or data-limited subscription in `location`).
    pub kind: String,
    /// For `expired`: 1–3650.
    pub days: Option<i64>,
    /// For `location`: a location code (`de`).
    pub location: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBroadcast {
    /// The message per language (`en`, `fa`, `ru`), at least one; each 1–4096 characters of Telegram HTML
    /// (`<b> <i> <u> <s> <a href> <code> <pre> <blockquote> <tg-spoiler>`; `<`, `>`, `&` as entities).
    pub texts: BTreeMap<String, String>,
    /// The language customers get when theirs is not in `texts` (default `en` when given, else the first).
    pub fallback: Option<String>,
    pub audience: AudienceInput,
    /// Only count the audience: nothing is written or sent.
    #[serde(default)]
    pub dry_run: bool,
}

/// A dry run's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct AudienceCount {
    /// Customers the broadcast would go to now.
    pub count: i64,
}

/// A broadcast and how far it got.
#[derive(Debug, Serialize, ToSchema)]
pub struct BroadcastView {
    pub id: i64,
    pub status: BroadcastStatus,
    #[schema(value_type = Object)]
    pub texts: serde_json::Value,
    pub fallback: String,
    #[schema(value_type = Object)]
    pub audience: serde_json::Value,
    pub progress: Progress,
    /// `admin`, `api_key`, `cli`.
    pub created_by_kind: String,
    pub created_by_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<broadcasts::Broadcast> for BroadcastView {
    fn from(b: broadcasts::Broadcast) -> Self {
        let r = b.row;
        BroadcastView {
            id: r.id,
            status: r.status,
            texts: r.texts,
            fallback: r.fallback,
            audience: r.audience,
            progress: b.progress,
            created_by_kind: r.created_by_kind,
            created_by_id: r.created_by_id,
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// Send a message to an audience of customers, or (`dry_run`) count them. The recipients are fixed when it is
/// made; a job sends it within Telegram's limits (`telegram.broadcast.per_second`), at most once per customer.
#[utoipa::path(post, path = "/api/v1/broadcasts", tag = "broadcasts", request_body = CreateBroadcast,
    responses((status = 201, body = BroadcastView, description = "Created; sending"),
              (status = 200, body = AudienceCount, description = "Dry run: the audience's size"),
              (status = 400, body = Problem), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn create_broadcast(
    State(state): State<AppState>,
    writer: Writer,
    Body(req): Body<CreateBroadcast>,
) -> AppResult<Response> {
    let draft = Draft::parse(&Request {
        texts: req.texts,
        fallback: req.fallback,
        audience_kind: req.audience.kind,
        days: req.audience.days,
        location: req.audience.location,
    })?;
    if req.dry_run {
        let count = broadcasts::count(&state.pool, &draft).await?;
        return Ok(Json(AudienceCount { count }).into_response());
    }
    let created = broadcasts::create(&state.pool, &state.settings.jobs, &draft, &writer.who()).await?;
    Ok((StatusCode::CREATED, Json(BroadcastView::from(created))).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct BroadcastQuery {
    pub status: Option<BroadcastStatus>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`, over (created_at, id).
    pub order: Option<Order>,
}

/// Broadcasts with their progress.
#[utoipa::path(get, path = "/api/v1/broadcasts", tag = "broadcasts", params(BroadcastQuery),
    responses((status = 200, body = Page<BroadcastView>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_broadcasts(
    State(state): State<AppState>,
    _caller: Caller,
    Params(q): Params<BroadcastQuery>,
) -> AppResult<Json<Page<BroadcastView>>> {
    let page = page_request(q.limit, q.cursor.as_deref(), q.order)?;
    let (items, next) = broadcasts::list(&state.pool, q.status, &page).await?;
    Ok(Json(Page::new(items, next).map(BroadcastView::from)))
}

/// One broadcast: status and progress (total, sent, failed, blocked, unknown, skipped, left).
#[utoipa::path(get, path = "/api/v1/broadcasts/{id}", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = BroadcastView), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
pub async fn get_broadcast(
    State(state): State<AppState>,
    _caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<BroadcastView>> {
    Ok(Json(broadcasts::get(&state.pool, id).await?.into()))
}

async fn act(state: &AppState, writer: &Writer, id: i64, action: Action) -> AppResult<Json<BroadcastView>> {
    let b = broadcasts::act(&state.pool, &state.settings.jobs, id, action, &writer.who()).await?;
    Ok(Json(b.into()))
}

/// Pause a running broadcast: sending stops after the few messages under way. 409 unless it is running.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/pause", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = BroadcastView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn pause_broadcast(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<BroadcastView>> {
    act(&state, &writer, id, Action::Pause).await
}

/// Resume a paused broadcast where it stopped. 409 unless it is paused.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/resume", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = BroadcastView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn resume_broadcast(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<BroadcastView>> {
    act(&state, &writer, id, Action::Resume).await
}

/// Cancel a running or paused broadcast for good: whoever was not sent yet is skipped. 409 once it is done or
/// cancelled.
#[utoipa::path(post, path = "/api/v1/broadcasts/{id}/cancel", tag = "broadcasts",
    params(("id" = i64, Path, description = "broadcast id")),
    responses((status = 200, body = BroadcastView), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn cancel_broadcast(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<BroadcastView>> {
    act(&state, &writer, id, Action::Cancel).await
}
