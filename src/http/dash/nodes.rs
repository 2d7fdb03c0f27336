//! Nodes (`/dash/nodes`): the servers customers tunnel through, listed with health, last sync and last error,
//! load against capacity and traffic; one node in detail; adding one with the checks of `vpnshop server add`
//! and `POST /api/v1/servers` (`services::servers::create`); enabling and disabling; and the step-by-step test
//! probe of `vpnshop server test`. Every change goes through `services::servers`, which writes the audit log.

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};

use super::layout::{Ctx, Page, PageResult};
use super::session::{Editor, Viewer};
use super::{BASE, Form};
use crate::app::AppState;
use crate::db::servers::{ServerFilter, ServerView};
use crate::domain::page::{Cursor, Order, PageRequest};
use crate::domain::server::Health;
use crate::error::AppError;
use crate::i18n;
use crate::services::servers::{self, TestReport};

mod add;

use add::Fields;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/nodes", get(list).post(create))
        .route("/dash/nodes/new", get(new_form))
        .route("/dash/nodes/{id}", get(show))
        .route("/dash/nodes/{id}/test", post(test))
        .route("/dash/nodes/{id}/enable", post(enable))
        .route("/dash/nodes/{id}/disable", post(disable))
}

/// A node id from the path: a bad one names the field (axum's own rejection would be a plain-text 400).
fn node_id(raw: &str) -> Result<i64, AppError> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| AppError::field("id", "not a node id"))
}

/// A health badge: up, down, wrong host key, or not checked yet.
pub(super) fn health(ctx: &Ctx, h: Health) -> Markup {
    let (class, key) = match h {
        Health::Ok => ("badge ok", "dash-nodes-health-ok"),
        Health::Down => ("badge error", "dash-nodes-health-down"),
        Health::HostKeyMismatch => ("badge error", "dash-nodes-health-host-key"),
        Health::Unknown => ("badge warn", "dash-nodes-health-unknown"),
    };
    html! { span class=(class) { (ctx.t(key)) } }
}

/// `part / whole` as a percentage with at most one decimal, in the operator's digits (`33.3%`).
pub(super) fn percent(ctx: &Ctx, part: i64, whole: i64) -> String {
    let tenths = if whole > 0 { (i128::from(part) * 1000 + i128::from(whole) / 2) / i128::from(whole) } else { 0 };
    let (int, frac) = (tenths / 10, tenths % 10);
    let point = match ctx.lang {
        crate::domain::Language::En => ".",
        crate::domain::Language::Ru => ",",
        crate::domain::Language::Fa => "\u{66b}",
    };
    let text = if frac == 0 { int.to_string() } else { format!("{int}{point}{frac}") };
    ctx.ta("dash-nodes-percent", &[("value", i18n::localize_digits(ctx.lang, &text).into())])
}

/// Clients on a node against its capacity: a meter and the numbers.
pub(super) fn load(ctx: &Ctx, active: i64, capacity: i32) -> Markup {
    let text = ctx.ta(
        "dash-nodes-load-value",
        &[
            ("active", ctx.num(active).into()),
            ("capacity", ctx.num(i64::from(capacity)).into()),
            ("percent", percent(ctx, active, i64::from(capacity)).into()),
        ],
    );
    html! {
        meter min="0" max=(capacity.max(1)) value=(active) high=(i64::from(capacity) * 9 / 10) aria-hidden="true" {}
        " " span { (text) }
    }
}

/// Bytes moved, in GB.
pub(super) fn traffic(ctx: &Ctx, bytes: i64) -> String {
    ctx.ta("dash-nodes-gb", &[("gb", i18n::gigabytes(ctx.lang, bytes).into())])
}

#[derive(serde::Deserialize)]
struct ListQuery {
    cursor: Option<String>,
}

async fn list(State(state): State<AppState>, v: Viewer, RawQuery(query): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q: ListQuery = super::form::parse(query.unwrap_or_default().as_bytes())?;
    let after = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        Some(c) => Some(Cursor::decode(c).map_err(|_| AppError::field("cursor", "not a cursor from a previous page"))?),
        None => None,
    };
    let page = PageRequest::new(50, after, Order::Asc);
    let (rows, next) = servers::page(&state.pool, &ServerFilter::default(), &page).await?;
    let body = html! {
        @if ctx.can_write() {
            p { a.button href=(format!("{BASE}/nodes/new")) { (ctx.t("dash-nodes-add")) } }
        }
        @if rows.is_empty() {
            p { (ctx.t("dash-nodes-none")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { (ctx.t("dash-nodes-name")) } th { (ctx.t("dash-nodes-host")) } th { (ctx.t("dash-nodes-core")) }
                    th { (ctx.t("dash-nodes-enabled")) } th { (ctx.t("dash-nodes-health")) } th { (ctx.t("dash-nodes-load")) }
                    th.num { (ctx.t("dash-nodes-traffic")) }
                    @if ctx.can_write() { th { (ctx.t("dash-actions")) } }
                } }
                tbody { @for s in &rows { (row(ctx, s)) } }
            } }
        }
        @if let Some(next) = next {
            nav.pager aria-label=(ctx.t("dash-nodes-pages")) {
                a href=(format!("{BASE}/nodes?cursor={}", next.encode())) { (ctx.t("dash-nodes-next")) }
            }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-nodes-title"), body }))
}

fn enabled_badge(ctx: &Ctx, on: bool) -> Markup {
    if on {
        html! { span.badge.ok { (ctx.t("dash-nodes-on")) } }
    } else {
        html! { span.badge { (ctx.t("dash-nodes-off")) } }
    }
}

fn row(ctx: &Ctx, s: &ServerView) -> Markup {
    html! { tr {
        td { a href=(format!("{BASE}/nodes/{}", s.id)) { (s.name) } br; span.muted { (s.location_code) } }
        td.mono { (s.public_host) ":" (s.public_port) }
        td { (s.core.as_str()) " / " (s.protocol.as_str()) }
        td { (enabled_badge(ctx, s.enabled)) }
        td {
            (health(ctx, s.health))
            br; span.muted { (ctx.t("dash-nodes-last-seen")) ": " (ctx.when_opt(s.last_seen_at)) }
            br; span.muted { (ctx.t("dash-nodes-last-sync")) ": " (ctx.when_opt(s.users_synced_at)) }
            @if s.health != Health::Ok && let Some(detail) = &s.health_detail {
                br; span.muted { (ctx.t("dash-nodes-last-error")) ": " (detail) }
            }
        }
        td { (load(ctx, s.active_clients, s.capacity)) }
        td.num { (traffic(ctx, s.traffic_bytes)) }
        @if ctx.can_write() { td { (actions(ctx, s, "list")) } }
    } }
}

/// Test, and enable or disable (`back`: the page to return to after a switch).
fn actions(ctx: &Ctx, s: &ServerView, back: &str) -> Markup {
    let (path, key) = if s.enabled { ("disable", "dash-nodes-disable") } else { ("enable", "dash-nodes-enable") };
    html! { div.actions {
        form.inline method="post" action=(format!("{BASE}/nodes/{}/test", s.id)) {
            (ctx.csrf_field())
            button.secondary type="submit" { (ctx.t("dash-nodes-test")) }
        }
        form.inline method="post" action=(format!("{BASE}/nodes/{}/{path}", s.id)) {
            (ctx.csrf_field())
            input type="hidden" name="back" value=(back);
            button.secondary type="submit" { (ctx.t(key)) }
        }
    } }
}

/// A node's client inbounds, one per line: label, port, and where links point when that is elsewhere (a CDN).
fn inbounds(s: &ServerView) -> Markup {
    match crate::domain::inbound::from_stored(&s.inbounds, s.protocol, &s.inbound_tag, s.public_port) {
        Ok(list) => html! { ul.plain { @for i in &list {
            li { (i.display_label()) " · " span.mono { (i.tag) " :" (i.port) }
                @if i.public_host.is_some() || i.public_port.is_some() {
                    " → " span.mono { (i.connect_host(&s.public_host)) ":" (i.connect_port()) }
                }
            }
        } } },
        Err(e) => html! { span.badge.bad { (e.to_string()) } },
    }
}

async fn show(State(state): State<AppState>, v: Viewer, Path(raw): Path<String>) -> PageResult {
    let ctx = &v.ctx;
    let s = servers::view(&state.pool, node_id(&raw)?).await?;
    let rows: Vec<(String, Markup)> = vec![
        (ctx.t("dash-nodes-location"), html! { (s.location_code) }),
        (ctx.t("dash-nodes-host"), html! { span.mono { (s.public_host) ":" (s.public_port) } }),
        (ctx.t("dash-nodes-ssh"), html! { span.mono { (s.ssh_user) "@" (s.ssh_host) ":" (s.ssh_port) } }),
        (
            ctx.t("dash-nodes-host-key"),
            match &s.host_key_fingerprint {
                Some(k) => html! { span.mono { (k) } },
                None => html! { span.badge.warn { (ctx.t("dash-nodes-host-key-none")) } },
            },
        ),
        (ctx.t("dash-nodes-core"), html! { (s.core.as_str()) }),
        (ctx.t("dash-nodes-inbounds"), inbounds(&s)),
        (ctx.t("dash-nodes-api-port"), html! { (s.api_port) }),
        (ctx.t("dash-nodes-config-path"), html! { span.mono { (s.config_path) } }),
        (
            ctx.t("dash-nodes-restart"),
            html! { span.mono { (s.restart_command.clone().unwrap_or_else(|| format!("sudo -n systemctl restart {}", s.core))) } },
        ),
        (ctx.t("dash-nodes-enabled"), enabled_badge(ctx, s.enabled)),
        (ctx.t("dash-nodes-health"), health(ctx, s.health)),
        (ctx.t("dash-nodes-last-error"), html! { (s.health_detail.as_deref().unwrap_or("—")) }),
        (ctx.t("dash-nodes-last-seen"), html! { (ctx.when_opt(s.last_seen_at)) }),
        (ctx.t("dash-nodes-last-sync"), html! { (ctx.when_opt(s.users_synced_at)) }),
        (ctx.t("dash-nodes-load"), load(ctx, s.active_clients, s.capacity)),
        (ctx.t("dash-nodes-traffic"), html! { (traffic(ctx, s.traffic_bytes)) }),
        (ctx.t("dash-nodes-created"), html! { (ctx.when(s.created_at)) }),
    ];
    let body = html! {
        div.table-wrap { table { tbody { @for (name, value) in &rows { tr { th scope="row" { (name) } td { (value) } } } } } }
        @if ctx.can_write() { (actions(ctx, &s, "node")) }
        p { a href=(format!("{BASE}/nodes")) { (ctx.t("dash-nodes-back")) } }
    };
    Ok(ctx.render(Page { title: ctx.ta("dash-nodes-node-title", &[("name", s.name.clone().into())]), body }))
}

async fn new_form(State(state): State<AppState>, e: Editor) -> PageResult {
    let locations = servers::locations(&state.pool).await?;
    Ok(add::page(&e.ctx, &locations, &Fields::default(), None, StatusCode::OK))
}

async fn create(State(state): State<AppState>, e: Editor, Form(f): Form<HashMap<String, String>>) -> PageResult {
    let ctx = &e.ctx;
    let fields = Fields(f);
    let result = match fields.input(ctx) {
        Ok(input) => servers::create(&state.pool, &input, &e.who()).await,
        Err(err) => Err(err),
    };
    let (status, field, message) = match result {
        Ok(row) => return Ok(ctx.done(&format!("{BASE}/nodes/{}", row.id), "node-added")),
        Err(AppError::Field { field, message }) => (StatusCode::UNPROCESSABLE_ENTITY, field, message),
        // the only conflict of a new node: its name is taken
        Err(AppError::Conflict(message)) => (StatusCode::CONFLICT, "name".to_owned(), message),
        Err(other) => return Err(other.into()),
    };
    let locations = servers::locations(&state.pool).await?;
    Ok(add::page(ctx, &locations, &fields, Some((&field, &message)), status))
}

fn check_name(ctx: &Ctx, name: &str) -> String {
    let key = match name {
        "reach sshd" => "dash-nodes-check-reach",
        "host key" => "dash-nodes-check-host-key",
        "ssh login" => "dash-nodes-check-login",
        "config file" => "dash-nodes-check-config",
        "core API" => "dash-nodes-check-api",
        "traffic stats" => "dash-nodes-check-stats",
        "isolation" => "dash-nodes-check-isolation",
        "timeout" => "dash-nodes-check-timeout",
        "inbound port" => "dash-nodes-check-port",
        "certificate" => "dash-nodes-check-certificate",
        other => return other.to_owned(),
    };
    ctx.t(key)
}

fn report(ctx: &Ctx, s: &ServerView, r: &TestReport) -> Markup {
    let failed = r.checks.iter().find(|c| c.outcome == "failed");
    html! {
        @if r.ok {
            p.flash.ok role="status" { (ctx.t("dash-nodes-test-passed")) }
        } @else {
            p.flash.error role="alert" {
                (ctx.ta("dash-nodes-test-failed", &[("check", failed.map(|c| check_name(ctx, &c.name)).unwrap_or_default().into())]))
            }
        }
        ol.checks {
            @for c in &r.checks {
                @let (class, key) = match c.outcome.as_str() {
                    "ok" => ("badge ok", "dash-nodes-outcome-ok"),
                    "failed" => ("badge error", "dash-nodes-outcome-failed"),
                    _ => ("badge", "dash-nodes-outcome-skipped"),
                };
                li data-check=(c.name) data-outcome=(c.outcome) {
                    span class=(class) { (ctx.t(key)) } " " strong { (check_name(ctx, &c.name)) }
                    @if !c.detail.is_empty() { br; span.mono { (c.detail) } }
                }
            }
        }
        p.muted { (ctx.ta("dash-nodes-test-took", &[("ms", ctx.num(i64::try_from(r.elapsed_ms).unwrap_or(i64::MAX)).into())])) }
        div.actions {
            form.inline method="post" action=(format!("{BASE}/nodes/{}/test", s.id)) {
                (ctx.csrf_field())
                button.secondary type="submit" { (ctx.t("dash-nodes-test-again")) }
            }
            a href=(format!("{BASE}/nodes/{}", s.id)) { (ctx.t("dash-nodes-back-node")) }
        }
    }
}

async fn test(State(state): State<AppState>, e: Editor, Path(raw): Path<String>) -> PageResult {
    let ctx = &e.ctx;
    let s = servers::view(&state.pool, node_id(&raw)?).await?;
    // within the request timeout, as the admin API's test
    let limit = Duration::from_secs(state.settings.http.request_timeout_secs.saturating_sub(2).max(1));
    let r = servers::test(&state.nodes, s.id, limit).await?;
    let body = report(ctx, &s, &r);
    Ok(ctx.render(Page { title: ctx.ta("dash-nodes-test-title", &[("name", s.name.clone().into())]), body }))
}

async fn switch(state: &AppState, e: &Editor, raw: &str, on: bool, back: Option<&String>) -> PageResult {
    let id = node_id(raw)?;
    servers::set_enabled_id(&state.pool, id, on, &e.who()).await?;
    let to = if back.is_some_and(|b| b == "list") { format!("{BASE}/nodes") } else { format!("{BASE}/nodes/{id}") };
    Ok(e.ctx.done(&to, if on { "node-enabled" } else { "node-disabled" }))
}

async fn enable(
    State(state): State<AppState>,
    e: Editor,
    Path(raw): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> PageResult {
    switch(&state, &e, &raw, true, f.get("back")).await
}

async fn disable(
    State(state): State<AppState>,
    e: Editor,
    Path(raw): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> PageResult {
    switch(&state, &e, &raw, false, f.get("back")).await
}
