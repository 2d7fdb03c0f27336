//! `GET /api/v1/stats`: the shop's figures over the last `days` days (see `services::stats`).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Caller, Params};
use crate::app::AppState;
use crate::domain::Currency;
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::stats::{self, Amount};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsQuery {
    /// The window in UTC days, today included: 1–365 (default 30).
    pub days: Option<i64>,
}

/// Money in one currency.
#[derive(Debug, Serialize, ToSchema)]
pub struct Revenue {
    pub currency: Currency,
    /// Integer minor units.
    pub amount_minor: i64,
    /// Exact, in major units.
    pub amount: String,
}

impl From<Amount> for Revenue {
    fn from(a: Amount) -> Self {
        Revenue { currency: a.currency, amount_minor: a.amount_minor, amount: a.amount }
    }
}

/// One UTC day.
#[derive(Debug, Serialize, ToSchema)]
pub struct DayStats {
    pub date: NaiveDate,
    /// Payments accepted, auto-accepted or succeeded that day (by decision time), per currency.
    pub revenue: Vec<Revenue>,
    /// Orders paid that day.
    pub orders: i64,
    /// Customers who first came that day.
    pub new_customers: i64,
}

/// Trial → paid conversion of the customers who took a trial in the window.
#[derive(Debug, Serialize, ToSchema)]
pub struct Conversion {
    pub trials: i64,
    /// Of them, those who paid for an order after their trial.
    pub paid: i64,
    /// `paid / trials`, four decimals; null without trials.
    pub rate: Option<String>,
}

/// A server's load and traffic.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerStats {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub enabled: bool,
    /// Clients (devices) it can hold.
    pub capacity: i32,
    /// Clients wanted on it now.
    pub active_clients: i64,
    /// Up + down bytes its clients moved (accumulated).
    pub traffic_bytes: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StatsResponse {
    pub days: i64,
    /// 00:00 UTC of the first day.
    pub since: DateTime<Utc>,
    pub daily: Vec<DayStats>,
    pub revenue_total: Vec<Revenue>,
    pub orders_total: i64,
    pub new_customers_total: i64,
    pub trial_conversion: Conversion,
    pub active_subscriptions: i64,
    pub pending_reviews: i64,
    pub servers: Vec<ServerStats>,
}

/// Revenue, orders and new customers per day, trial conversion, what stands now, and each server's load.
#[utoipa::path(get, path = "/api/v1/stats", tag = "stats", params(StatsQuery),
    responses((status = 200, body = StatsResponse), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn get_stats(
    State(state): State<AppState>,
    _caller: Caller,
    Params(q): Params<StatsQuery>,
) -> AppResult<Json<StatsResponse>> {
    let s = stats::compute(&state.pool, q.days.unwrap_or(30)).await?;
    let trial_conversion = Conversion { trials: s.trials, paid: s.trials_converted, rate: s.conversion() };
    Ok(Json(StatsResponse {
        days: s.days,
        since: s.since,
        daily: s
            .daily
            .into_iter()
            .map(|d| DayStats {
                date: d.date,
                revenue: d.revenue.into_iter().map(Revenue::from).collect(),
                orders: d.orders_paid,
                new_customers: d.new_customers,
            })
            .collect(),
        revenue_total: s.revenue_total.into_iter().map(Revenue::from).collect(),
        orders_total: s.orders_paid_total,
        new_customers_total: s.new_customers_total,
        trial_conversion,
        active_subscriptions: s.active_subscriptions,
        pending_reviews: s.pending_reviews,
        servers: s
            .servers
            .into_iter()
            .map(|v| ServerStats {
                id: v.id,
                name: v.name,
                location: v.location_code,
                enabled: v.enabled,
                capacity: v.capacity,
                active_clients: v.active_clients,
                traffic_bytes: v.traffic_bytes,
            })
            .collect(),
    }))
}
