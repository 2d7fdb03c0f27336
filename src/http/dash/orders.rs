//! Orders and payments: filtered listings (status, method, currency, date range, customer; 50 a page, keyset
//! cursors like the API's) on the same services as the admin API, money shown exactly in the operator's
//! language, and CSV downloads of the same filters (`/dash/orders.csv`, `/dash/payments.csv`; viewers may
//! export) with exact decimal amounts. Read-only: orders and payments change through the bot, the gateways and
//! the review queue.

mod csv;

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::routing::get;
use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Ctx, Page, PageResult};
use super::session::Viewer;
use super::subscriptions::id_of;
use crate::app::AppState;
use crate::db::orders::{OrderFilter, OrderLine};
use crate::db::payments::{PaymentFilter, PaymentLine};
use crate::domain::page::{Cursor, DEFAULT_LIMIT, Order, PageRequest};
use crate::domain::status::{OrderStatus, PaymentMethod, PaymentStatus};
use crate::domain::{Currency, Money};
use crate::error::AppError;
use crate::services::{orders, payments};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/orders", get(order_list))
        .route("/dash/orders.csv", get(order_csv))
        .route("/dash/payments", get(payment_list))
        .route("/dash/payments.csv", get(payment_csv))
}

/// The filter form as typed (empty fields are no filter); the same for both listings (orders have no method
/// of their own: it picks orders with a payment by that method).
#[derive(Debug, Default, Deserialize)]
struct Query {
    status: Option<String>,
    method: Option<String>,
    currency: Option<String>,
    kind: Option<String>,
    from: Option<String>,
    to: Option<String>,
    customer: Option<String>,
    cursor: Option<String>,
}

/// A bound of the date range (none: open).
type Moment = Option<DateTime<Utc>>;

/// The filters in the order the form shows them (the pager keeps them).
const FIELDS: [&str; 7] = ["status", "method", "currency", "kind", "from", "to", "customer"];

impl Query {
    fn read(raw: Option<&str>) -> Result<Query, AppError> {
        super::form::parse(raw.unwrap_or("").as_bytes())
    }

    fn get(&self, field: &str) -> Option<&str> {
        let v = match field {
            "status" => &self.status,
            "method" => &self.method,
            "currency" => &self.currency,
            "kind" => &self.kind,
            "from" => &self.from,
            "to" => &self.to,
            "customer" => &self.customer,
            _ => &self.cursor,
        };
        v.as_deref().map(str::trim).filter(|s| !s.is_empty())
    }

    fn parse<T: std::str::FromStr>(&self, field: &'static str, what: &str) -> Result<Option<T>, AppError> {
        self.get(field).map(|v| v.parse().map_err(|_| AppError::field(field, what.to_owned()))).transpose()
    }

    /// A day (`2026-12-02`, the start of that UTC day) or an instant (RFC 3339); `to` takes the whole day.
    fn moment(&self, field: &'static str) -> Result<Moment, AppError> {
        let Some(text) = self.get(field) else { return Ok(None) };
        let bad = || AppError::field(field, "a date like 2026-12-02");
        if let Ok(day) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let day = if field == "to" { day.succ_opt().ok_or_else(bad)? } else { day };
            return Ok(Some(day.and_hms_opt(0, 0, 0).ok_or_else(bad)?.and_utc()));
        }
        DateTime::parse_from_rfc3339(text).map(|t| Some(t.with_timezone(&Utc))).map_err(|_| bad())
    }

    fn page(&self, limit: i64) -> Result<PageRequest, AppError> {
        let after = self
            .get("cursor")
            .map(|c| Cursor::decode(c).map_err(|_| AppError::field("cursor", "not a cursor from a previous page")))
            .transpose()?;
        Ok(PageRequest { limit, after, order: Order::Desc })
    }

    /// The date range, `from` not after `to`.
    fn range(&self) -> Result<(Moment, Moment), AppError> {
        let (from, to) = (self.moment("from")?, self.moment("to")?);
        if let (Some(f), Some(t)) = (from, to)
            && f >= t
        {
            return Err(AppError::field("to", "on or after the first day"));
        }
        Ok((from, to))
    }

    fn orders(&self) -> Result<OrderFilter, AppError> {
        let (created_from, created_to) = self.range()?;
        Ok(OrderFilter {
            status: self.parse("status", "not an order status")?,
            user_id: self.get("customer").map(|c| id_of(c, "customer")).transpose()?,
            plan_id: None,
            kind: self.get("kind").map(str::to_owned),
            created_from,
            created_to,
            currency: self.parse("currency", "USD, EUR or IRR")?,
            method: self.parse("method", "card, stripe or zarinpal")?,
        })
    }

    fn payments(&self) -> Result<PaymentFilter, AppError> {
        let (created_from, created_to) = self.range()?;
        Ok(PaymentFilter {
            status: self.parse("status", "not a payment status")?,
            method: self.parse("method", "card, stripe or zarinpal")?,
            user_id: self.get("customer").map(|c| id_of(c, "customer")).transpose()?,
            order_id: None,
            created_from,
            created_to,
            currency: self.parse("currency", "USD, EUR or IRR")?,
        })
    }

    /// The filters as a query string (for the pager and the CSV link).
    fn encoded(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for f in FIELDS {
            if let Some(v) = self.get(f) {
                q.append_pair(f, v);
            }
        }
        q.finish()
    }
}

fn money(ctx: &Ctx, minor: Option<i64>, currency: Option<Currency>) -> String {
    match (minor, currency) {
        (Some(m), Some(c)) => Money::from_minor(m, c).map(|m| m.format(ctx.lang)).unwrap_or_else(|_| exact(m, c)),
        _ => "—".to_owned(),
    }
}

/// An exact decimal in major units (`12.50`), as the API and the CSV give it.
fn exact(minor: i64, currency: Currency) -> String {
    rust_decimal::Decimal::new(minor, currency.minor_digits()).to_string()
}

fn rfc3339(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn customer(ctx: &Ctx, user_id: i64, username: Option<&str>) -> Markup {
    html! {
        a href=(format!("{}/customers/{user_id}", super::BASE)) { "#" (ctx.num(user_id)) }
        @if let Some(name) = username { " " span.muted { "@" (name) } }
    }
}

fn select(ctx: &Ctx, q: &Query, field: &str, label: &str, values: &[(&str, String)]) -> Markup {
    html! {
        label { (ctx.t(label)) select name=(field) {
            option value="" { (ctx.t("dash-orders-any")) }
            @for (value, text) in values { option value=(value) selected[q.get(field) == Some(*value)] { (text) } }
        } }
    }
}

/// The filter form, the CSV link and the pager around a table.
fn listing(ctx: &Ctx, q: &Query, path: &str, statuses: Markup, table: Markup, next: Option<Cursor>) -> Markup {
    let methods: Vec<_> =
        PaymentMethod::ALL.iter().map(|m| (m.as_str(), ctx.t(&format!("dash-pay-method-{m}")))).collect();
    let currencies: Vec<_> = Currency::ALL.iter().map(|c| (c.as_str(), c.as_str().to_owned())).collect();
    let filters = q.encoded();
    let (query, sep) = if filters.is_empty() { ("", "") } else { ("?", "&") };
    html! {
        form.filters method="get" action=(path) {
            (statuses)
            (select(ctx, q, "method", "dash-orders-method", &methods))
            (select(ctx, q, "currency", "dash-orders-currency", &currencies))
            label { (ctx.t("dash-orders-from")) input type="date" name="from" value=(q.get("from").unwrap_or("")); }
            label { (ctx.t("dash-orders-to")) input type="date" name="to" value=(q.get("to").unwrap_or("")); }
            label { (ctx.t("dash-orders-customer")) input name="customer" inputmode="numeric" size="8" value=(q.get("customer").unwrap_or("")); }
            button type="submit" { (ctx.t("dash-orders-filter")) }
        }
        p { a.button.secondary href=(format!("{path}.csv{query}{filters}")) download { (ctx.t("dash-orders-csv")) } " "
            span.muted { (ctx.ta("dash-orders-csv-cap", &[("rows", ctx.num(csv::MAX_ROWS as i64).into())])) } }
        (table)
        nav.pager aria-label=(ctx.t("dash-orders-pages")) {
            @if q.get("cursor").is_some() { a href=(format!("{path}{query}{filters}")) { (ctx.t("dash-orders-first")) } }
            @if let Some(c) = next { a rel="next" href=(format!("{path}?{filters}{sep}cursor={}", c.encode())) { (ctx.t("dash-orders-next")) } }
        }
    }
}

fn badge(status: &str) -> &'static str {
    match status {
        "fulfilled" | "paid" | "accepted" | "auto_accepted" | "succeeded" => "badge ok",
        "awaiting_payment" | "pending" | "under_review" | "draft" => "badge warn",
        _ => "badge error",
    }
}

async fn order_list(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q = Query::read(raw.as_deref())?;
    let (rows, next) = orders::admin::lines(&state.pool, &q.orders()?, &q.page(DEFAULT_LIMIT)?).await?;
    let statuses: Vec<_> =
        OrderStatus::ALL.iter().map(|s| (s.as_str(), ctx.t(&format!("dash-order-status-{s}")))).collect();
    let kinds: Vec<_> =
        ["new", "renewal", "topup"].iter().map(|k| (*k, ctx.t(&format!("dash-order-kind-{k}")))).collect();
    let filters = html! {
        (select(ctx, &q, "status", "dash-orders-status", &statuses))
        (select(ctx, &q, "kind", "dash-orders-kind", &kinds))
    };
    let table = html! {
        @if rows.is_empty() { p.muted { (ctx.t("dash-orders-none")) } }
        @else { div.table-wrap { table {
            thead { tr {
                th { "#" } th { (ctx.t("dash-orders-created")) } th { (ctx.t("dash-orders-who")) }
                th { (ctx.t("dash-orders-kind")) } th { (ctx.t("dash-orders-status")) } th { (ctx.t("dash-orders-amount")) }
                th { (ctx.t("dash-orders-subscription")) }
            } }
            tbody { @for OrderLine { order: o, username, .. } in &rows { tr {
                td { (ctx.num(o.id)) }
                td { (ctx.when(o.created_at)) }
                td { (customer(ctx, o.user_id, username.as_deref())) }
                td { (ctx.t(&format!("dash-order-kind-{}", o.kind))) }
                td { span class=(badge(o.status.as_str())) { (ctx.t(&format!("dash-order-status-{}", o.status))) } }
                td.mono { (money(ctx, o.amount_minor, o.currency)) }
                td { @if let Some(s) = o.subscription_id { a href=(format!("{}/subscriptions/{s}", super::BASE)) { "#" (ctx.num(s)) } } @else { "—" } }
            } } }
        } } }
    };
    let body = listing(ctx, &q, &format!("{}/orders", super::BASE), filters, table, next);
    Ok(ctx.render(Page { title: ctx.t("dash-orders-title"), body }))
}

async fn payment_list(State(state): State<AppState>, v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q = Query::read(raw.as_deref())?;
    let (rows, next) = payments::admin::lines(&state.pool, &q.payments()?, &q.page(DEFAULT_LIMIT)?).await?;
    let statuses: Vec<_> =
        PaymentStatus::ALL.iter().map(|s| (s.as_str(), ctx.t(&format!("dash-pay-status-{s}")))).collect();
    let filters = select(ctx, &q, "status", "dash-orders-status", &statuses);
    let table = html! {
        @if rows.is_empty() { p.muted { (ctx.t("dash-pay-none")) } }
        @else { div.table-wrap { table {
            thead { tr {
                th { "#" } th { (ctx.t("dash-orders-created")) } th { (ctx.t("dash-orders-who")) }
                th { (ctx.t("dash-pay-order")) } th { (ctx.t("dash-orders-method")) } th { (ctx.t("dash-orders-status")) }
                th { (ctx.t("dash-orders-amount")) } th { (ctx.t("dash-pay-decided")) }
            } }
            tbody { @for PaymentLine { payment: p, username, .. } in &rows { tr {
                td { (ctx.num(p.id)) }
                td { (ctx.when(p.created_at)) }
                td { (customer(ctx, p.user_id, username.as_deref())) }
                td { "#" (ctx.num(p.order_id)) }
                td { (ctx.t(&format!("dash-pay-method-{}", p.method))) }
                td { span class=(badge(p.status.as_str())) { (ctx.t(&format!("dash-pay-status-{}", p.status))) } }
                td.mono { (money(ctx, Some(p.amount_minor), Some(p.currency))) }
                td { (ctx.when_opt(p.decided_at)) @if let Some(by) = &p.decided_by { br; span.muted { (by) } } }
            } } }
        } } }
    };
    let body = listing(ctx, &q, &format!("{}/payments", super::BASE), filters, table, next);
    Ok(ctx.render(Page { title: ctx.t("dash-pay-title"), body }))
}

const ORDER_HEADER: [&str; 13] = [
    "id",
    "public_id",
    "created_at",
    "status",
    "kind",
    "customer_id",
    "telegram_id",
    "username",
    "plan_id",
    "currency",
    "amount",
    "subscription_id",
    "updated_at",
];

fn order_line(l: &OrderLine) -> String {
    let o = &l.order;
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let amount = match (o.amount_minor, o.currency) {
        (Some(m), Some(c)) => exact(m, c),
        _ => String::new(),
    };
    csv::line(&[
        o.id.to_string(),
        o.public_id.to_string(),
        rfc3339(o.created_at),
        o.status.to_string(),
        o.kind.clone(),
        o.user_id.to_string(),
        l.telegram_id.to_string(),
        l.username.clone().unwrap_or_default(),
        opt(o.plan_id),
        o.currency.map(|c| c.to_string()).unwrap_or_default(),
        amount,
        opt(o.subscription_id),
        rfc3339(o.updated_at),
    ])
}

async fn order_csv(State(state): State<AppState>, _v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let q = Query::read(raw.as_deref())?;
    let filter = q.orders()?;
    let batch = move |pool: sqlx::PgPool, filter: OrderFilter, after: Option<Cursor>| async move {
        let page = PageRequest { limit: csv::BATCH, after, order: Order::Desc };
        let (rows, next) = orders::admin::lines(&pool, &filter, &page).await?;
        Ok::<_, AppError>((rows.iter().map(order_line).collect::<Vec<_>>(), next))
    };
    let first = batch(state.pool.clone(), filter.clone(), None).await?;
    let pool = state.pool.clone();
    Ok(csv::download("orders", &ORDER_HEADER, first, move |after| batch(pool.clone(), filter.clone(), Some(after))))
}

const PAYMENT_HEADER: [&str; 12] = [
    "id",
    "order_id",
    "created_at",
    "status",
    "method",
    "customer_id",
    "telegram_id",
    "username",
    "currency",
    "amount",
    "decided_at",
    "decided_by",
];

fn payment_line(l: &PaymentLine) -> String {
    let p = &l.payment;
    csv::line(&[
        p.id.to_string(),
        p.order_id.to_string(),
        rfc3339(p.created_at),
        p.status.to_string(),
        p.method.to_string(),
        p.user_id.to_string(),
        l.telegram_id.to_string(),
        l.username.clone().unwrap_or_default(),
        p.currency.to_string(),
        exact(p.amount_minor, p.currency),
        p.decided_at.map(rfc3339).unwrap_or_default(),
        p.decided_by.clone().unwrap_or_default(),
    ])
}

async fn payment_csv(State(state): State<AppState>, _v: Viewer, RawQuery(raw): RawQuery) -> PageResult {
    let q = Query::read(raw.as_deref())?;
    let filter = q.payments()?;
    let batch = move |pool: sqlx::PgPool, filter: PaymentFilter, after: Option<Cursor>| async move {
        let page = PageRequest { limit: csv::BATCH, after, order: Order::Desc };
        let (rows, next) = payments::admin::lines(&pool, &filter, &page).await?;
        Ok::<_, AppError>((rows.iter().map(payment_line).collect::<Vec<_>>(), next))
    };
    let first = batch(state.pool.clone(), filter.clone(), None).await?;
    let pool = state.pool.clone();
    Ok(csv::download("payments", &PAYMENT_HEADER, first, move |after| batch(pool.clone(), filter.clone(), Some(after))))
}
