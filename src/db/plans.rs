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
    /// Made or changed through the admin API (`source = 'api'`): the seeder leaves it alone.
    pub managed: bool,
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
    sqlx::query_as!(
        PlanListing,
        r#"SELECT id, code, active, sort_order, source = 'api' AS "managed!" FROM plans WHERE NOT is_trial ORDER BY id"#
    )
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

/// A plan as the admin API shows it, with its prices.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct PlanDetail {
    pub id: i64,
    pub code: String,
    pub location_code: String,
    pub duration_days: i32,
    pub seats: i32,
    pub data_cap_bytes: Option<i64>,
    pub is_trial: bool,
    pub active: bool,
    pub sort_order: i32,
    /// `catalog` (seeded from config/plans.toml) or `api`.
    pub source: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    pub currencies: Vec<String>,
    pub amounts: Vec<i64>,
}

impl PlanDetail {
    pub fn prices(&self) -> Vec<(Currency, i64)> {
        self.currencies.iter().zip(&self.amounts).filter_map(|(c, a)| c.parse().ok().map(|c| (c, *a))).collect()
    }
}

const PLAN_DETAIL: &str =
    "SELECT p.id, p.code, p.location_code, p.duration_days, p.seats, p.data_cap_bytes, p.is_trial,
        p.active, p.sort_order, p.source, p.created_at, p.updated_at,
        COALESCE((SELECT array_agg(pp.currency ORDER BY pp.currency) FROM plan_prices pp WHERE pp.plan_id = p.id),
                 '{}') AS currencies,
        COALESCE((SELECT array_agg(pp.amount_minor ORDER BY pp.currency) FROM plan_prices pp WHERE pp.plan_id = p.id),
                 '{}') AS amounts
   FROM plans p WHERE TRUE";

/// How to find plans: every given filter must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanFilter {
    pub location: Option<String>,
    pub active: Option<bool>,
    pub trial: Option<bool>,
}

/// One page of plans by id.
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &PlanFilter,
    page: &crate::domain::page::PageRequest,
) -> sqlx::Result<Vec<PlanDetail>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(PLAN_DETAIL);
    if let Some(location) = &filter.location {
        q.push(" AND p.location_code = ").push_bind(location.clone());
    }
    if let Some(active) = filter.active {
        q.push(" AND p.active = ").push_bind(active);
    }
    if let Some(trial) = filter.trial {
        q.push(" AND p.is_trial = ").push_bind(trial);
    }
    if let Some(after) = page.after {
        q.push(" AND p.id ").push(page.op()).push(" ").push_bind(after.id);
    }
    q.push(" ORDER BY p.id ").push(page.dir()).push(" LIMIT ").push_bind(page.fetch());
    q.build_query_as().fetch_all(db).await
}

pub async fn detail(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<PlanDetail>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(PLAN_DETAIL);
    q.push(" AND p.id = ").push_bind(id);
    q.build_query_as().fetch_optional(db).await
}

/// The plan's shape and listing, row-locked for the caller's transaction.
pub async fn lock(conn: &mut PgConnection, id: i64) -> sqlx::Result<Option<PlanListing>> {
    sqlx::query_as!(
        PlanListing,
        r#"SELECT id, code, active, sort_order, source = 'api' AS "managed!" FROM plans WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// Inserts a plan made through the admin API (`source = 'api'`); `None` when one of that shape exists.
pub async fn insert_api(conn: &mut PgConnection, spec: &PlanSpec, sort_order: i32) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes, is_trial, sort_order, source)
           VALUES ($1, $2, $3, $4, $5, $6, $7, 'api') ON CONFLICT DO NOTHING RETURNING id"#,
        spec.code(),
        spec.location_code,
        spec.duration_days,
        spec.seats,
        spec.data_cap.to_db(),
        spec.is_trial,
        sort_order,
    )
    .fetch_optional(conn)
    .await
}

/// Whether any order or subscription refers to the plan (its shape is then what was sold).
pub async fn is_sold(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM orders WHERE plan_id = $1)
               OR EXISTS (SELECT 1 FROM subscriptions WHERE plan_id = $1) AS "sold!""#,
        id
    )
    .fetch_one(db)
    .await
}

/// Sets a plan's shape, listing and sort order, and makes it the API's; false when another plan has that shape.
pub async fn update_api(
    conn: &mut PgConnection,
    id: i64,
    spec: &PlanSpec,
    active: bool,
    sort_order: i32,
) -> sqlx::Result<bool> {
    let taken = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM plans WHERE id <> $1 AND (code = $2 OR (location_code, duration_days, seats,
                  data_cap_bytes, is_trial) IS NOT DISTINCT FROM ($3, $4, $5, $6, $7))) AS "taken!""#,
        id,
        spec.code(),
        spec.location_code,
        spec.duration_days,
        spec.seats,
        spec.data_cap.to_db(),
        spec.is_trial,
    )
    .fetch_one(&mut *conn)
    .await?;
    if taken {
        return Ok(false);
    }
    sqlx::query!(
        r#"UPDATE plans SET code = $2, location_code = $3, duration_days = $4, seats = $5, data_cap_bytes = $6,
                  active = $7, sort_order = $8, source = 'api', updated_at = now()
            WHERE id = $1"#,
        id,
        spec.code(),
        spec.location_code,
        spec.duration_days,
        spec.seats,
        spec.data_cap.to_db(),
        active,
        sort_order,
    )
    .execute(conn)
    .await?;
    Ok(true)
}

/// Makes a plan the API's (the seeder leaves it alone from now on).
pub async fn take_over(conn: &mut PgConnection, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE plans SET source = 'api', updated_at = now() WHERE id = $1", id).execute(conn).await?;
    Ok(())
}

/// Sets one price of a plan.
pub async fn set_price(conn: &mut PgConnection, id: i64, currency: Currency, amount_minor: i64) -> sqlx::Result<()> {
    upsert_prices(conn, &[(id, currency, amount_minor)]).await?;
    Ok(())
}

/// Removes one price of a plan; false when it had none in that currency.
pub async fn delete_price(conn: &mut PgConnection, id: i64, currency: Currency) -> sqlx::Result<bool> {
    Ok(delete_prices(conn, &[(id, currency)]).await? == 1)
}
