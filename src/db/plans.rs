//! The `plans` and `plan_prices` tables.

use sqlx::{PgConnection, PgExecutor};

use crate::domain::{Currency, PlanSpec};

/// A plan's listing state, as the catalogue seeder compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanListing {
    pub id: i64,
    pub code: String,
    pub active: bool,
    pub sort_order: i32,
}

/// A plan with its prices, for listings.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    pub id: i64,
    pub code: String,
    pub location_code: String,
    pub duration_days: i32,
    pub seats: i32,
    pub data_cap_bytes: Option<i64>,
    pub is_trial: bool,
    pub active: bool,
    pub prices: Vec<(Currency, i64)>,
}

/// Every catalogue (non-trial) plan.
pub async fn catalog_listings(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<PlanListing>> {
    sqlx::query_as!(PlanListing, "SELECT id, code, active, sort_order FROM plans WHERE NOT is_trial ORDER BY id")
        .fetch_all(db)
        .await
}

/// Whether no catalogue plan exists yet.
pub async fn catalog_is_empty(db: impl PgExecutor<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar!(r#"SELECT NOT EXISTS (SELECT 1 FROM plans WHERE NOT is_trial) AS "empty!""#).fetch_one(db).await
}

/// Inserts new plans in one statement; returns `(id, code)` of each.
pub async fn insert_many(conn: &mut PgConnection, plans: &[(PlanSpec, i32)]) -> sqlx::Result<Vec<(i64, String)>> {
    let codes: Vec<String> = plans.iter().map(|(s, _)| s.code()).collect();
    let locations: Vec<String> = plans.iter().map(|(s, _)| s.location_code.clone()).collect();
    let days: Vec<i32> = plans.iter().map(|(s, _)| s.duration_days).collect();
    let seats: Vec<i32> = plans.iter().map(|(s, _)| s.seats).collect();
    let caps: Vec<Option<i64>> = plans.iter().map(|(s, _)| s.data_cap.to_db()).collect();
    let trials: Vec<bool> = plans.iter().map(|(s, _)| s.is_trial).collect();
    let sorts: Vec<i32> = plans.iter().map(|(_, sort)| *sort).collect();
    let rows = sqlx::query!(
        r#"INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes, is_trial, sort_order)
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::int4[], $4::int4[], $5::int8[], $6::bool[], $7::int4[])
           RETURNING id, code"#,
        &codes,
        &locations,
        &days,
        &seats,
        &caps as &[Option<i64>],
        &trials,
        &sorts,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.id, r.code)).collect())
}

/// Sets the listing state of plans (reactivation, new sort order).
pub async fn set_listing(conn: &mut PgConnection, ids: &[i64], active: bool, sorts: &[i32]) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        r#"UPDATE plans p SET active = $2, sort_order = u.sort_order, updated_at = now()
           FROM UNNEST($1::int8[], $3::int4[]) AS u(id, sort_order) WHERE p.id = u.id"#,
        ids,
        active,
        sorts,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Every price row: `(plan_id, currency, amount_minor)`.
pub async fn all_prices(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(i64, Currency, i64)>> {
    let rows = sqlx::query!(r#"SELECT plan_id, currency AS "currency: Currency", amount_minor FROM plan_prices"#)
        .fetch_all(db)
        .await?;
    Ok(rows.into_iter().map(|r| (r.plan_id, r.currency, r.amount_minor)).collect())
}

/// Inserts or replaces prices.
pub async fn upsert_prices(conn: &mut PgConnection, prices: &[(i64, Currency, i64)]) -> sqlx::Result<u64> {
    let ids: Vec<i64> = prices.iter().map(|p| p.0).collect();
    let currencies: Vec<String> = prices.iter().map(|p| p.1.as_str().to_owned()).collect();
    let amounts: Vec<i64> = prices.iter().map(|p| p.2).collect();
    let done = sqlx::query!(
        r#"INSERT INTO plan_prices (plan_id, currency, amount_minor)
           SELECT * FROM UNNEST($1::int8[], $2::text[], $3::int8[])
           ON CONFLICT (plan_id, currency) DO UPDATE
              SET amount_minor = EXCLUDED.amount_minor, updated_at = now()"#,
        &ids,
        &currencies,
        &amounts,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Deletes prices (a currency the catalogue no longer sells in).
pub async fn delete_prices(conn: &mut PgConnection, prices: &[(i64, Currency)]) -> sqlx::Result<u64> {
    let ids: Vec<i64> = prices.iter().map(|p| p.0).collect();
    let currencies: Vec<String> = prices.iter().map(|p| p.1.as_str().to_owned()).collect();
    let done = sqlx::query!(
        r#"DELETE FROM plan_prices p USING UNNEST($1::int8[], $2::text[]) AS d(plan_id, currency)
           WHERE p.plan_id = d.plan_id AND p.currency = d.currency"#,
        &ids,
        &currencies,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Plans with their prices, in catalogue order; `active_only` hides retired plans.
pub async fn list(db: impl PgExecutor<'_>, active_only: bool) -> sqlx::Result<Vec<PlanRow>> {
    let rows = sqlx::query!(
        r#"SELECT p.id, p.code, p.location_code, p.duration_days, p.seats, p.data_cap_bytes, p.is_trial, p.active,
                  COALESCE(array_agg(pp.currency ORDER BY pp.currency) FILTER (WHERE pp.currency IS NOT NULL), '{}')
                      AS "currencies!: Vec<String>",
                  COALESCE(array_agg(pp.amount_minor ORDER BY pp.currency) FILTER (WHERE pp.currency IS NOT NULL), '{}')
                      AS "amounts!: Vec<i64>"
             FROM plans p
             JOIN locations l ON l.code = p.location_code
             LEFT JOIN plan_prices pp ON pp.plan_id = p.id
            WHERE (p.active OR NOT $1) AND NOT p.is_trial
            GROUP BY p.id, l.sort_order
            ORDER BY l.sort_order, p.location_code, p.sort_order, p.id"#,
        active_only,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| PlanRow {
            id: r.id,
            code: r.code,
            location_code: r.location_code,
            duration_days: r.duration_days,
            seats: r.seats,
            data_cap_bytes: r.data_cap_bytes,
            is_trial: r.is_trial,
            active: r.active,
            prices: r.currencies.iter().zip(r.amounts).filter_map(|(c, a)| c.parse().ok().map(|c| (c, a))).collect(),
        })
        .collect())
}

/// The trial plan of this shape in a location (made on first use).
pub async fn upsert_trial(conn: &mut PgConnection, spec: &PlanSpec) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes, is_trial)
           VALUES ($1, $2, $3, $4, $5, TRUE)
           ON CONFLICT (location_code, duration_days, seats, data_cap_bytes, is_trial) DO UPDATE SET active = TRUE
           RETURNING id"#,
        spec.code(),
        spec.location_code,
        spec.duration_days,
        spec.seats,
        spec.data_cap.to_db(),
    )
    .fetch_one(conn)
    .await
}
