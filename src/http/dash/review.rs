//! The review queue: card-to-card receipts waiting for a decision, oldest first, each with the receipt image
//! (fetched from Telegram on demand), the order, plan and amount, when it would be accepted automatically, and
//! the customer's record. Accept and Reject go through the same exactly-once decision as Telegram's `/accept`
//! and the admin API (`services::payments::admin`): a second decision gets a 409 page saying who decided first.
//! New receipts appear without a reload: the queue's last element polls `/dash/review/items` every 5 s for the
//! cards it does not show yet (and replaces cards decided elsewhere); without JavaScript a reload does the same.

use std::collections::HashSet;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::customers::{money, person, status_badge, status_text};
use super::layout::{Ctx, Page, PageResult};
use super::session::{Editor, Viewer};
use super::{BASE, Form};
use crate::app::AppState;
use crate::bot::client::FetchedFile;
use crate::domain::status::PaymentStatus;
use crate::error::AppError;
use crate::services::payments::admin::{self, ApiVerdict, QueueItem};
use crate::services::payments::review::{RejectReason, Reviewer};

/// How many waiting receipts the page shows (the oldest; a page stays well under 100 KB).
const QUEUE_ROWS: i64 = 20;
/// The largest receipt image served.
pub const MAX_RECEIPT_BYTES: u64 = 10 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/review", get(show))
        .route("/dash/review/items", get(items))
        .route("/dash/review/{id}/receipt", get(receipt))
        .route("/dash/review/{id}/accept", post(accept))
        .route("/dash/review/{id}/reject", post(reject))
}

/// A path id, or a 422 page naming `id`.
pub fn path_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| AppError::field("id", "a positive whole number"))
}

async fn show(State(state): State<AppState>, v: Viewer) -> PageResult {
    let ctx = &v.ctx;
    let mut queue = admin::queue(&state.pool, QUEUE_ROWS + 1, &HashSet::new()).await?;
    let more = queue.waiting.len() as i64 > QUEUE_ROWS;
    queue.waiting.truncate(QUEUE_ROWS as usize);
    queue.items.truncate(QUEUE_ROWS as usize);
    let bot_on = state.telegram.is_some();
    let body = html! {
        p.muted { (ctx.t("dash-review-intro")) }
        @if more { p.flash.warn { (ctx.ta("dash-review-more", &[("count", ctx.num(QUEUE_ROWS).into())])) } }
        div #review-queue aria-live="polite" {
            @if queue.items.is_empty() { p #review-empty { (ctx.t("dash-review-empty")) } }
            @for item in &queue.items { (card(ctx, &state, item, bot_on)) }
            (poller(&queue.waiting))
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-review-title"), body }))
}

#[derive(Deserialize, Default)]
struct Shown {
    shown: Option<String>,
}

/// The poll: the cards of receipts not in `shown` (ids the page has, comma-separated), the cards in `shown`
/// that are no longer waiting replaced by a short note (out of band), and a new poller.
async fn items(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q: Shown = super::form::parse(raw.unwrap_or_default().as_bytes())?;
    let mut shown = HashSet::new();
    for part in q.shown.as_deref().unwrap_or("").split(',').filter(|p| !p.is_empty()).take(QUEUE_ROWS as usize * 4) {
        shown.insert(part.parse::<i64>().map_err(|_| AppError::field("shown", "payment ids, comma-separated"))?);
    }
    let queue = admin::queue(&state.pool, QUEUE_ROWS, &shown).await?;
    let bot_on = state.telegram.is_some();
    let mut gone: Vec<i64> = shown.iter().copied().filter(|id| !queue.waiting.contains(id)).collect();
    gone.sort_unstable();
    let markup = html! {
        @if !queue.items.is_empty() && shown.is_empty() { p #review-empty hx-swap-oob="true" hidden {} }
        @for id in &gone {
            article.card id=(format!("review-{id}")) hx-swap-oob="true" {
                p.muted { (ctx.ta("dash-review-gone", &[("id", ctx.num(*id).into())])) }
            }
        }
        @for item in &queue.items { (card(ctx, &state, item, bot_on)) }
        (poller(&queue.waiting))
    };
    Ok(ctx.fragment(markup))
}

/// The element that polls for new receipts (replaced by the answer, cards first).
fn poller(waiting: &[i64]) -> Markup {
    let ids: Vec<String> = waiting.iter().map(i64::to_string).collect();
    let url = format!("{BASE}/review/items?shown={}", ids.join(","));
    html! { div #review-poll hx-get=(url) hx-trigger="every 5s" hx-swap="outerHTML" {} }
}

fn card(ctx: &Ctx, state: &AppState, item: &QueueItem, bot_on: bool) -> Markup {
    let (v, counts) = (&item.view, &item.counts);
    let (p, c) = (&v.payment, &v.customer);
    let id = p.id;
    let card_settings = &state.settings.payments.card;
    let automatic =
        card_settings.auto_accept && card_settings.auto_accept_ceiling(p.currency).is_some_and(|m| p.amount_minor <= m);
    let receipt_url = format!("{BASE}/review/{id}/receipt");
    let who = person(c.first_name.as_deref(), c.username.as_deref(), c.telegram_id);
    html! {
        article.card id=(format!("review-{id}")) aria-labelledby=(format!("review-{id}-h")) {
            h2 id=(format!("review-{id}-h")) { (ctx.ta("dash-review-card", &[("id", ctx.num(id).into()), ("customer", who.clone().into())])) }
            div.review {
                div.receipt {
                    @if bot_on && p.receipt_file_id.is_some() {
                        a href=(receipt_url) { img src=(receipt_url) alt=(ctx.ta("dash-review-receipt-alt", &[("id", ctx.num(id).into())])) loading="lazy"; }
                    } @else {
                        p.flash.warn { (ctx.t("dash-review-receipt-off")) }
                    }
                }
                div {
                    div.table-wrap { table {
                        tbody {
                            tr { th scope="row" { (ctx.t("dash-review-amount")) } td { strong { (money(ctx, Some(p.amount_minor), Some(p.currency))) } } }
                            tr { th scope="row" { (ctx.t("dash-review-order")) } td { "#" (ctx.num(v.order.id)) " · " (ctx.t(&format!("dash-review-kind-{}", v.order.kind))) } }
                            tr { th scope="row" { (ctx.t("dash-review-plan")) } td { (v.plan.as_ref().map(|p| p.code.as_str()).unwrap_or("—")) } }
                            tr { th scope="row" { (ctx.t("dash-review-submitted")) } td { (ctx.when_opt(p.submitted_at)) } }
                            tr {
                                th scope="row" { (ctx.t(if automatic { "dash-review-auto-at" } else { "dash-review-due" })) }
                                td {
                                    (ctx.when_opt(p.review_deadline))
                                    @if !automatic { br; span.muted { (ctx.t("dash-review-not-automatic")) } }
                                }
                            }
                        }
                    } }
                    h3 { (ctx.t("dash-review-history")) }
                    div.table-wrap { table {
                        tbody {
                            tr { th scope="row" { (ctx.t("dash-review-customer")) } td { a href=(format!("{BASE}/customers/{}", c.id)) { (who) } } }
                            tr { th scope="row" { (ctx.t("dash-review-paid-before")) } td { (ctx.num(v.history.0)) } }
                            tr { th scope="row" { (ctx.t("dash-review-rejected-before")) } td {
                                @if v.history.1 > 0 { span.badge.warn { (ctx.num(v.history.1)) } } @else { (ctx.num(0)) }
                            } }
                            tr { th scope="row" { (ctx.t("dash-review-orders")) } td { (ctx.num(counts.orders)) } }
                            tr { th scope="row" { (ctx.t("dash-review-active-subs")) } td { (ctx.num(counts.active_subscriptions)) } }
                            tr { th scope="row" { (ctx.t("dash-review-trial")) } td {
                                @match c.trial_used_at { Some(at) => { (ctx.when(at)) } None => { (ctx.t("dash-review-trial-no")) } }
                            } }
                            @if c.banned_at.is_some() {
                                tr { th scope="row" { (ctx.t("dash-customers-state")) } td { (status_badge(ctx, "banned")) } }
                            }
                        }
                    } }
                    @if ctx.can_write() { (decide_forms(ctx, id)) }
                }
            }
        }
    }
}

fn decide_forms(ctx: &Ctx, id: i64) -> Markup {
    html! {
        div.actions {
            form.inline method="post" action=(format!("{BASE}/review/{id}/accept")) {
                (ctx.csrf_field())
                button type="submit" { (ctx.t("dash-review-accept")) }
            }
        }
        form.stack method="post" action=(format!("{BASE}/review/{id}/reject")) {
            (ctx.csrf_field())
            label { (ctx.t("dash-review-reason-kind"))
                select name="code" {
                    @for code in [RejectReason::WrongAmount, RejectReason::Unreadable, RejectReason::NotReceived, RejectReason::Duplicate, RejectReason::Other] {
                        option value=(code.as_str()) selected[code == RejectReason::Other] { (ctx.t(&format!("dash-review-reason-{}", code.as_str().replace('_', "-")))) }
                    }
                }
            }
            label { (ctx.t("dash-review-reason")) textarea name="reason" required maxlength="500" rows="2" {} }
            div { button.danger type="submit" { (ctx.t("dash-review-reject")) } }
        }
    }
}

/// The receipt image as Telegram holds it (JPEG, PNG or WebP, at most 10 MB), or a placeholder saying why not.
async fn receipt(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> PageResult {
    let ctx = &v.ctx;
    let view = admin::get(&state.pool, path_id(&id)?).await?;
    let (Some(tg), Some(file_id)) = (&state.telegram, view.payment.receipt_file_id.as_deref()) else {
        return Ok(placeholder(ctx, StatusCode::NOT_FOUND, "dash-review-receipt-off"));
    };
    match tg.bot.fetch_file(file_id, MAX_RECEIPT_BYTES).await {
        Ok(FetchedFile::Bytes(bytes)) => match image_type(&bytes) {
            Some(kind) => Ok(([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "private, max-age=3600")], bytes)
                .into_response()),
            None => Ok(placeholder(ctx, StatusCode::UNSUPPORTED_MEDIA_TYPE, "dash-review-receipt-kind")),
        },
        Ok(FetchedFile::TooBig) => Ok(placeholder(ctx, StatusCode::PAYLOAD_TOO_LARGE, "dash-review-receipt-big")),
        Ok(FetchedFile::Missing) => Ok(placeholder(ctx, StatusCode::NOT_FOUND, "dash-review-receipt-gone")),
        Err(e) => {
            tracing::warn!(payment.id = view.payment.id, error = %e, "could not fetch a receipt from Telegram");
            Ok(placeholder(ctx, StatusCode::BAD_GATEWAY, "dash-review-receipt-error"))
        }
    }
}

/// The image type of these bytes, when it is one the dashboard shows.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// A small SVG in place of a receipt that cannot be shown, saying why (in the operator's language).
fn placeholder(ctx: &Ctx, status: StatusCode, key: &str) -> axum::response::Response {
    let svg = html! {
        svg xmlns="http://www.w3.org/2000/svg" width="480" height="120" viewBox="0 0 480 120" role="img" aria-label=(ctx.t(key)) {
            rect width="480" height="120" fill="#eceff3" {}
            text x="240" y="66" text-anchor="middle" font-family="sans-serif" font-size="16" fill="#303642" { (ctx.t(key)) }
        }
    };
    (status, [(header::CONTENT_TYPE, "image/svg+xml; charset=utf-8")], svg.into_string()).into_response()
}

async fn accept(State(state): State<AppState>, e: Editor, Path(id): Path<String>) -> PageResult {
    let id = path_id(&id)?;
    decided(&state, &e.ctx, id, ApiVerdict::Accept, &Reviewer::dashboard(&e.who()), "review-accepted").await
}

#[derive(Deserialize)]
struct RejectForm {
    reason: Option<String>,
    code: Option<String>,
}

async fn reject(
    State(state): State<AppState>,
    e: Editor,
    Path(id): Path<String>,
    Form(f): Form<RejectForm>,
) -> PageResult {
    let id = path_id(&id)?;
    let code = match f.code.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            c.parse::<RejectReason>()
                .map_err(|_| AppError::field("code", "wrong_amount, unreadable, not_received, duplicate or other"))?,
        ),
    };
    let verdict = ApiVerdict::Reject { reason: f.reason.unwrap_or_default(), code };
    decided(&state, &e.ctx, id, verdict, &Reviewer::dashboard(&e.who()), "review-rejected").await
}

/// Decides, then back to the queue; a decision someone took first is a 409 page saying who, when and what.
async fn decided(
    state: &AppState,
    ctx: &Ctx,
    id: i64,
    verdict: ApiVerdict,
    reviewer: &Reviewer,
    done: &str,
) -> PageResult {
    match admin::decide_as(&state.pool, &state.settings, id, verdict, reviewer).await {
        Ok(_) => Ok(ctx.done(&format!("{BASE}/review"), done)),
        Err(AppError::Conflict(why)) => {
            let p = admin::get(&state.pool, id).await?.payment;
            if p.status == PaymentStatus::UnderReview {
                // not decided by anyone: the order could not take it (cancelled meanwhile, say)
                return Err(AppError::Conflict(why).into());
            }
            let body = html! {
                div.flash.warn role="alert" {
                    p { (ctx.ta("dash-review-already", &[
                        ("id", ctx.num(id).into()),
                        ("status", status_text(ctx, p.status.as_str()).into()),
                        ("by", p.decided_by.clone().unwrap_or_else(|| "—".into()).into()),
                        ("at", ctx.when_opt(p.decided_at).into()),
                    ])) }
                }
                p { a href=(format!("{BASE}/review")) { (ctx.t("dash-review-back")) } }
            };
            Ok(ctx.render_status(StatusCode::CONFLICT, Page { title: ctx.t("dash-review-already-title"), body }))
        }
        Err(e) => Err(e.into()),
    }
}
