//! The audit log (`/dash/audit`), read-only: who did what to which row, when and from where, filtered like the
//! admin API's `/api/v1/audit` (actor, action, entity, a date range) and paged 50 at a time, newest first.

use std::collections::HashMap;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::BASE;
use super::layout::{Ctx, Page, PageResult};
use super::session::Viewer;
use crate::app::AppState;
use crate::db::audit::{AuditFilter, AuditRow};
use crate::domain::page::{Cursor, Order, PageRequest};
use crate::error::AppError;
use crate::services::{audit, users};

pub fn router() -> Router<AppState> {
    Router::new().route("/dash/audit", get(list))
}

const PER_PAGE: i64 = 50;
const ACTOR_KINDS: [&str; 5] = ["admin", "api_key", "system", "user", "cli"];
/// Details longer than this are folded (the whole JSON one click away).
const SHORT_DETAIL: usize = 160;

/// The filter form as submitted (empty fields filter nothing).
#[derive(Debug, Default, Deserialize)]
struct Query {
    actor_kind: Option<String>,
    /// An id, or an admin's username.
    actor: Option<String>,
    action: Option<String>,
    entity: Option<String>,
    entity_id: Option<String>,
    /// `YYYY-MM-DD`, from the start of that day (UTC).
    from: Option<String>,
    /// `YYYY-MM-DD`, to the end of that day (UTC).
    to: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

fn day(field: &str, v: &Option<String>) -> Result<Option<NaiveDate>, AppError> {
    given(v)
        .map(|d| NaiveDate::parse_from_str(&d, "%Y-%m-%d").map_err(|_| AppError::field(field, "a date, YYYY-MM-DD")))
        .transpose()
}

fn start_of(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// The service's filter from the form; admins' usernames become their ids.
fn filter(q: &Query, admins: &HashMap<String, String>) -> Result<AuditFilter, AppError> {
    let actor_kind = given(&q.actor_kind);
    if let Some(kind) = actor_kind.as_deref().filter(|k| !ACTOR_KINDS.contains(k)) {
        return Err(AppError::field("actor_kind", format!("{kind:?} is not one of {}", ACTOR_KINDS.join(", "))));
    }
    for (name, value) in
        [("actor", &q.actor), ("action", &q.action), ("entity", &q.entity), ("entity_id", &q.entity_id)]
    {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            return Err(AppError::field(name, "at most 200 characters"));
        }
    }
    let (from, to) = (day("from", &q.from)?, day("to", &q.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && t < f
    {
        return Err(AppError::field("to", "the range ends before it starts"));
    }
    let mut actor_kind = actor_kind;
    let actor_id = given(&q.actor).map(|a| {
        if a.bytes().all(|b| b.is_ascii_digit()) || actor_kind.as_deref().is_some_and(|k| k != "admin") {
            return a;
        }
        actor_kind = Some("admin".to_owned());
        admins.iter().find(|(_, name)| **name == a).map(|(id, _)| id.clone()).unwrap_or(a)
    });
    Ok(AuditFilter {
        actor_kind,
        actor_id,
        entity: given(&q.entity),
        entity_id: given(&q.entity_id),
        action: given(&q.action),
        from: from.map(start_of),
        to: to.and_then(|t| t.succ_opt()).map(start_of),
    })
}

async fn list(State(state): State<AppState>, v: Viewer, RawQuery(query): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let raw = query.unwrap_or_default();
    let q: Query = super::form::parse(raw.as_bytes())?;
    let admins: HashMap<String, String> =
        users::admins(&state.pool).await?.into_iter().map(|a| (a.id.to_string(), a.username)).collect();
    let filter = filter(&q, &admins)?;
    let after = given(&q.cursor)
        .map(|c| Cursor::decode(&c).map_err(|e| AppError::field("cursor", e.to_string())))
        .transpose()?;
    let (rows, next) = audit::list(&state.pool, &filter, &PageRequest::new(PER_PAGE, after, Order::Desc)).await?;
    let next_href = next.map(|c| {
        let kept = form_urlencoded::parse(raw.as_bytes()).filter(|(k, _)| k != "cursor" && k != "done");
        let query = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(kept)
            .append_pair("cursor", &c.encode())
            .finish();
        format!("{BASE}/audit?{query}")
    });
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let kind = given(&q.actor_kind).unwrap_or_default();
    let body = html! {
        form.filters method="get" action=(format!("{BASE}/audit")) {
            label { (ctx.t("dash-audit-actor-kind"))
                select name="actor_kind" {
                    option value="" { (ctx.t("dash-audit-any")) }
                    @for k in ACTOR_KINDS { option value=(k) selected[kind == k] { (ctx.t(&format!("dash-audit-kind-{}", k.replace('_', "-")))) } }
                }
            }
            label { (ctx.t("dash-audit-actor")) input name="actor" value=(value(&q.actor)) maxlength="200"; }
            label { (ctx.t("dash-audit-action")) input name="action" value=(value(&q.action)) maxlength="200" placeholder="plan.price_set"; }
            label { (ctx.t("dash-audit-entity")) input name="entity" value=(value(&q.entity)) maxlength="200" placeholder="plan"; }
            label { (ctx.t("dash-audit-entity-id")) input name="entity_id" value=(value(&q.entity_id)) maxlength="200"; }
            label { (ctx.t("dash-audit-from")) input name="from" type="date" value=(value(&q.from)); }
            label { (ctx.t("dash-audit-to")) input name="to" type="date" value=(value(&q.to)); }
            button type="submit" { (ctx.t("dash-audit-filter")) }
        }
        @if rows.is_empty() {
            p.muted { (ctx.t("dash-audit-none")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { (ctx.t("dash-audit-when")) } th { (ctx.t("dash-audit-who")) } th { (ctx.t("dash-audit-action")) }
                    th { (ctx.t("dash-audit-entity")) } th { (ctx.t("dash-audit-ip")) } th { (ctx.t("dash-audit-detail")) }
                } }
                tbody { @for r in &rows { (row(ctx, r, &admins)) } }
            } }
            @if let Some(href) = next_href { nav.pager { a href=(href) { (ctx.t("dash-audit-next")) } } }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-audit-title"), body }))
}

fn row(ctx: &Ctx, r: &AuditRow, admins: &HashMap<String, String>) -> Markup {
    let id = r.actor_id.as_deref().unwrap_or("");
    let name = (r.actor_kind == "admin").then(|| admins.get(id)).flatten();
    let detail = serde_json::to_string(&r.detail).unwrap_or_default();
    let entity_id = r.entity_id.as_deref().unwrap_or("");
    let link = match r.entity.as_str() {
        "plan" => Some(format!("{BASE}/plans/{entity_id}")),
        "broadcast" => Some(format!("{BASE}/broadcasts/{entity_id}")),
        _ => None,
    }
    .filter(|_| !entity_id.is_empty() && entity_id.bytes().all(|b| b.is_ascii_digit()));
    html! {
        tr {
            td { (ctx.when(r.at)) }
            td {
                span.badge { (ctx.t(&format!("dash-audit-kind-{}", r.actor_kind.replace('_', "-")))) } " "
                @match name { Some(n) => (n), None => span.mono { (id) } }
            }
            td { span.mono { (r.action) } }
            td {
                (r.entity) " "
                @match link { Some(href) => a.mono href=(href) { (entity_id) }, None => span.mono { (entity_id) } }
            }
            td { span.mono { (r.source_ip.as_deref().unwrap_or("—")) } }
            td {
                @if detail.chars().count() <= SHORT_DETAIL {
                    code.mono { (detail) }
                } @else {
                    details {
                        summary { code.mono { (detail.chars().take(SHORT_DETAIL).collect::<String>()) "…" } }
                        code.mono.wrap { (detail) }
                    }
                }
            }
        }
    }
}
