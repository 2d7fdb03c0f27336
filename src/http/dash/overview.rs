//! The overview (`/dash`): the shop's last 30 days from `services::stats` (the figures of `GET /api/v1/stats`) —
//! money taken per day in each currency, orders paid and new customers per day as server-drawn SVG charts with
//! the numbers beside them, trial → paid conversion, active subscriptions, payments waiting for review, and the
//! nodes (up or down, load, traffic).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::NaiveDate;
use maud::{Markup, html};

use super::BASE;
use super::layout::{Ctx, Page, PageResult};
use super::nodes::{health, load, percent, traffic};
use super::session::Viewer;
use super::svg::{self, Point};
use crate::app::AppState;
use crate::domain::{Currency, Money};
use crate::i18n;
use crate::services::stats::{self, Stats};

/// The window the overview shows, in UTC days (today included).
const DAYS: i64 = 30;

pub fn router() -> Router<AppState> {
    Router::new().route("/dash", get(show))
}

fn money(ctx: &Ctx, currency: Currency, minor: i64) -> String {
    Money::from_minor(minor, currency).map(|m| m.format(ctx.lang)).unwrap_or_else(|_| "—".to_owned())
}

fn day(ctx: &Ctx, date: NaiveDate) -> String {
    i18n::localize_digits(ctx.lang, &date.format("%Y-%m-%d").to_string())
}

fn short_day(ctx: &Ctx, date: NaiveDate) -> String {
    i18n::localize_digits(ctx.lang, &date.format("%m-%d").to_string())
}

/// A chart of one number per day: `key` summarises it (with `days`, `total` and `max`).
fn chart(ctx: &Ctx, key: &str, series: &[(NaiveDate, i64)], show: impl Fn(i64) -> String) -> Markup {
    let total: i64 = series.iter().map(|(_, v)| v).sum();
    let max = series.iter().map(|(_, v)| *v).max().unwrap_or(0);
    let summary =
        ctx.ta(key, &[("days", ctx.num(DAYS).into()), ("total", show(total).into()), ("max", show(max).into())]);
    let points: Vec<Point> = series
        .iter()
        .map(|(date, v)| Point {
            label: short_day(ctx, *date),
            value: *v,
            text: format!("{}: {}", day(ctx, *date), show(*v)),
        })
        .collect();
    svg::bars(&summary, &points, &show(max))
}

fn card(value: Markup, label: String) -> Markup {
    html! { div.card.stat { div.value { (value) } div.label { (label) } } }
}

fn figures(ctx: &Ctx, s: &Stats) -> Markup {
    let (up, down, unknown) = s.nodes_health();
    let conversion = if s.trials > 0 {
        ctx.ta(
            "dash-overview-conversion-value",
            &[
                ("paid", ctx.num(s.trials_converted).into()),
                ("trials", ctx.num(s.trials).into()),
                ("rate", percent(ctx, s.trials_converted, s.trials).into()),
            ],
        )
    } else {
        ctx.t("dash-overview-conversion-none")
    };
    html! {
        div.grid {
            @for a in &s.revenue_total {
                (card(html! { (money(ctx, a.currency, a.amount_minor)) },
                      ctx.ta("dash-overview-revenue-in", &[("currency", a.currency.as_str().into())])))
            }
            @if s.revenue_total.is_empty() { (card(html! { "—" }, ctx.t("dash-overview-revenue"))) }
            (card(html! { (ctx.num(s.orders_paid_total)) }, ctx.t("dash-overview-orders")))
            (card(html! { (ctx.num(s.new_customers_total)) }, ctx.t("dash-overview-customers")))
            (card(html! { (conversion) }, ctx.t("dash-overview-conversion")))
            (card(html! { (ctx.num(s.active_subscriptions)) }, ctx.t("dash-overview-active")))
            div.card.stat {
                div.value { (ctx.num(s.pending_reviews)) }
                div.label { a href=(format!("{BASE}/review")) { (ctx.t("dash-overview-reviews")) } }
            }
            (card(
                html! { (ctx.ta("dash-overview-nodes-value", &[("up", ctx.num(up).into()), ("down", ctx.num(down).into())])) },
                if unknown > 0 {
                    ctx.ta("dash-overview-nodes-unknown", &[("unknown", ctx.num(unknown).into())])
                } else {
                    ctx.t("dash-overview-nodes")
                },
            ))
        }
    }
}

fn per_day_table(ctx: &Ctx, s: &Stats, currencies: &[Currency]) -> Markup {
    html! {
        details {
            summary { (ctx.t("dash-overview-per-day")) }
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (ctx.t("dash-overview-date")) }
                    @for c in currencies { th.num scope="col" { (ctx.ta("dash-overview-revenue-in", &[("currency", c.as_str().into())])) } }
                    th.num scope="col" { (ctx.t("dash-overview-orders")) }
                    th.num scope="col" { (ctx.t("dash-overview-customers")) }
                } }
                tbody { @for d in s.daily.iter().rev() { tr {
                    th scope="row" { (day(ctx, d.date)) }
                    @for c in currencies {
                        td.num { (money(ctx, *c, d.revenue.iter().filter(|a| a.currency == *c).map(|a| a.amount_minor).sum())) }
                    }
                    td.num { (ctx.num(d.orders_paid)) }
                    td.num { (ctx.num(d.new_customers)) }
                } } }
            } }
        }
    }
}

fn nodes(ctx: &Ctx, s: &Stats) -> Markup {
    html! {
        @if s.servers.is_empty() {
            p { (ctx.t("dash-overview-no-nodes")) " " a href=(format!("{BASE}/nodes")) { (ctx.t("dash-nav-nodes")) } }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th scope="col" { (ctx.t("dash-nodes-name")) } th scope="col" { (ctx.t("dash-nodes-health")) }
                    th scope="col" { (ctx.t("dash-nodes-load")) } th.num scope="col" { (ctx.t("dash-nodes-traffic")) }
                } }
                tbody { @for n in &s.servers { tr {
                    td {
                        a href=(format!("{BASE}/nodes/{}", n.id)) { (n.name) } " " span.muted { (n.location_code) }
                        @if !n.enabled { " " span.badge { (ctx.t("dash-nodes-off")) } }
                    }
                    td { (health(ctx, n.health)) br; span.muted { (ctx.when_opt(n.last_seen_at)) } }
                    td { (load(ctx, n.active_clients, n.capacity)) }
                    td.num { (traffic(ctx, n.traffic_bytes)) }
                } } }
            } }
        }
    }
}

async fn show(State(state): State<AppState>, v: Viewer) -> PageResult {
    let ctx = &v.ctx;
    let s = stats::compute(&state.pool, DAYS).await?;
    let currencies = s.currencies();
    let count = |n: i64| ctx.num(n);
    let orders: Vec<(NaiveDate, i64)> = s.daily.iter().map(|d| (d.date, d.orders_paid)).collect();
    let customers: Vec<(NaiveDate, i64)> = s.daily.iter().map(|d| (d.date, d.new_customers)).collect();
    let body = html! {
        p.muted { (ctx.ta("dash-overview-window", &[("days", ctx.num(DAYS).into()), ("since", day(ctx, s.since.date_naive()).into())])) }
        (figures(ctx, &s))
        section aria-labelledby="revenue" {
            h2 #revenue { (ctx.t("dash-overview-revenue")) }
            @if currencies.is_empty() { p { (ctx.ta("dash-overview-revenue-none", &[("days", ctx.num(DAYS).into())])) } }
            div.charts { @for c in &currencies { div {
                h3 { (c.as_str()) }
                (chart(ctx, "dash-overview-revenue-chart", &s.revenue_series(*c), |minor| money(ctx, *c, minor)))
            } } }
        }
        section aria-labelledby="activity" {
            h2 #activity { (ctx.t("dash-overview-activity")) }
            div.charts {
                div {
                    h3 { (ctx.t("dash-overview-orders")) }
                    (chart(ctx, "dash-overview-orders-chart", &orders, count))
                }
                div {
                    h3 { (ctx.t("dash-overview-customers")) }
                    (chart(ctx, "dash-overview-customers-chart", &customers, count))
                }
            }
            (per_day_table(ctx, &s, &currencies))
        }
        section aria-labelledby="nodes" {
            h2 #nodes { (ctx.t("dash-nav-nodes")) }
            (nodes(ctx, &s))
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-overview-title"), body }))
}
