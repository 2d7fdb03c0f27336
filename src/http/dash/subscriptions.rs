//! Subscriptions: the filtered listing (status, location, node, ending within three days; 50 a page) and one
//! subscription in full — customer, plan, node, devices, usage against its cap, dates — with what an editor does
//! to it (extend, add data, revoke, give a device a new link, replace the feed URL) through the same service as
//! the admin API (`services::subscriptions::admin`, audited). The feed URL, the device links and their QR codes
//! are working VPN access: shown to editors only, viewers read "hidden".

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::routing::{get, post};
use chrono::Utc;
use maud::{Markup, html};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::Deserialize;

use super::layout::{Ctx, Page, PageResult, trusted};
use super::session::{Editor, Viewer};
use super::{BASE, Form};
use crate::app::AppState;
use crate::db::servers::ServerRow;
use crate::db::subscriptions::{SubscriptionFilter, SubscriptionRow};
use crate::domain::page::{Cursor, DEFAULT_LIMIT, Order, PageRequest};
use crate::domain::plan::BYTES_PER_GB;
use crate::domain::status::SubscriptionStatus;
use crate::error::AppError;
use crate::i18n::gigabytes;
use crate::services::subscriptions::admin::{self, Detail, MAX_EXTEND_DAYS};
use crate::services::{access, catalog, servers, users};

/// "Expiring soon": ending within this many days.
pub const SOON_DAYS: i64 = 3;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/subscriptions", get(list))
        .route("/dash/subscriptions/{id}", get(show))
        .route("/dash/subscriptions/{id}/extend", post(extend))
        .route("/dash/subscriptions/{id}/add-data", post(add_data))
        .route("/dash/subscriptions/{id}/revoke", post(revoke))
        .route("/dash/subscriptions/{id}/reset-seat", post(reset_seat))
        .route("/dash/subscriptions/{id}/rotate-url", post(rotate_url))
}

/// The listing's filter form, as typed (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    status: Option<String>,
    location: Option<String>,
    node: Option<String>,
    expiring: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A path or form id: a positive whole number, or a 422 naming `field`.
pub(super) fn id_of(text: &str, field: &str) -> Result<i64, AppError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| AppError::field(field, "a positive whole number"))
}

fn filter_of(q: &ListQuery) -> Result<(SubscriptionFilter, PageRequest), AppError> {
    let status = given(&q.status)
        .map(|s| s.parse::<SubscriptionStatus>().map_err(|_| AppError::field("status", "not a subscription status")))
        .transpose()?;
    let location = given(&q.location).map(str::to_owned);
    if location.as_ref().is_some_and(|l| l.len() > 32) {
        return Err(AppError::field("location", "a location code"));
    }
    let server_id = given(&q.node).map(|n| id_of(n, "node")).transpose()?;
    let soon = given(&q.expiring).is_some();
    let after = given(&q.cursor)
        .map(|c| Cursor::decode(c).map_err(|_| AppError::field("cursor", "not a cursor from a previous page")))
        .transpose()?;
    let filter = SubscriptionFilter {
        // ending soon means still running unless another status was asked for
        status: status.or(soon.then_some(SubscriptionStatus::Active)),
        user_id: None,
        server_id,
        location_code: location,
        expiring_before: soon.then(|| Utc::now() + chrono::Duration::days(SOON_DAYS)),
    };
    Ok((filter, PageRequest::new(DEFAULT_LIMIT, after, Order::Desc)))
}

pub(super) fn status_badge(ctx: &Ctx, status: SubscriptionStatus) -> Markup {
    let class = match status {
        SubscriptionStatus::Active => "badge ok",
        SubscriptionStatus::Limited | SubscriptionStatus::Pending => "badge warn",
        SubscriptionStatus::Expired | SubscriptionStatus::Revoked => "badge error",
    };
    html! { span class=(class) { (ctx.t(&format!("dash-subs-status-{}", status.as_str()))) } }
}

fn node_name(nodes: &[ServerRow], id: Option<i64>) -> String {
    match id {
        Some(id) => nodes.iter().find(|n| n.id == id).map_or_else(|| format!("#{id}"), |n| n.name.clone()),
        None => "—".to_owned(),
    }
}

fn cap_text(ctx: &Ctx, cap: Option<i64>) -> String {
    match cap {
        Some(bytes) => ctx.ta("dash-subs-gb", &[("gb", gigabytes(ctx.lang, bytes).into())]),
        None => ctx.t("dash-subs-unlimited"),
    }
}

async fn list(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q: ListQuery = super::form::parse(raw.as_deref().unwrap_or("").as_bytes())?;
    let (filter, page) = filter_of(&q)?;
    let (rows, next) = admin::list(&state.pool, &filter, &page).await?;
    let nodes = servers::list(&state.pool).await?;
    let next_href = next.map(|c| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, val) in [("status", &q.status), ("location", &q.location), ("node", &q.node), ("expiring", &q.expiring)]
        {
            if let Some(val) = given(val) {
                query.append_pair(k, val);
            }
        }
        format!("{BASE}/subscriptions?{}", query.append_pair("cursor", &c.encode()).finish())
    });
    let body = html! {
        form.filters method="get" action=(format!("{BASE}/subscriptions")) {
            label { (ctx.t("dash-subs-status")) select name="status" {
                option value="" { (ctx.t("dash-subs-any")) }
                @for s in SubscriptionStatus::ALL {
                    option value=(s.as_str()) selected[given(&q.status) == Some(s.as_str())] { (ctx.t(&format!("dash-subs-status-{}", s.as_str()))) }
                }
            } }
            label { (ctx.t("dash-subs-location")) input name="location" maxlength="32" size="6" value=(given(&q.location).unwrap_or("")); }
            label { (ctx.t("dash-subs-node")) select name="node" {
                option value="" { (ctx.t("dash-subs-any")) }
                @for n in &nodes {
                    @let id = n.id.to_string();
                    option value=(id) selected[given(&q.node) == Some(id.as_str())] { (n.name) " (" (n.location_code) ")" }
                }
            } }
            label.check { input type="checkbox" name="expiring" value="1" checked[given(&q.expiring).is_some()];
                (ctx.ta("dash-subs-expiring", &[("days", ctx.num(SOON_DAYS).into())])) }
            button type="submit" { (ctx.t("dash-subs-filter")) }
        }
        @if rows.is_empty() { p.muted { (ctx.t("dash-subs-none")) } }
        @else {
            div.table-wrap { table {
                thead { tr {
                    th { "#" } th { (ctx.t("dash-subs-customer")) } th { (ctx.t("dash-subs-location")) }
                    th { (ctx.t("dash-subs-node")) } th { (ctx.t("dash-subs-status")) } th { (ctx.t("dash-subs-seats")) }
                    th { (ctx.t("dash-subs-cap")) } th { (ctx.t("dash-subs-expires")) }
                } }
                tbody { @for s in &rows { tr {
                    td { a href=(format!("{BASE}/subscriptions/{}", s.id)) { (ctx.num(s.id)) } }
                    td { a href=(format!("{BASE}/customers/{}", s.user_id)) { "#" (ctx.num(s.user_id)) } }
                    td { (s.location_code) }
                    td { (node_name(&nodes, s.server_id)) }
                    td { (status_badge(ctx, s.status)) @if s.is_trial { " " span.badge { (ctx.t("dash-subs-trial")) } } }
                    td { (ctx.num(s.seats.into())) }
                    td { (cap_text(ctx, s.data_cap_bytes)) }
                    td { (ctx.when_opt(s.expires_at)) }
                } } }
            } }
        }
        nav.pager aria-label=(ctx.t("dash-subs-pages")) {
            @if given(&q.cursor).is_some() { a href=(format!("{BASE}/subscriptions")) { (ctx.t("dash-subs-first")) } }
            @if let Some(href) = &next_href { a href=(href) rel="next" { (ctx.t("dash-subs-next")) } }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-subs-title"), body }))
}

fn qr(ctx: &Ctx, text: &str, label: &str) -> Markup {
    match access::qr_svg(text) {
        Ok(svg) => html! { div.qr role="img" aria-label=(label) { (trusted(svg)) } },
        Err(_) => html! { p.muted { (ctx.t("dash-subs-qr-too-long")) } },
    }
}

fn summary(ctx: &Ctx, d: &Detail, customer: Markup, plan: &str, place: &str, node: &str) -> Markup {
    let s: &SubscriptionRow = &d.sub;
    let used = d.up_bytes.saturating_add(d.down_bytes);
    html! {
        div.table-wrap { table { tbody {
            tr { th scope="row" { (ctx.t("dash-subs-customer")) } td { (customer) } }
            tr { th scope="row" { (ctx.t("dash-subs-status")) } td { (status_badge(ctx, s.status))
                @if s.is_trial { " " span.badge { (ctx.t("dash-subs-trial")) } } } }
            tr { th scope="row" { (ctx.t("dash-subs-plan")) } td { (plan) " · " (ctx.ta("dash-subs-days", &[("days", ctx.num(s.duration_days.into()).into())])) } }
            tr { th scope="row" { (ctx.t("dash-subs-location")) } td { (place) } }
            tr { th scope="row" { (ctx.t("dash-subs-node")) } td { (node) } }
            tr { th scope="row" { (ctx.t("dash-subs-seats")) } td { (ctx.num(s.seats.into())) } }
            tr { th scope="row" { (ctx.t("dash-subs-usage")) } td {
                (ctx.ta("dash-subs-used-of", &[("used", gigabytes(ctx.lang, used).into()), ("cap", cap_text(ctx, s.data_cap_bytes).into())]))
                @if let Some(cap) = s.data_cap_bytes.filter(|c| *c > 0) {
                    " " meter min="0" max=(cap) value=(used.min(cap)) aria-hidden="true" {}
                }
                br; span.muted { (ctx.ta("dash-subs-up-down", &[("up", gigabytes(ctx.lang, d.up_bytes).into()), ("down", gigabytes(ctx.lang, d.down_bytes).into())])) }
            } }
            tr { th scope="row" { (ctx.t("dash-subs-starts")) } td { (ctx.when_opt(s.starts_at)) } }
            tr { th scope="row" { (ctx.t("dash-subs-expires")) } td { (ctx.when_opt(s.expires_at)) } }
            @if s.ended_at.is_some() {
                tr { th scope="row" { (ctx.t("dash-subs-ended")) } td { (ctx.when_opt(s.ended_at)) " " span.muted { (s.end_reason.as_deref().unwrap_or("")) } } }
            }
            @if let Some(order) = s.order_id {
                tr { th scope="row" { (ctx.t("dash-subs-order")) } td { a href=(format!("{BASE}/orders?customer={}", s.user_id)) { "#" (ctx.num(order)) } } }
            }
        } } }
    }
}

fn links(ctx: &Ctx, d: &Detail) -> Markup {
    html! {
        section aria-labelledby="links" {
            h2 #links { (ctx.t("dash-subs-links")) }
            @if !ctx.can_write() {
                p { span.badge { (ctx.t("dash-subs-hidden")) } " " span.muted { (ctx.t("dash-subs-hidden-why")) } }
            } @else {
                h3 { (ctx.t("dash-subs-feed")) }
                p { code { (d.feed_url) } }
                (qr(ctx, &d.feed_url, &ctx.t("dash-subs-feed-qr")))
                @if d.devices.is_empty() { p.muted { (ctx.t("dash-subs-no-devices")) } }
                @for dev in &d.devices {
                    details {
                        summary { (ctx.ta("dash-subs-device", &[("seat", ctx.num(dev.seat.into()).into())])) }
                        p { code { (dev.link) } }
                        (qr(ctx, &dev.link, &ctx.ta("dash-subs-device-qr", &[("seat", ctx.num(dev.seat.into()).into())])))
                    }
                }
            }
        }
    }
}

fn actions(ctx: &Ctx, d: &Detail) -> Markup {
    let base = format!("{BASE}/subscriptions/{}", d.sub.id);
    html! {
        section aria-labelledby="actions" {
            h2 #actions { (ctx.t("dash-actions")) }
            div.grid {
                form.stack method="post" action=(format!("{base}/extend")) {
                    (ctx.csrf_field())
                    label { (ctx.t("dash-subs-extend-days")) input name="days" type="number" min="1" max=(MAX_EXTEND_DAYS) required inputmode="numeric"; }
                    div { button type="submit" { (ctx.t("dash-subs-extend")) } }
                }
                form.stack method="post" action=(format!("{base}/add-data")) {
                    (ctx.csrf_field())
                    label { (ctx.t("dash-subs-add-gb")) input name="gb" type="number" min="0.1" step="0.1" required inputmode="decimal"; }
                    div { button type="submit" { (ctx.t("dash-subs-add-data")) } }
                }
                form.stack method="post" action=(format!("{base}/reset-seat")) {
                    (ctx.csrf_field())
                    label { (ctx.t("dash-subs-seat")) input name="seat" type="number" min="1" max="100" required inputmode="numeric"; }
                    div { button.secondary type="submit" { (ctx.t("dash-subs-reset-seat")) } }
                }
                form.stack method="post" action=(format!("{base}/rotate-url")) {
                    (ctx.csrf_field())
                    p.muted { (ctx.t("dash-subs-rotate-why")) }
                    div { button.secondary type="submit" { (ctx.t("dash-subs-rotate")) } }
                }
                form.stack method="post" action=(format!("{base}/revoke")) {
                    (ctx.csrf_field())
                    label { (ctx.t("dash-subs-reason")) input name="reason" required maxlength="500"; }
                    div { button.danger type="submit" { (ctx.t("dash-subs-revoke")) } }
                }
            }
        }
    }
}

async fn show(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> PageResult {
    let ctx = &v.ctx;
    let id = id_of(&id, "id")?;
    let d = admin::get(&state.pool, &state.settings, id).await?;
    let customer = match users::find(&state.pool, d.sub.user_id).await? {
        Some(u) => html! {
            a href=(format!("{BASE}/customers/{}", u.id)) { "#" (ctx.num(u.id)) }
            " " (u.username.as_deref().map(|n| format!("@{n}")).unwrap_or_default())
            " " span.muted { "tg " (u.telegram_id) }
        },
        None => html! { "#" (ctx.num(d.sub.user_id)) },
    };
    let plan = catalog::manage::detail(&state.pool, d.sub.plan_id).await.map(|p| p.code).unwrap_or_default();
    let place = access::place(&state.pool, &d.sub.location_code, ctx.lang).await?;
    let node = match d.sub.server_id {
        Some(sid) => servers::view(&state.pool, sid).await.map(|s| s.name).unwrap_or_else(|_| format!("#{sid}")),
        None => "—".to_owned(),
    };
    let body = html! {
        p { a href=(format!("{BASE}/subscriptions")) { (ctx.t("dash-subs-back")) } }
        (summary(ctx, &d, customer, &plan, &place, &node))
        (links(ctx, &d))
        @if ctx.can_write() { (actions(ctx, &d)) }
    };
    Ok(ctx.render(Page { title: ctx.ta("dash-subs-one", &[("id", ctx.num(id).into())]), body }))
}

fn done(e: &Editor, id: i64, what: &str) -> PageResult {
    Ok(e.ctx.done(&format!("{BASE}/subscriptions/{id}"), what))
}

#[derive(Deserialize)]
struct Days {
    days: Option<String>,
}

async fn extend(State(state): State<AppState>, e: Editor, Path(id): Path<String>, Form(f): Form<Days>) -> PageResult {
    let id = id_of(&id, "id")?;
    let days = given(&f.days)
        .and_then(|d| d.parse::<i64>().ok())
        .ok_or_else(|| AppError::field("days", format!("a whole number of days, 1 to {MAX_EXTEND_DAYS}")))?;
    admin::extend(&state.pool, &state.settings, id, days, &e.who()).await?;
    done(&e, id, "subs-extended")
}

#[derive(Deserialize)]
struct Gb {
    gb: Option<String>,
}

/// Gigabytes as typed (`5`, `1.5`; binary GB as data caps count them) in bytes, or a 422 naming `gb`.
fn gb_bytes(text: Option<&str>) -> Result<i64, AppError> {
    let bad = || AppError::field("gb", "a positive number of gigabytes, like 5 or 1.5");
    let plain = |t: &&str| t.len() <= 20 && t.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    let gb: Decimal = text.filter(plain).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    let bytes = gb.checked_mul(Decimal::from(BYTES_PER_GB)).ok_or_else(bad)?.trunc();
    // out of range (too large, zero) is the service's refusal, also naming `gb`
    Ok(bytes.to_i64().unwrap_or(i64::MAX))
}

async fn add_data(State(state): State<AppState>, e: Editor, Path(id): Path<String>, Form(f): Form<Gb>) -> PageResult {
    let id = id_of(&id, "id")?;
    let bytes = gb_bytes(given(&f.gb))?;
    admin::add_data(&state.pool, &state.settings, id, bytes, "gb", &e.who()).await?;
    done(&e, id, "subs-data-added")
}

#[derive(Deserialize)]
struct Reason {
    reason: Option<String>,
}

async fn revoke(State(state): State<AppState>, e: Editor, Path(id): Path<String>, Form(f): Form<Reason>) -> PageResult {
    let id = id_of(&id, "id")?;
    admin::revoke(&state.pool, &state.settings, id, f.reason.as_deref().unwrap_or(""), &e.who()).await?;
    done(&e, id, "subs-revoked")
}

#[derive(Deserialize)]
struct Seat {
    seat: Option<String>,
}

async fn reset_seat(
    State(state): State<AppState>,
    e: Editor,
    Path(id): Path<String>,
    Form(f): Form<Seat>,
) -> PageResult {
    let id = id_of(&id, "id")?;
    let seat =
        given(&f.seat).and_then(|s| s.parse::<i64>().ok()).ok_or_else(|| AppError::field("seat", "a device number"))?;
    admin::reset_seat(&state.pool, &state.settings, id, seat, &e.who()).await?;
    done(&e, id, "subs-seat-reset")
}

async fn rotate_url(State(state): State<AppState>, e: Editor, Path(id): Path<String>) -> PageResult {
    let id = id_of(&id, "id")?;
    admin::rotate_url(&state.pool, &state.settings, id, &e.who()).await?;
    done(&e, id, "subs-rotated")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gigabytes_are_read_exactly_and_junk_names_the_field() {
        assert_eq!(gb_bytes(Some("5")).unwrap(), 5 * BYTES_PER_GB);
        assert_eq!(gb_bytes(Some("1.5")).unwrap(), 3 * BYTES_PER_GB / 2);
        assert_eq!(gb_bytes(Some("0")).unwrap(), 0, "zero is refused by the service, naming gb");
        assert_eq!(gb_bytes(Some("99999999999999999")).unwrap(), i64::MAX);
        for junk in [None, Some("five"), Some("1e3"), Some("NaN"), Some("1,5"), Some("-1"), Some("1.2.3")] {
            let err = gb_bytes(junk).unwrap_err();
            assert!(matches!(err, AppError::Field { ref field, .. } if field == "gb"), "{junk:?}: {err:?}");
        }
    }
}
