//! Plans and prices (`/dash/plans`): the catalogue with its prices, a plan's page with a price per currency, and
//! putting a plan on or off sale — through `services::catalog::manage`, like the admin API, so every change is
//! audited and makes the plan the operator's (the catalogue seeder leaves it alone). Amounts are typed in major
//! units and parsed exactly for their currency (`Money::parse_major`); orders keep the price they were made at.

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Ctx, Page, PageResult};
use super::session::{Editor, Viewer};
use super::{BASE, Form};
use crate::app::AppState;
use crate::db::plans::{PlanDetail, PlanFilter};
use crate::domain::page::{Cursor, Order, PageRequest};
use crate::domain::{AmountError, Currency, Money};
use crate::error::AppError;
use crate::services::catalog::manage;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/plans", get(list))
        .route("/dash/plans/{id}", get(show))
        .route("/dash/plans/{id}/enable", post(enable))
        .route("/dash/plans/{id}/disable", post(disable))
        .route("/dash/plans/{id}/prices/{currency}", post(set_price))
        .route("/dash/plans/{id}/prices/{currency}/remove", post(remove_price))
}

const PER_PAGE: i64 = 50;
const GIB: i64 = 1 << 30;

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    location: Option<String>,
    /// `on`, `off` or empty (all).
    sale: Option<String>,
    cursor: Option<String>,
}

fn given(value: &Option<String>) -> Option<String> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
}

fn plan_id(text: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| AppError::field("id", "not a plan id"))
}

async fn list(State(state): State<AppState>, v: Viewer, RawQuery(query): RawQuery) -> PageResult {
    let ctx = &v.ctx;
    let q: ListQuery = super::form::parse(query.unwrap_or_default().as_bytes())?;
    let location = given(&q.location);
    if location.as_ref().is_some_and(|l| l.len() > 16) {
        return Err(AppError::field("location", "at most 16 characters").into());
    }
    let active = match given(&q.sale).as_deref() {
        None => None,
        Some("on") => Some(true),
        Some("off") => Some(false),
        Some(_) => return Err(AppError::field("sale", "on, off or empty").into()),
    };
    let after = given(&q.cursor)
        .map(|c| Cursor::decode(&c).map_err(|e| AppError::field("cursor", e.to_string())))
        .transpose()?;
    let filter = PlanFilter { location: location.clone(), active, trial: None };
    let (plans, next) = manage::page(&state.pool, &filter, &PageRequest::new(PER_PAGE, after, Order::Asc)).await?;
    let sale = given(&q.sale).unwrap_or_default();
    let next_href = next.map(|c| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("location", location.as_deref().unwrap_or(""))
            .append_pair("sale", &sale)
            .append_pair("cursor", &c.encode())
            .finish();
        format!("{BASE}/plans?{query}")
    });
    let body = html! {
        form.filters method="get" action=(format!("{BASE}/plans")) {
            label { (ctx.t("dash-plans-location")) input name="location" value=(location.as_deref().unwrap_or("")) maxlength="16"; }
            label { (ctx.t("dash-plans-sale"))
                select name="sale" {
                    option value="" selected[sale.is_empty()] { (ctx.t("dash-plans-sale-any")) }
                    option value="on" selected[sale == "on"] { (ctx.t("dash-plans-on-sale")) }
                    option value="off" selected[sale == "off"] { (ctx.t("dash-plans-off-sale")) }
                }
            }
            button type="submit" { (ctx.t("dash-plans-filter")) }
        }
        @if plans.is_empty() {
            p.muted { (ctx.t("dash-plans-none")) }
        } @else {
            div.table-wrap { table {
                thead { tr {
                    th { (ctx.t("dash-plans-plan")) } th { (ctx.t("dash-plans-duration")) } th { (ctx.t("dash-plans-seats")) }
                    th { (ctx.t("dash-plans-cap")) } th { (ctx.t("dash-plans-prices")) } th { (ctx.t("dash-plans-state")) }
                    th { span.muted { (ctx.t("dash-actions")) } }
                } }
                tbody { @for p in &plans { tr {
                    td { a href=(format!("{BASE}/plans/{}", p.id)) { (p.code) } br; span.muted { (p.location_code) } }
                    td { (ctx.ta("dash-plans-days", &[("days", ctx.num(p.duration_days.into()).into())])) }
                    td { (ctx.num(p.seats.into())) }
                    td { (cap(ctx, p.data_cap_bytes)) }
                    td { (prices(ctx, p)) }
                    td { (badges(ctx, p)) }
                    td { div.actions {
                        a href=(format!("{BASE}/plans/{}", p.id)) { (ctx.t(if ctx.can_write() { "dash-plans-edit" } else { "dash-plans-open" })) }
                        @if ctx.can_write() { (toggle(ctx, p, "list")) }
                    } }
                } } }
            } }
            @if let Some(href) = next_href { nav.pager { a href=(href) { (ctx.t("dash-plans-next")) } } }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-plans-title"), body }))
}

/// The data cap as people read it.
fn cap(ctx: &Ctx, bytes: Option<i64>) -> String {
    match bytes {
        None => ctx.t("dash-plans-unlimited"),
        Some(b) if b % GIB == 0 => ctx.ta("dash-plans-gb", &[("gb", ctx.num(b / GIB).into())]),
        Some(b) => ctx.ta("dash-plans-bytes", &[("bytes", ctx.num(b).into())]),
    }
}

fn money(ctx: &Ctx, currency: Currency, minor: i64) -> String {
    Money::from_minor(minor, currency).map(|m| m.format(ctx.lang)).unwrap_or_else(|_| format!("{minor} {currency}"))
}

fn prices(ctx: &Ctx, p: &PlanDetail) -> Markup {
    let prices = p.prices();
    html! {
        @if prices.is_empty() { span.muted { (ctx.t("dash-plans-no-price")) } }
        @for (i, (currency, minor)) in prices.iter().enumerate() {
            @if i > 0 { br; }
            span lang=(ctx.lang.as_str()) { (money(ctx, *currency, *minor)) } " " span.muted.mono { (currency.as_str()) }
        }
    }
}

fn badges(ctx: &Ctx, p: &PlanDetail) -> Markup {
    html! {
        @if p.active { span.badge.ok { (ctx.t("dash-plans-on-sale")) } } @else { span.badge.warn { (ctx.t("dash-plans-off-sale")) } }
        @if p.is_trial { " " span.badge { (ctx.t("dash-plans-trial")) } }
        " " span.badge { (ctx.t(if p.source == "api" { "dash-plans-source-api" } else { "dash-plans-source-catalog" })) }
    }
}

/// The form that puts a plan on or off sale; `back` says where to return (`list` or the plan's page).
fn toggle(ctx: &Ctx, p: &PlanDetail, back: &str) -> Markup {
    let (action, label, class) = if p.active {
        ("disable", "dash-plans-disable", "danger")
    } else {
        ("enable", "dash-plans-enable", "secondary")
    };
    html! {
        form.inline method="post" action=(format!("{BASE}/plans/{}/{action}", p.id)) {
            (ctx.csrf_field())
            input type="hidden" name="back" value=(back);
            button class=(class) type="submit" { (ctx.t(label)) }
        }
    }
}

async fn show(State(state): State<AppState>, v: Viewer, Path(id): Path<String>) -> PageResult {
    let plan = manage::detail(&state.pool, plan_id(&id)?).await?;
    Ok(plan_page(&v.ctx, &plan, None, StatusCode::OK))
}

/// A refused price: its currency, what was typed and why.
struct PriceError {
    currency: Currency,
    typed: String,
    message: String,
}

fn plan_page(ctx: &Ctx, p: &PlanDetail, error: Option<&PriceError>, status: StatusCode) -> axum::response::Response {
    let prices = p.prices();
    let body = html! {
        @if let Some(e) = error {
            div.flash.error role="alert" { p { (ctx.ta("dash-error-field", &[("field", "amount".into()), ("message", e.message.as_str().into())])) } }
        }
        section.card aria-labelledby="plan" {
            h2 #plan { (p.code) }
            dl.review {
                dt { (ctx.t("dash-plans-location")) } dd { (p.location_code) }
                dt { (ctx.t("dash-plans-duration")) } dd { (ctx.ta("dash-plans-days", &[("days", ctx.num(p.duration_days.into()).into())])) }
                dt { (ctx.t("dash-plans-seats")) } dd { (ctx.num(p.seats.into())) }
                dt { (ctx.t("dash-plans-cap")) } dd { (cap(ctx, p.data_cap_bytes)) }
                dt { (ctx.t("dash-plans-state")) } dd { (badges(ctx, p)) }
                dt { (ctx.t("dash-plans-updated")) } dd { (ctx.when(p.updated_at)) }
            }
            @if ctx.can_write() { div.actions { (toggle(ctx, p, "plan")) } }
        }
        section aria-labelledby="prices" {
            h2 #prices { (ctx.t("dash-plans-prices")) }
            p.muted { (ctx.t("dash-plans-prices-help")) }
            div.table-wrap { table {
                thead { tr { th { (ctx.t("dash-plans-currency")) } th { (ctx.t("dash-plans-price-now")) }
                    @if ctx.can_write() { th { (ctx.t("dash-plans-price-new")) } } } }
                tbody { @for currency in Currency::ALL {
                    @let current = prices.iter().find(|(c, _)| c == currency).map(|(_, a)| *a);
                    @let refused = error.filter(|e| e.currency == *currency);
                    tr {
                        th scope="row" { span.mono { (currency.as_str()) } }
                        td { @match current { Some(a) => (money(ctx, *currency, a)), None => span.muted { (ctx.t("dash-plans-no-price")) } } }
                        @if ctx.can_write() { td {
                            (price_form(ctx, p.id, *currency, current, refused))
                            @if current.is_some() {
                                form.inline method="post" action=(format!("{BASE}/plans/{}/prices/{}/remove", p.id, currency.as_str())) {
                                    (ctx.csrf_field())
                                    button.link type="submit" { (ctx.t("dash-plans-price-remove")) }
                                }
                            }
                        } }
                    }
                } }
            } }
        }
        p { a href=(format!("{BASE}/plans")) { (ctx.t("dash-plans-back")) } }
    };
    ctx.render_status(status, Page { title: ctx.t("dash-plans-plan-title"), body })
}

fn price_form(ctx: &Ctx, id: i64, currency: Currency, current: Option<i64>, refused: Option<&PriceError>) -> Markup {
    let value = match (refused, current) {
        (Some(e), _) => e.typed.clone(),
        (None, Some(a)) => Money::from_minor(a, currency).map(|m| m.to_major().to_string()).unwrap_or_default(),
        (None, None) => String::new(),
    };
    let hint = ctx.ta(
        "dash-plans-amount-hint",
        &[("currency", currency.as_str().into()), ("digits", ctx.num(currency.minor_digits().into()).into())],
    );
    let error_id = format!("price-error-{}", currency.as_str());
    html! {
        form.inline method="post" action=(format!("{BASE}/plans/{id}/prices/{}", currency.as_str())) {
            (ctx.csrf_field())
            label {
                (ctx.ta("dash-plans-amount", &[("currency", currency.as_str().into())]))
                input name="amount" value=(value) inputmode="decimal" required maxlength="24" dir="ltr"
                    aria-invalid=[refused.is_some().then_some("true")] aria-describedby=[refused.is_some().then_some(error_id.as_str())];
            }
            span.muted { (hint) }
            @if let Some(e) = refused { span.badge.error #(error_id) { (e.message) } }
            button type="submit" { (ctx.t("dash-plans-price-save")) }
        }
    }
}

#[derive(Debug, Deserialize)]
struct Back {
    back: Option<String>,
}

async fn enable(state: State<AppState>, e: Editor, id: Path<String>, f: Form<Back>) -> PageResult {
    set_active(state, e, id, f, true).await
}

async fn disable(state: State<AppState>, e: Editor, id: Path<String>, f: Form<Back>) -> PageResult {
    set_active(state, e, id, f, false).await
}

async fn set_active(
    State(state): State<AppState>,
    e: Editor,
    Path(id): Path<String>,
    Form(f): Form<Back>,
    active: bool,
) -> PageResult {
    let id = plan_id(&id)?;
    manage::set_active(&state.pool, id, active, &e.who()).await?;
    let to = if f.back.as_deref() == Some("list") { format!("{BASE}/plans") } else { format!("{BASE}/plans/{id}") };
    Ok(e.ctx.done(&to, if active { "plan-enabled" } else { "plan-disabled" }))
}

#[derive(Debug, Deserialize)]
struct Amount {
    amount: String,
}

fn amount_message(ctx: &Ctx, e: AmountError) -> String {
    match e {
        AmountError::NotANumber => ctx.t("dash-plans-amount-nan"),
        AmountError::TooPrecise { currency, digits } => ctx.ta(
            "dash-plans-amount-precise",
            &[("currency", currency.as_str().into()), ("digits", ctx.num(digits.into()).into())],
        ),
        AmountError::NotPositive => ctx.t("dash-plans-amount-positive"),
        AmountError::TooLarge => ctx.t("dash-plans-amount-large"),
    }
}

async fn set_price(
    State(state): State<AppState>,
    e: Editor,
    Path((id, currency)): Path<(String, String)>,
    Form(f): Form<Amount>,
) -> PageResult {
    let plan = manage::detail(&state.pool, plan_id(&id)?).await?;
    let currency = manage::parse_currency(&currency)?;
    let amount = match Money::parse_major(&f.amount, currency) {
        Ok(m) => m,
        Err(why) => {
            let typed: String = f.amount.chars().take(24).collect();
            let error = PriceError { currency, typed, message: amount_message(&e.ctx, why) };
            return Ok(plan_page(&e.ctx, &plan, Some(&error), StatusCode::UNPROCESSABLE_ENTITY));
        }
    };
    manage::set_price(&state.pool, plan.id, currency, amount.minor(), &e.who()).await?;
    Ok(e.ctx.done(&format!("{BASE}/plans/{}", plan.id), "price-set"))
}

async fn remove_price(
    State(state): State<AppState>,
    e: Editor,
    Path((id, currency)): Path<(String, String)>,
) -> PageResult {
    let id = plan_id(&id)?;
    let currency = manage::parse_currency(&currency)?;
    manage::delete_price(&state.pool, id, currency, &e.who()).await?;
    Ok(e.ctx.done(&format!("{BASE}/plans/{id}"), "price-removed"))
}
