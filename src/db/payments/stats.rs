//! The admin statistics' figures: money taken, orders paid and new customers per UTC day, trial conversion,
//! and each server's load and traffic. Read-only aggregates over `payments`, `orders`, `users`, `servers`,
//! `clients` and `traffic`.

use chrono::{DateTime, NaiveDate, Utc};
use sqlx::PgExecutor;

use crate::domain::Currency;
use crate::domain::server::Health;

/// Money taken on one UTC day in one currency (minor units): payments accepted, auto-accepted or succeeded,
/// by the day they were decided (refunded ones no longer count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRevenue {
    pub day: NaiveDate,
    pub currency: Currency,
    pub amount_minor: i64,
}

pub async fn revenue_per_day(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> sqlx::Result<Vec<DayRevenue>> {
    sqlx::query_as!(
        DayRevenue,
        r#"SELECT (decided_at AT TIME ZONE 'UTC')::date AS "day!", currency AS "currency: Currency",
                  sum(amount_minor)::int8 AS "amount_minor!"
             FROM payments
            WHERE status IN ('accepted', 'auto_accepted', 'succeeded') AND decided_at >= $1
            GROUP BY 1, 2 ORDER BY 1, 2"#,
        since
    )
    .fetch_all(db)
    .await
}

/// A count per UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayCount {
    pub day: NaiveDate,
    pub n: i64,
}

/// Orders paid per day (by when they were paid).
pub async fn paid_orders_per_day(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> sqlx::Result<Vec<DayCount>> {
    sqlx::query_as!(
        DayCount,
        r#"SELECT (paid_at AT TIME ZONE 'UTC')::date AS "day!", count(*) AS "n!"
             FROM orders WHERE paid_at >= $1 GROUP BY 1 ORDER BY 1"#,
        since
    )
    .fetch_all(db)
    .await
}

/// Customers who first came per day.
pub async fn new_customers_per_day(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> sqlx::Result<Vec<DayCount>> {
    sqlx::query_as!(
        DayCount,
        r#"SELECT (created_at AT TIME ZONE 'UTC')::date AS "day!", count(*) AS "n!"
             FROM users WHERE created_at >= $1 GROUP BY 1 ORDER BY 1"#,
        since
    )
    .fetch_all(db)
    .await
}

/// Customers who took their trial since `since`, and how many of them paid for an order after it.
pub async fn trial_conversion(db: impl PgExecutor<'_>, since: DateTime<Utc>) -> sqlx::Result<(i64, i64)> {
    let r = sqlx::query!(
        r#"SELECT count(*) AS "trials!",
                  count(*) FILTER (WHERE EXISTS (SELECT 1 FROM orders o
                                                  WHERE o.user_id = u.id AND o.paid_at > u.trial_used_at)) AS "paid!"
             FROM users u WHERE u.trial_used_at >= $1"#,
        since
    )
    .fetch_one(db)
    .await?;
    Ok((r.trials, r.paid))
}

/// A server's load (clients wanted on it, as placement counts them) against its capacity, and the traffic its
/// clients moved (accumulated up + down bytes, over every client it ever had).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLoad {
    pub id: i64,
    pub name: String,
    pub location_code: String,
    pub enabled: bool,
    pub capacity: i32,
    pub active_clients: i64,
    pub traffic_bytes: i64,
    /// How it answered the last time we talked to it.
    pub health: Health,
    pub last_seen_at: Option<DateTime<Utc>>,
}

pub async fn server_load(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ServerLoad>> {
    sqlx::query_as!(
        ServerLoad,
        r#"SELECT s.id, s.name, s.location_code, s.enabled, s.capacity,
                  (SELECT count(*) FROM clients c WHERE c.server_id = s.id AND c.desired = 'present') AS "active_clients!",
                  (SELECT COALESCE(sum(t.up_bytes + t.down_bytes), 0)::int8
                     FROM clients c JOIN traffic t ON t.client_id = c.id WHERE c.server_id = s.id) AS "traffic_bytes!",
                  s.health AS "health: Health", s.last_seen_at
             FROM servers s ORDER BY s.id"#
    )
    .fetch_all(db)
    .await
}
