//! Broadcasts (`/dash/broadcasts`): the list with each one's progress (a running one refreshes itself through
//! htmx), a broadcast's page with its texts as customers see them and pause/resume/cancel, and (in `compose`)
//! writing one: texts per language, audience, a preview, then sending. All through `services::broadcasts`, like
//! the admin API, so every change is audited.

mod compose;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::BASE;
use super::layout::{Ctx, Page, PageResult, trusted};
use super::session::{Editor, Viewer};
use crate::app::AppState;
use crate::domain::Language;
use crate::domain::page::{Cursor, Order, PageRequest};
use crate::error::AppError;
use crate::services::broadcasts::{self, Action, Audience, Broadcast, BroadcastStatus, html as tg_html};
use crate::services::users;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/broadcasts", get(list).post(compose::send))
        .route("/dash/broadcasts/new", get(compose::new).post(compose::edit))
        .route("/dash/broadcasts/preview", post(compose::preview))
        .route("/dash/broadcasts/{id}", get(show))
        .route("/dash/broadcasts/{id}/progress", get(progress))
        .route("/dash/broadcasts/{id}/pause", post(pause))
        .route("/dash/broadcasts/{id}/resume", post(resume))
        .route("/dash/broadcasts/{id}/cancel", post(cancel))
}

const PER_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
}

fn broadcast_id(text: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| AppError::field("id", "not a broadcast id"))
}

/// Admin ids to names, for "created by".
async fn admin_names(state: &AppState) -> Result<HashMap<String, String>, AppError> {
    Ok(users::admins(&state.pool).await?.into_iter().map(|a| (a.id.to_string(), a.username)).collect())
}

fn creator(names: &HashMap<String, String>, b: &Broadcast) -> String {
    let id = b.row.created_by_id.as_deref().unwrap_or("");
    match (b.row.created_by_kind.as_str(), names.get(id)) {
        ("admin", Some(name)) => name.clone(),
        (kind, _) if id.is_empty() => kind.to_owned(),
        (kind, _) => format!("{kind} {id}"),
    }
}

async fn list(State(state): State<AppState>, v: Viewer, RawQuery(query): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q: ListQuery = super::form::parse(query.unwrap_or_default().as_bytes())?;
    let status_text = q.status.clone().filter(|s| !s.is_empty());
    let status = status_text
        .as_deref()
        .map(|s| {
            s.parse::<BroadcastStatus>().map_err(|_| AppError::field("status", "running, paused, cancelled or done"))
        })
        .transpose()?;
    let after = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| Cursor::decode(c).map_err(|e| AppError::field("cursor", e.to_string())))
        .transpose()?;
    let (items, next) = broadcasts::list(&state.pool, status, &PageRequest::new(PER_PAGE, after, Order::Desc)).await?;
    let names = admin_names(&state).await?;
    let next_href = next.map(|c| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("status", status_text.as_deref().unwrap_or(""))
            .append_pair("cursor", &c.encode())
            .finish();
        format!("{BASE}/broadcasts?{query}")
    });
    let body = html! {
        @if ctx.can_write() { p { a.button href=(format!("{BASE}/broadcasts/new")) { (ctx.t("dash-bc-new")) } } }
        form.filters method="get" action=(format!("{BASE}/broadcasts")) {
            label { (ctx.t("dash-bc-status"))
                select name="status" {
                    option value="" { (ctx.t("dash-bc-status-any")) }
                    @for s in BroadcastStatus::ALL {
                        option value=(s.as_str()) selected[status == Some(*s)] { (status_label(ctx, *s)) }
                    }
                }
            }
            button type="submit" { (ctx.t("dash-bc-filter")) }
        }
        @if items.is_empty() {
            p.muted { (ctx.t("dash-bc-none")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { (ctx.t("dash-bc-broadcast")) } th { (ctx.t("dash-bc-audience")) } th { (ctx.t("dash-bc-progress")) }
                    th { (ctx.t("dash-bc-created-by")) }
                } }
                tbody { @for b in &items { tr {
                    td { a href=(format!("{BASE}/broadcasts/{}", b.row.id)) { "#" (ctx.num(b.row.id)) } br; span.muted { (ctx.when(b.row.created_at)) } }
                    td { (audience(ctx, &b.row.audience)) }
                    td { (progress_block(ctx, b)) }
                    td { (creator(&names, b)) }
                } } }
            } }
            @if let Some(href) = next_href { nav.pager { a href=(href) { (ctx.t("dash-bc-next")) } } }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-bc-title"), body }))
}

fn status_label(ctx: &Ctx, s: BroadcastStatus) -> String {
    ctx.t(&format!("dash-bc-status-{}", s.as_str()))
}

fn status_badge(ctx: &Ctx, s: BroadcastStatus) -> Markup {
    let class = match s {
        BroadcastStatus::Running => "badge ok",
        BroadcastStatus::Paused => "badge warn",
        BroadcastStatus::Cancelled => "badge error",
        BroadcastStatus::Done => "badge",
    };
    html! { span class=(class) { (status_label(ctx, s)) } }
}

/// Who a broadcast goes to, as people read it.
pub(super) fn audience(ctx: &Ctx, value: &serde_json::Value) -> String {
    match serde_json::from_value::<Audience>(value.clone()) {
        Ok(Audience::All) => ctx.t("dash-bc-aud-all"),
        Ok(Audience::Active) => ctx.t("dash-bc-aud-active"),
        Ok(Audience::Expired { days }) => ctx.ta("dash-bc-aud-expired-days", &[("days", ctx.num(days.into()).into())]),
        Ok(Audience::NeverBought) => ctx.t("dash-bc-aud-never-bought"),
        Ok(Audience::Location { location }) => ctx.ta("dash-bc-aud-location-in", &[("location", location.into())]),
        Err(_) => value.to_string(),
    }
}

/// The progress of a broadcast; while it runs, it asks for itself again every few seconds (htmx).
fn progress_block(ctx: &Ctx, b: &Broadcast) -> Markup {
    let p = &b.progress;
    let done = p.total - p.left;
    let running = b.row.status == BroadcastStatus::Running;
    let url = format!("{BASE}/broadcasts/{}/progress", b.row.id);
    let n = |v: i64| -> crate::i18n::Arg { ctx.num(v).into() };
    html! {
        div.progress id=(format!("progress-{}", b.row.id)) aria-live="polite"
            hx-get=[running.then_some(url.as_str())] hx-trigger=[running.then_some("every 3s")] hx-swap=[running.then_some("outerHTML")] {
            (status_badge(ctx, b.row.status)) " "
            meter min="0" max=(p.total.max(1)) value=(done) aria-label=(ctx.t("dash-bc-progress")) {}
            " " (ctx.ta("dash-bc-done-of", &[("done", n(done)), ("total", n(p.total))]))
            br;
            span.muted {
                (ctx.ta("dash-bc-counts", &[("sent", n(p.sent)), ("failed", n(p.failed)), ("blocked", n(p.blocked)),
                    ("pending", n(p.left))]))
                @if p.unknown > 0 { " · " (ctx.ta("dash-bc-unknown", &[("count", n(p.unknown))])) }
                @if p.skipped > 0 { " · " (ctx.ta("dash-bc-skipped", &[("count", n(p.skipped))])) }
            }
        }
    }
}

async fn progress(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> PageResult {
    let b = broadcasts::get(&state.pool, broadcast_id(&id)?).await?;
    Ok(v.ctx.fragment(progress_block(&v.ctx, &b)))
}

/// A text as customers see it (Telegram HTML made safe), in its language's direction.
pub(super) fn rendered(lang: Language, text: &str) -> Markup {
    let dir = if lang.is_rtl() { "rtl" } else { "ltr" };
    html! {
        @match tg_html::preview(text) {
            Ok(safe) => div.tg lang=(lang.as_str()) dir=(dir) { (trusted(safe)) },
            Err(_) => div.tg lang=(lang.as_str()) dir=(dir) { (text) },
        }
    }
}

async fn show(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> PageResult {
    let ctx = &v.ctx;
    let b = broadcasts::get(&state.pool, broadcast_id(&id)?).await?;
    let names = admin_names(&state).await?;
    let id = b.row.id;
    let status = b.row.status;
    let action = |name: &str, label: &str, class: &str| {
        html! {
            form.inline method="post" action=(format!("{BASE}/broadcasts/{id}/{name}")) {
                (ctx.csrf_field())
                button class=(class) type="submit" { (ctx.t(label)) }
            }
        }
    };
    let body = html! {
        section.card aria-labelledby="about" {
            h2 #about { (ctx.ta("dash-bc-number", &[("id", ctx.num(id).into())])) }
            dl.review {
                dt { (ctx.t("dash-bc-audience")) } dd { (audience(ctx, &b.row.audience)) }
                dt { (ctx.t("dash-bc-created-by")) } dd { (creator(&names, &b)) }
                dt { (ctx.t("dash-bc-created")) } dd { (ctx.when(b.row.created_at)) }
                dt { (ctx.t("dash-bc-finished")) } dd { (ctx.when_opt(b.row.finished_at)) }
                dt { (ctx.t("dash-bc-fallback")) } dd { (ctx.t(&format!("dash-bc-lang-{}", b.row.fallback))) }
            }
        }
        section aria-labelledby="progress" {
            h2 #progress { (ctx.t("dash-bc-progress")) }
            (progress_block(ctx, &b))
            @if ctx.can_write() && matches!(status, BroadcastStatus::Running | BroadcastStatus::Paused) {
                div.actions {
                    @if status == BroadcastStatus::Running { (action("pause", "dash-bc-pause", "secondary")) }
                    @if status == BroadcastStatus::Paused { (action("resume", "dash-bc-resume", "secondary")) }
                    (action("cancel", "dash-bc-cancel", "danger"))
                }
            }
        }
        section aria-labelledby="texts" {
            h2 #texts { (ctx.t("dash-bc-texts")) }
            @for lang in Language::ALL {
                @if let Some(text) = b.row.texts.get(lang.as_str()).and_then(|t| t.as_str()) {
                    h3 { (ctx.t(&format!("dash-bc-lang-{}", lang.as_str()))) }
                    (rendered(*lang, text))
                }
            }
        }
        p { a href=(format!("{BASE}/broadcasts")) { (ctx.t("dash-bc-back")) } }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-bc-title-one"), body }))
}

async fn act(state: &AppState, e: &Editor, id: &str, action: Action, done: &str) -> PageResult {
    let id = broadcast_id(id)?;
    broadcasts::act(&state.pool, &state.settings.jobs, id, action, &e.who()).await?;
    Ok(e.ctx.done(&format!("{BASE}/broadcasts/{id}"), done))
}

async fn pause(State(state): State<AppState>, e: Editor, Path(id): Path<String>) -> PageResult {
    act(&state, &e, &id, Action::Pause, "broadcast-paused").await
}

async fn resume(State(state): State<AppState>, e: Editor, Path(id): Path<String>) -> PageResult {
    act(&state, &e, &id, Action::Resume, "broadcast-resumed").await
}

async fn cancel(State(state): State<AppState>, e: Editor, Path(id): Path<String>) -> PageResult {
    act(&state, &e, &id, Action::Cancel, "broadcast-cancelled").await
}
