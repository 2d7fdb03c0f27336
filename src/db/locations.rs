//! The `locations` table: where servers stand and plans are sold.

use sqlx::{PgConnection, PgExecutor};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct LocationRow {
    pub code: String,
    pub flag: String,
    pub labels: serde_json::Value,
    pub sort_order: i32,
    pub active: bool,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Inserted,
    Updated,
    Unchanged,
}

/// Inserts a location or brings it up to date (and active); unchanged rows are not touched.
pub async fn upsert(conn: &mut PgConnection, row: &LocationRow) -> sqlx::Result<Upserted> {
    let inserted = sqlx::query_scalar!(
        r#"INSERT INTO locations (code, flag, labels, sort_order, active)
           VALUES ($1, $2, $3, $4, TRUE)
           ON CONFLICT (code) DO UPDATE
              SET flag = EXCLUDED.flag, labels = EXCLUDED.labels, sort_order = EXCLUDED.sort_order,
                  active = TRUE, updated_at = now()
            WHERE (locations.flag, locations.labels, locations.sort_order, locations.active)
                  IS DISTINCT FROM (EXCLUDED.flag, EXCLUDED.labels, EXCLUDED.sort_order, TRUE)
           RETURNING (xmax = 0) AS "inserted!""#,
        row.code,
        row.flag,
        row.labels,
        row.sort_order,
    )
    .fetch_optional(conn)
    .await?;
    Ok(match inserted {
        Some(true) => Upserted::Inserted,
        Some(false) => Upserted::Updated,
        None => Upserted::Unchanged,
    })
}

/// Deactivates every active location not named; returns how many.
pub async fn retire_others(conn: &mut PgConnection, keep: &[String]) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "UPDATE locations SET active = FALSE, updated_at = now() WHERE active AND NOT (code = ANY($1))",
        keep,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<LocationRow>> {
    sqlx::query_as!(
        LocationRow,
        "SELECT code, flag, labels, sort_order, active FROM locations ORDER BY sort_order, code"
    )
    .fetch_all(db)
    .await
}

pub async fn find(db: impl PgExecutor<'_>, code: &str) -> sqlx::Result<Option<LocationRow>> {
    sqlx::query_as!(LocationRow, "SELECT code, flag, labels, sort_order, active FROM locations WHERE code = $1", code)
        .fetch_optional(db)
        .await
}

/// The most clients one node of the location can still take, over its enabled nodes not known to be down or
/// refusing our host key (0 when there is none): whether a new subscription there can be placed now.
pub async fn room_on_one_node(db: impl PgExecutor<'_>, code: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"SELECT COALESCE(max(s.capacity - (SELECT count(*) FROM clients c
                                              WHERE c.server_id = s.id AND c.desired = 'present')), 0)::int8 AS "room!"
             FROM servers s
            WHERE s.location_code = $1 AND s.enabled AND s.health IN ('ok', 'unknown')"#,
        code
    )
    .fetch_one(db)
    .await
}
