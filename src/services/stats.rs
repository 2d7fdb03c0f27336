//! The shop's figures for operators (`GET /api/v1/stats`): per UTC day over the last `days` days (today
//! included) the money taken per currency, orders paid and new customers; trial → paid conversion of the
//! customers who took their trial in that window; what stands now (active subscriptions, reviews waiting); and
//! each server's load and traffic.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use sqlx::PgPool;

use crate::db::{self, payments::ServerLoad};
use crate::domain::server::Health;
use crate::domain::{Currency, Money};
use crate::error::{AppError, AppResult};

/// The longest window.
pub const MAX_DAYS: i64 = 365;

/// Money in one currency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount {
    pub currency: Currency,
    pub amount_minor: i64,
    /// In major units, exact (`"12.50"`).
    pub amount: String,
}

impl Amount {
    fn new(currency: Currency, amount_minor: i64) -> Amount {
        let amount = Money::from_minor(amount_minor, currency)
            .map(|m| m.to_major().to_string())
            .unwrap_or_else(|_| amount_minor.to_string());
        Amount { currency, amount_minor, amount }
    }
}

/// One UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    pub date: NaiveDate,
    pub revenue: Vec<Amount>,
    pub orders_paid: i64,
    pub new_customers: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub days: i64,
    /// The window starts at 00:00 UTC of the first day.
    pub since: DateTime<Utc>,
    pub daily: Vec<Day>,
    pub revenue_total: Vec<Amount>,
    pub orders_paid_total: i64,
    pub new_customers_total: i64,
    /// Customers who took a trial in the window, and those of them who paid for an order after it.
    pub trials: i64,
    pub trials_converted: i64,
    pub active_subscriptions: i64,
    pub pending_reviews: i64,
    pub servers: Vec<ServerLoad>,
}

impl Stats {
    /// `trials_converted / trials` with four decimals (`"0.5000"`); `None` without trials.
    pub fn conversion(&self) -> Option<String> {
        (self.trials > 0).then(|| {
            let rate = rust_decimal::Decimal::from(self.trials_converted) / rust_decimal::Decimal::from(self.trials);
            format!("{:.4}", rate.round_dp(4))
        })
    }

    /// The currencies money came in during the window (one revenue series each).
    pub fn currencies(&self) -> Vec<Currency> {
        self.revenue_total.iter().map(|a| a.currency).collect()
    }

    /// Money taken in `currency` on each day of the window, oldest first (minor units, 0 for none).
    pub fn revenue_series(&self, currency: Currency) -> Vec<(NaiveDate, i64)> {
        self.daily
            .iter()
            .map(|d| {
                let minor = d.revenue.iter().filter(|a| a.currency == currency).map(|a| a.amount_minor).sum();
                (d.date, minor)
            })
            .collect()
    }

    /// How many servers answered the last time we talked to them (`ok`), did not (down, or a host key that is
    /// not the pinned one), and were never reached yet: `(up, down, unknown)`.
    pub fn nodes_health(&self) -> (i64, i64, i64) {
        let count = |h: Health| self.servers.iter().filter(|s| s.health == h).count() as i64;
        let (up, unknown) = (count(Health::Ok), count(Health::Unknown));
        (up, self.servers.len() as i64 - up - unknown, unknown)
    }
}

/// The figures of the last `days` days (1–365).
pub async fn compute(pool: &PgPool, days: i64) -> AppResult<Stats> {
    if !(1..=MAX_DAYS).contains(&days) {
        return Err(AppError::field("days", format!("between 1 and {MAX_DAYS}")));
    }
    let mut conn = pool.acquire().await?;
    let now = db::now(&mut *conn).await?;
    let first = now.date_naive() - Duration::days(days - 1);
    let since = first.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(now);
    let mut daily: Vec<Day> = (0..days)
        .map(|i| Day { date: first + Duration::days(i), revenue: Vec::new(), orders_paid: 0, new_customers: 0 })
        .collect();
    let index = |day: NaiveDate| usize::try_from((day - first).num_days()).ok();
    let mut totals: BTreeMap<Currency, i64> = BTreeMap::new();
    for r in db::payments::revenue_per_day(&mut *conn, since).await? {
        if let Some(d) = index(r.day).and_then(|i| daily.get_mut(i)) {
            d.revenue.push(Amount::new(r.currency, r.amount_minor));
            *totals.entry(r.currency).or_default() += r.amount_minor;
        }
    }
    for r in db::payments::paid_orders_per_day(&mut *conn, since).await? {
        if let Some(d) = index(r.day).and_then(|i| daily.get_mut(i)) {
            d.orders_paid = r.n;
        }
    }
    for r in db::payments::new_customers_per_day(&mut *conn, since).await? {
        if let Some(d) = index(r.day).and_then(|i| daily.get_mut(i)) {
            d.new_customers = r.n;
        }
    }
    let (trials, trials_converted) = db::payments::trial_conversion(&mut *conn, since).await?;
    let (active_subscriptions, pending_reviews) = db::payments::now_counts(&mut *conn).await?;
    let servers = db::payments::server_load(&mut *conn).await?;
    Ok(Stats {
        days,
        since,
        revenue_total: totals.into_iter().map(|(c, a)| Amount::new(c, a)).collect(),
        orders_paid_total: daily.iter().map(|d| d.orders_paid).sum(),
        new_customers_total: daily.iter().map(|d| d.new_customers).sum(),
        daily,
        trials,
        trials_converted,
        active_subscriptions,
        pending_reviews,
        servers,
    })
}
