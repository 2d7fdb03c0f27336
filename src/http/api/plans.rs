//! Plans (`/plans`): list, one with its prices, create, change, put on or take off sale, set and remove prices.
//! Amounts are integer minor units (`amount_minor`: cents for USD and EUR, rials for IRR), never decimals.
//! A plan made or changed here is the API's from then on: `vpnshop catalog seed` (config/plans.toml) leaves it
//! alone (`source: "api"`). Orders keep the price they were submitted at.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, Caller, Page, Params, PathOf, Writer, page_request};
use crate::app::AppState;
use crate::db::plans::{PlanDetail, PlanFilter};
use crate::domain::Currency;
use crate::domain::page::Order;
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::catalog::manage::{self, NewPlan, PlanChange};

/// A price of a plan.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Price {
    pub currency: Currency,
    /// In minor units (cents; rials for IRR); positive.
    pub amount_minor: i64,
}

/// A plan with its prices.
#[derive(Debug, Serialize, ToSchema)]
pub struct Plan {
    pub id: i64,
    pub code: String,
    pub location: String,
    pub duration_days: i32,
    pub seats: i32,
    /// Null: unlimited.
    pub data_cap_bytes: Option<i64>,
    pub is_trial: bool,
    /// On sale.
    pub active: bool,
    pub sort_order: i32,
    /// `catalog` (seeded from config/plans.toml) or `api` (made or changed here; the seeder leaves it alone).
    pub source: String,
    pub prices: Vec<Price>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PlanDetail> for Plan {
    fn from(p: PlanDetail) -> Self {
        let prices = p.prices().into_iter().map(|(currency, amount_minor)| Price { currency, amount_minor }).collect();
        Plan {
            id: p.id,
            code: p.code,
            location: p.location_code,
            duration_days: p.duration_days,
            seats: p.seats,
            data_cap_bytes: p.data_cap_bytes,
            is_trial: p.is_trial,
            active: p.active,
            sort_order: p.sort_order,
            source: p.source,
            prices,
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PlanQuery {
    /// A location code (`de`).
    pub location: Option<String>,
    pub active: Option<bool>,
    pub trial: Option<bool>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// By id: `desc` (newest first, the default) or `asc`.
    pub order: Option<Order>,
}

/// Plans, filtered (the filters combine).
#[utoipa::path(get, path = "/api/v1/plans", tag = "plans", params(PlanQuery),
    responses((status = 200, body = Page<Plan>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_plans(
    State(state): State<AppState>,
    _caller: Caller,
    Params(query): Params<PlanQuery>,
) -> AppResult<Json<Page<Plan>>> {
    let page = page_request(query.limit, query.cursor.as_deref(), query.order)?;
    let filter = PlanFilter { location: query.location, active: query.active, trial: query.trial };
    let (rows, next) = manage::page(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(Plan::from)))
}

/// One plan with its prices.
#[utoipa::path(get, path = "/api/v1/plans/{id}", tag = "plans", params(("id" = i64, Path, description = "The plan's id")),
    responses((status = 200, body = Plan), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_plan(
    State(state): State<AppState>,
    _caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<Plan>> {
    Ok(Json(manage::detail(&state.pool, id).await?.into()))
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlan {
    /// A location code of the catalogue (`de`).
    pub location: String,
    /// 1–3660.
    pub duration_days: i32,
    /// Devices, 1–100.
    pub seats: i32,
    /// Null or absent: unlimited.
    #[serde(default)]
    pub data_cap_bytes: Option<i64>,
    #[serde(default)]
    pub sort_order: i32,
    /// On sale at once (default true).
    #[serde(default = "yes")]
    pub active: bool,
    /// At least one; one per currency.
    pub prices: Vec<Price>,
}

/// Create a plan (never a trial: trial plans are made by the trial settings).
#[utoipa::path(post, path = "/api/v1/plans", tag = "plans", request_body = CreatePlan,
    responses((status = 201, body = Plan), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_plan(
    State(state): State<AppState>,
    writer: Writer,
    Body(req): Body<CreatePlan>,
) -> AppResult<(StatusCode, Json<Plan>)> {
    let plan = NewPlan {
        location: req.location,
        duration_days: req.duration_days,
        seats: req.seats,
        data_cap_bytes: req.data_cap_bytes,
        sort_order: req.sort_order,
        active: req.active,
        prices: req.prices.into_iter().map(|p| (p.currency, p.amount_minor)).collect(),
    };
    let row = manage::create(&state.pool, &plan, &writer.who()).await?;
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// `null` kept apart from absent: `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchPlan {
    /// Shape fields (location, duration_days, seats, data_cap_bytes) change only while nothing was ordered of it.
    pub location: Option<String>,
    pub duration_days: Option<i32>,
    pub seats: Option<i32>,
    /// Null: unlimited.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>)]
    pub data_cap_bytes: Option<Option<i64>>,
    pub sort_order: Option<i32>,
    pub active: Option<bool>,
}

/// Change a plan's fields (absent ones stay). Prices have their own routes.
#[utoipa::path(patch, path = "/api/v1/plans/{id}", tag = "plans", request_body = PatchPlan,
    params(("id" = i64, Path, description = "The plan's id")),
    responses((status = 200, body = Plan), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub async fn patch_plan(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<PatchPlan>,
) -> AppResult<Json<Plan>> {
    let change = PlanChange {
        location: req.location,
        duration_days: req.duration_days,
        seats: req.seats,
        data_cap_bytes: req.data_cap_bytes,
        sort_order: req.sort_order,
        active: req.active,
    };
    Ok(Json(manage::update(&state.pool, id, &change, &writer.who()).await?.into()))
}

/// Put a plan on sale (again). Activating an active plan changes nothing.
#[utoipa::path(post, path = "/api/v1/plans/{id}/activate", tag = "plans", params(("id" = i64, Path, description = "The plan's id")),
    responses((status = 200, body = Plan), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn activate_plan(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<Plan>> {
    Ok(Json(manage::set_active(&state.pool, id, true, &writer.who()).await?.into()))
}

/// Take a plan off sale (existing subscriptions and orders keep it).
#[utoipa::path(post, path = "/api/v1/plans/{id}/deactivate", tag = "plans", params(("id" = i64, Path, description = "The plan's id")),
    responses((status = 200, body = Plan), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn deactivate_plan(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<Plan>> {
    Ok(Json(manage::set_active(&state.pool, id, false, &writer.who()).await?.into()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPrice {
    /// In minor units (cents; rials for IRR); positive.
    pub amount_minor: i64,
}

/// Set the plan's price in a currency (`USD`, `EUR`, `IRR`). Submitted orders keep their price.
#[utoipa::path(put, path = "/api/v1/plans/{id}/prices/{currency}", tag = "plans", request_body = PutPrice,
    params(("id" = i64, Path, description = "The plan's id"), ("currency" = Currency, Path, description = "USD, EUR or IRR")),
    responses((status = 200, body = Plan), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_price(
    State(state): State<AppState>,
    writer: Writer,
    PathOf((id, currency)): PathOf<(i64, String)>,
    Body(req): Body<PutPrice>,
) -> AppResult<Json<Plan>> {
    let currency = manage::parse_currency(&currency)?;
    Ok(Json(manage::set_price(&state.pool, id, currency, req.amount_minor, &writer.who()).await?.into()))
}

/// Remove the plan's price in a currency (customers paying in it see a price converted through the catalogue's
/// rates, or none).
#[utoipa::path(delete, path = "/api/v1/plans/{id}/prices/{currency}", tag = "plans",
    params(("id" = i64, Path, description = "The plan's id"), ("currency" = Currency, Path, description = "USD, EUR or IRR")),
    responses((status = 200, body = Plan), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn delete_price(
    State(state): State<AppState>,
    writer: Writer,
    PathOf((id, currency)): PathOf<(i64, String)>,
) -> AppResult<Json<Plan>> {
    let currency = manage::parse_currency(&currency)?;
    Ok(Json(manage::delete_price(&state.pool, id, currency, &writer.who()).await?.into()))
}
