//! Plans managed through the admin API: made, reshaped, listed and delisted, priced per currency. A plan the API
//! made or changed becomes the API's (`source = 'api'`): `vpnshop catalog seed` leaves it as the operator set it
//! and never relists, reprices or retires it. Orders keep the price snapshot they were submitted at, so nothing
//! here changes what was sold.

use sqlx::PgPool;

use crate::db::{self, plans::PlanDetail, plans::PlanFilter};
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::{Currency, DataCap, PlanSpec};
use crate::error::{AppError, AppResult, violated_constraint};
use crate::services::audit::Who;

/// A new plan as the API takes it (amounts in minor units: cents, rials).
#[derive(Debug, Clone)]
pub struct NewPlan {
    pub location: String,
    pub duration_days: i32,
    pub seats: i32,
    /// `None`: unlimited.
    pub data_cap_bytes: Option<i64>,
    pub sort_order: i32,
    pub active: bool,
    pub prices: Vec<(Currency, i64)>,
}

/// The editable fields of a plan; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct PlanChange {
    pub location: Option<String>,
    pub duration_days: Option<i32>,
    pub seats: Option<i32>,
    /// `Some(None)`: unlimited.
    pub data_cap_bytes: Option<Option<i64>>,
    pub sort_order: Option<i32>,
    pub active: Option<bool>,
}

impl PlanChange {
    fn reshapes(&self) -> bool {
        self.location.is_some() || self.duration_days.is_some() || self.seats.is_some() || self.data_cap_bytes.is_some()
    }
}

fn check_shape(duration_days: i32, seats: i32, data_cap_bytes: Option<i64>) -> AppResult<DataCap> {
    if !(1..=3660).contains(&duration_days) {
        return Err(AppError::field("duration_days", "between 1 and 3660"));
    }
    if !(1..=100).contains(&seats) {
        return Err(AppError::field("seats", "between 1 and 100"));
    }
    // 1 PiB: far beyond any plan, and far from where adding top-ups could overflow
    if data_cap_bytes.is_some_and(|b| b > 1 << 50) {
        return Err(AppError::field("data_cap_bytes", "at most 1 PiB (1125899906842624 bytes)"));
    }
    DataCap::from_db(data_cap_bytes)
        .map_err(|_| AppError::field("data_cap_bytes", "a positive number of bytes, or null"))
}

async fn check_location(pool: &PgPool, code: &str) -> AppResult<()> {
    if code.len() > 16 || db::locations::find(pool, code).await?.is_none() {
        return Err(AppError::field("location", format!("unknown location {code:?}")));
    }
    Ok(())
}

/// A price's amount: positive minor units.
pub fn check_amount(field: &str, amount_minor: i64) -> AppResult<i64> {
    if amount_minor <= 0 {
        return Err(AppError::field(field, "a positive amount in minor units (cents; rials for IRR)"));
    }
    Ok(amount_minor)
}

/// A currency named in a path.
pub fn parse_currency(text: &str) -> AppResult<Currency> {
    text.to_ascii_uppercase().parse().map_err(|_| {
        let known: Vec<&str> = Currency::ALL.iter().map(|c| c.as_str()).collect();
        AppError::field("currency", format!("unknown currency (known: {})", known.join(", ")))
    })
}

fn duplicate_shape() -> AppError {
    AppError::conflict("a plan of this location, duration, seats and data cap already exists")
}

/// One page of plans (by id) matching `filter`.
pub async fn page(
    pool: &PgPool,
    filter: &PlanFilter,
    page: &PageRequest,
) -> AppResult<(Vec<PlanDetail>, Option<Cursor>)> {
    let rows = db::plans::page(pool, filter, page).await?;
    Ok(page.cut(rows, |p| Cursor { key: p.id, id: p.id }))
}

pub async fn detail(pool: &PgPool, id: i64) -> AppResult<PlanDetail> {
    db::plans::detail(pool, id).await?.ok_or(AppError::NotFound("plan"))
}

/// Makes a (non-trial) plan with its prices.
pub async fn create(pool: &PgPool, plan: &NewPlan, who: &Who) -> AppResult<PlanDetail> {
    let cap = check_shape(plan.duration_days, plan.seats, plan.data_cap_bytes)?;
    if plan.prices.is_empty() {
        return Err(AppError::field("prices", "at least one price"));
    }
    for (i, (currency, amount)) in plan.prices.iter().enumerate() {
        check_amount(&format!("prices[{i}].amount_minor"), *amount)?;
        if plan.prices[..i].iter().any(|(c, _)| c == currency) {
            return Err(AppError::field(format!("prices[{i}].currency"), format!("{currency} is priced twice")));
        }
    }
    check_location(pool, &plan.location).await?;
    let spec = PlanSpec {
        location_code: plan.location.clone(),
        duration_days: plan.duration_days,
        seats: plan.seats,
        data_cap: cap,
        is_trial: false,
    };
    let mut tx = pool.begin().await?;
    let id = db::plans::insert_api(&mut tx, &spec, plan.sort_order).await?.ok_or_else(duplicate_shape)?;
    if !plan.active {
        db::plans::set_listing(&mut tx, &[id], false, &[plan.sort_order]).await?;
    }
    let prices: Vec<(i64, Currency, i64)> = plan.prices.iter().map(|(c, a)| (id, *c, *a)).collect();
    db::plans::upsert_prices(&mut tx, &prices).await?;
    let detail = serde_json::json!({
        "code": spec.code(),
        "active": plan.active,
        "prices": plan.prices.iter().map(|(c, a)| serde_json::json!({ "currency": c, "amount_minor": a })).collect::<Vec<_>>(),
    });
    who.record(&mut tx, "plan.create", "plan", id, detail).await?;
    let row = db::plans::detail(&mut *tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    tx.commit().await?;
    Ok(row)
}

/// Changes a plan's editable fields. Its shape (location, duration, seats, data cap) only changes while nothing
/// was ordered of it: what was sold stays what it was (retire it and make a new one instead).
pub async fn update(pool: &PgPool, id: i64, change: &PlanChange, who: &Who) -> AppResult<PlanDetail> {
    if let Some(location) = &change.location {
        check_location(pool, location).await?;
    }
    let mut tx = pool.begin().await?;
    db::plans::lock(&mut tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    // the new shape from the row as it is under the lock, so concurrent edits of other fields are kept
    let current = db::plans::detail(&mut *tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    let location = change.location.clone().unwrap_or_else(|| current.location_code.clone());
    let duration_days = change.duration_days.unwrap_or(current.duration_days);
    let seats = change.seats.unwrap_or(current.seats);
    let data_cap_bytes = change.data_cap_bytes.unwrap_or(current.data_cap_bytes);
    let cap = check_shape(duration_days, seats, data_cap_bytes)?;
    let spec = PlanSpec { location_code: location, duration_days, seats, data_cap: cap, is_trial: current.is_trial };
    let reshaped = change.reshapes()
        && (spec.location_code != current.location_code
            || spec.duration_days != current.duration_days
            || spec.seats != current.seats
            || spec.data_cap.to_db() != current.data_cap_bytes);
    if reshaped && db::plans::is_sold(&mut *tx, id).await? {
        return Err(AppError::conflict(
            "this plan has orders: its location, duration, seats and data cap stay as sold (deactivate it and create \
             a new plan instead)",
        ));
    }
    let active = change.active.unwrap_or(current.active);
    let sort_order = change.sort_order.unwrap_or(current.sort_order);
    match db::plans::update_api(&mut tx, id, &spec, active, sort_order).await {
        Ok(true) => {}
        Ok(false) => return Err(duplicate_shape()),
        Err(e) if violated_constraint(&e).is_some() => return Err(duplicate_shape()),
        Err(e) => return Err(e.into()),
    }
    let detail = serde_json::json!({
        "before": { "code": current.code, "active": current.active, "sort_order": current.sort_order },
        "after": { "code": spec.code(), "active": active, "sort_order": sort_order },
    });
    who.record(&mut tx, "plan.update", "plan", id, detail).await?;
    let row = db::plans::detail(&mut *tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    tx.commit().await?;
    Ok(row)
}

/// Puts a plan on sale (or takes it off); the same state again changes nothing and records nothing.
pub async fn set_active(pool: &PgPool, id: i64, active: bool, who: &Who) -> AppResult<PlanDetail> {
    let mut tx = pool.begin().await?;
    let plan = db::plans::lock(&mut tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    if plan.active != active || !plan.managed {
        db::plans::set_listing(&mut tx, &[id], active, &[plan.sort_order]).await?;
        db::plans::take_over(&mut tx, id).await?;
        let action = if active { "plan.activate" } else { "plan.deactivate" };
        who.record(&mut tx, action, "plan", id, serde_json::json!({ "code": plan.code })).await?;
    }
    let row = db::plans::detail(&mut *tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    tx.commit().await?;
    Ok(row)
}

/// Sets the plan's price in `currency` (new orders only: submitted ones keep theirs).
pub async fn set_price(
    pool: &PgPool,
    id: i64,
    currency: Currency,
    amount_minor: i64,
    who: &Who,
) -> AppResult<PlanDetail> {
    check_amount("amount_minor", amount_minor)?;
    let mut tx = pool.begin().await?;
    let plan = db::plans::lock(&mut tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    let before =
        db::plans::detail(&mut *tx, id).await?.and_then(|p| p.prices().into_iter().find(|(c, _)| *c == currency));
    db::plans::set_price(&mut tx, id, currency, amount_minor).await?;
    db::plans::take_over(&mut tx, id).await?;
    let detail = serde_json::json!({
        "code": plan.code, "currency": currency, "before": before.map(|(_, a)| a), "amount_minor": amount_minor,
    });
    who.record(&mut tx, "plan.price_set", "plan", id, detail).await?;
    let row = db::plans::detail(&mut *tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    tx.commit().await?;
    Ok(row)
}

/// Removes the plan's price in `currency` (customers paying in it then see a converted price, or none).
pub async fn delete_price(pool: &PgPool, id: i64, currency: Currency, who: &Who) -> AppResult<PlanDetail> {
    let mut tx = pool.begin().await?;
    let plan = db::plans::lock(&mut tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    if !db::plans::delete_price(&mut tx, id, currency).await? {
        return Err(AppError::NotFound("price"));
    }
    db::plans::take_over(&mut tx, id).await?;
    let detail = serde_json::json!({ "code": plan.code, "currency": currency });
    who.record(&mut tx, "plan.price_delete", "plan", id, detail).await?;
    let row = db::plans::detail(&mut *tx, id).await?.ok_or(AppError::NotFound("plan"))?;
    tx.commit().await?;
    Ok(row)
}
