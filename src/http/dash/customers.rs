//! Customers: search by Telegram id, @username or name (50 a page, newest first), and one customer's page with
//! their orders, payments, subscriptions and the messages the shop keeps of their chat (sent and received, text
//! only), with Ban / Unban — the same services as the admin API's `/api/v1/users`, audited.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Ctx, Page, PageResult};
use super::review::path_id;
use super::session::{Editor, Viewer};
use super::{BASE, Form};
use crate::app::AppState;
use crate::db::users::UserListRow;
use crate::domain::page::{Cursor, DEFAULT_LIMIT, Order, PageRequest};
use crate::domain::{Currency, Money};
use crate::error::AppError;
use crate::services::customers::{self, Profile, Said};
use crate::services::users;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/customers", get(list))
        .route("/dash/customers/{id}", get(show))
        .route("/dash/customers/{id}/ban", post(ban))
        .route("/dash/customers/{id}/unban", post(unban))
}

/// `Name @username (tg 123)`, as operators read a customer.
pub fn person(first_name: Option<&str>, username: Option<&str>, telegram_id: i64) -> String {
    let mut parts = Vec::new();
    if let Some(n) = first_name.filter(|n| !n.trim().is_empty()) {
        parts.push(n.trim().to_owned());
    }
    if let Some(u) = username.filter(|u| !u.is_empty()) {
        parts.push(format!("@{u}"));
    }
    parts.push(format!("(tg {telegram_id})"));
    parts.join(" ")
}

/// An amount in the operator's language, or a dash.
pub fn money(ctx: &Ctx, minor: Option<i64>, currency: Option<Currency>) -> String {
    match (minor, currency) {
        (Some(m), Some(c)) => {
            Money::from_minor(m, c).map(|m| m.format(ctx.lang)).unwrap_or_else(|_| format!("{m} {c}"))
        }
        _ => "—".to_owned(),
    }
}

/// A state (of an order, payment, subscription, message or customer) in words.
pub fn status_text(ctx: &Ctx, status: &str) -> String {
    let key = format!("dash-customers-status-{}", status.replace('_', "-"));
    if crate::i18n::has(&key) { ctx.t(&key) } else { status.to_owned() }
}

/// A state as a coloured badge.
pub fn status_badge(ctx: &Ctx, status: &str) -> Markup {
    let tone = match status {
        "accepted" | "auto_accepted" | "succeeded" | "fulfilled" | "paid" | "active" | "sent" => "badge ok",
        "rejected" | "failed" | "revoked" | "refunded" | "banned" | "blocked" | "unknown" => "badge error",
        "under_review" | "pending" | "awaiting_payment" | "limited" | "queued" | "sending" => "badge warn",
        _ => "badge",
    };
    html! { span class=(tone) { (status_text(ctx, status)) } }
}

#[derive(Deserialize, Default)]
struct Search {
    q: Option<String>,
    cursor: Option<String>,
}

async fn list(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let s: Search = super::form::parse(raw.unwrap_or_default().as_bytes())?;
    let q = s.q.as_deref().unwrap_or("").trim().to_owned();
    let after = match s.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(Cursor::decode(c).map_err(|_| AppError::field("cursor", "not a cursor from a previous page"))?),
        None => None,
    };
    let page = PageRequest::new(DEFAULT_LIMIT, after, Order::Desc);
    let (rows, next) = customers::search(&state.pool, &q, &page).await?;
    let qs = |cursor: Option<Cursor>| {
        let mut f = form_urlencoded::Serializer::new(String::new());
        if !q.is_empty() {
            f.append_pair("q", &q);
        }
        if let Some(c) = cursor {
            f.append_pair("cursor", &c.encode());
        }
        let s = f.finish();
        if s.is_empty() { format!("{BASE}/customers") } else { format!("{BASE}/customers?{s}") }
    };
    let body = html! {
        form.filters method="get" action=(format!("{BASE}/customers")) role="search" {
            label { (ctx.t("dash-customers-search")) input type="search" name="q" value=(q) maxlength="64" placeholder=(ctx.t("dash-customers-search-hint")); }
            button type="submit" { (ctx.t("dash-customers-find")) }
        }
        @if rows.is_empty() { p { (ctx.t("dash-customers-none")) } } @else {
            div.table-wrap { table {
                thead { tr {
                    th { (ctx.t("dash-customers-telegram-id")) } th { (ctx.t("dash-customers-name")) }
                    th { (ctx.t("dash-customers-username")) } th { (ctx.t("dash-customers-language")) }
                    th { (ctx.t("dash-customers-joined")) } th { (ctx.t("dash-customers-state")) }
                } }
                tbody { @for u in &rows { (row(ctx, u)) } }
            } }
        }
        nav.pager aria-label=(ctx.t("dash-customers-pages")) {
            @if after.is_some() { a href=(qs(None)) { (ctx.t("dash-customers-first")) } }
            @if let Some(n) = next { a href=(qs(Some(n))) { (ctx.t("dash-customers-next")) } }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-customers-title"), body }))
}

fn row(ctx: &Ctx, u: &UserListRow) -> Markup {
    html! { tr {
        td { a.mono href=(format!("{BASE}/customers/{}", u.id)) { (u.telegram_id) } }
        td { (u.first_name.as_deref().unwrap_or("—")) }
        td { (u.username.as_deref().map(|n| format!("@{n}")).unwrap_or_else(|| "—".into())) }
        td { (u.language.as_str()) }
        td { (ctx.when(u.created_at)) }
        td { (state_badges(ctx, u)) }
    } }
}

fn state_badges(ctx: &Ctx, u: &UserListRow) -> Markup {
    html! {
        @if u.banned_at.is_some() { (status_badge(ctx, "banned")) " " }
        @if u.blocked_bot_at.is_some() { (status_badge(ctx, "blocked")) }
        @if u.banned_at.is_none() && u.blocked_bot_at.is_none() { span.muted { "—" } }
    }
}

async fn show(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> PageResult {
    let ctx = &v.ctx;
    let p = customers::profile(&state.pool, path_id(&id)?).await?;
    let u = &p.user;
    let title = person(u.first_name.as_deref(), u.username.as_deref(), u.telegram_id);
    let body = html! {
        p { a href=(format!("{BASE}/customers")) { (ctx.t("dash-customers-back")) } }
        section aria-labelledby="profile" {
            h2 #profile { (ctx.t("dash-customers-profile")) }
            div.table-wrap { table { tbody {
                tr { th scope="row" { (ctx.t("dash-customers-telegram-id")) } td.mono { (u.telegram_id) } }
                tr { th scope="row" { (ctx.t("dash-customers-language")) } td { (u.language.as_str()) } }
                tr { th scope="row" { (ctx.t("dash-customers-currency")) } td { (u.currency.map(|c| c.as_str()).unwrap_or("—")) } }
                tr { th scope="row" { (ctx.t("dash-customers-joined")) } td { (ctx.when(u.created_at)) } }
                tr { th scope="row" { (ctx.t("dash-customers-trial")) } td { (ctx.when_opt(u.trial_used_at)) } }
                tr { th scope="row" { (ctx.t("dash-customers-counts")) } td {
                    (ctx.ta("dash-customers-counts-value", &[("orders", ctx.num(p.counts.orders).into()),
                        ("payments", ctx.num(p.counts.payments).into()), ("active", ctx.num(p.counts.active_subscriptions).into())]))
                } }
                tr { th scope="row" { (ctx.t("dash-customers-state")) } td {
                    (state_badges(ctx, u))
                    @if let Some(at) = u.banned_at { " " (ctx.when(at)) ": " (u.ban_reason.as_deref().unwrap_or("")) }
                } }
            } } }
            @if ctx.can_write() { (ban_forms(ctx, u)) }
        }
        (records(ctx, &p))
        (messages(ctx, &p))
    };
    Ok(ctx.render(Page { title, body }))
}

fn ban_forms(ctx: &Ctx, u: &UserListRow) -> Markup {
    html! {
        @if u.banned_at.is_some() {
            form method="post" action=(format!("{BASE}/customers/{}/unban", u.id)) {
                (ctx.csrf_field())
                p { button.secondary type="submit" { (ctx.t("dash-customers-unban")) } }
            }
        } @else {
            form.stack method="post" action=(format!("{BASE}/customers/{}/ban", u.id)) {
                (ctx.csrf_field())
                label { (ctx.t("dash-customers-ban-reason")) input name="reason" required maxlength="500"; }
                div { button.danger type="submit" { (ctx.t("dash-customers-ban")) } }
            }
        }
    }
}

fn records(ctx: &Ctx, p: &Profile) -> Markup {
    html! {
        section aria-labelledby="orders" {
            h2 #orders { (ctx.t("dash-customers-orders")) }
            @if p.orders.is_empty() { p.muted { (ctx.t("dash-customers-nothing")) } } @else { div.table-wrap { table {
                thead { tr { th { "#" } th { (ctx.t("dash-customers-created")) } th { (ctx.t("dash-customers-kind")) } th { (ctx.t("dash-customers-amount")) } th { (ctx.t("dash-customers-state")) } } }
                tbody { @for o in &p.orders { tr {
                    td { (ctx.num(o.id)) } td { (ctx.when(o.created_at)) }
                    td { (ctx.t(&format!("dash-review-kind-{}", o.kind))) }
                    td { (money(ctx, o.amount_minor, o.currency)) } td { (status_badge(ctx, o.status.as_str())) }
                } } }
            } } }
        }
        section aria-labelledby="payments" {
            h2 #payments { (ctx.t("dash-customers-payments")) }
            @if p.payments.is_empty() { p.muted { (ctx.t("dash-customers-nothing")) } } @else { div.table-wrap { table {
                thead { tr { th { "#" } th { (ctx.t("dash-customers-created")) } th { (ctx.t("dash-customers-method")) } th { (ctx.t("dash-customers-amount")) } th { (ctx.t("dash-customers-state")) } th { (ctx.t("dash-customers-decided")) } } }
                tbody { @for pay in &p.payments { tr {
                    td { (ctx.num(pay.id)) } td { (ctx.when(pay.created_at)) } td { (pay.method.as_str()) }
                    td { (money(ctx, Some(pay.amount_minor), Some(pay.currency))) }
                    td { (status_badge(ctx, pay.status.as_str())) }
                    td { (ctx.when_opt(pay.decided_at)) " " span.muted { (pay.decided_by.as_deref().unwrap_or("")) } }
                } } }
            } } }
        }
        section aria-labelledby="subscriptions" {
            h2 #subscriptions { (ctx.t("dash-customers-subscriptions")) }
            @if p.subscriptions.is_empty() { p.muted { (ctx.t("dash-customers-nothing")) } } @else { div.table-wrap { table {
                thead { tr { th { "#" } th { (ctx.t("dash-customers-location")) } th { (ctx.t("dash-customers-state")) } th { (ctx.t("dash-customers-ends")) } } }
                tbody { @for s in &p.subscriptions { tr {
                    td { a href=(format!("{BASE}/subscriptions/{}", s.id)) { (ctx.num(s.id)) } @if s.is_trial { " " span.badge { (ctx.t("dash-customers-trial-badge")) } } }
                    td { (s.location_code) } td { (status_badge(ctx, s.status.as_str())) } td { (ctx.when_opt(s.expires_at)) }
                } } }
            } } }
        }
    }
}

fn messages(ctx: &Ctx, p: &Profile) -> Markup {
    let table = |list: &[Said], sent: bool| {
        html! {
            @if list.is_empty() { p.muted { (ctx.t("dash-customers-nothing")) } } @else { div.table-wrap { table {
                thead { tr { th { (ctx.t("dash-customers-when")) } th { (ctx.t("dash-customers-kind")) } th { (ctx.t("dash-customers-text")) } @if sent { th { (ctx.t("dash-customers-state")) } } } }
                tbody { @for m in list { tr {
                    td { (ctx.when(m.at)) } td { (ctx.t(&format!("dash-customers-msg-{}", m.kind))) }
                    td { (m.text.chars().take(1000).collect::<String>()) }
                    @if sent { td { (status_badge(ctx, m.status.as_deref().unwrap_or(""))) } }
                } } }
            } } }
        }
    };
    html! {
        section aria-labelledby="messages" {
            h2 #messages { (ctx.t("dash-customers-messages")) }
            p.muted { (ctx.t("dash-customers-messages-note")) }
            h3 { (ctx.t("dash-customers-received")) }
            (table(&p.received, false))
            h3 { (ctx.t("dash-customers-sent")) }
            (table(&p.sent, true))
        }
    }
}

#[derive(Deserialize)]
struct BanForm {
    reason: Option<String>,
}

async fn ban(State(state): State<AppState>, e: Editor, Path(id): Path<String>, Form(f): Form<BanForm>) -> PageResult {
    let id = path_id(&id)?;
    users::ban(&state.pool, id, f.reason.as_deref().unwrap_or(""), &e.who()).await?;
    Ok(e.ctx.done(&format!("{BASE}/customers/{id}"), "customer-banned"))
}

async fn unban(State(state): State<AppState>, e: Editor, Path(id): Path<String>) -> PageResult {
    let id = path_id(&id)?;
    users::unban(&state.pool, id, &e.who()).await?;
    Ok(e.ctx.done(&format!("{BASE}/customers/{id}"), "customer-unbanned"))
}
