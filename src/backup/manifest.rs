//! A backup's manifest: what the dump must hold, taken in the same snapshot as the dump — every table's row
//! count and checksum, the applied migrations — plus the dump file's size and SHA-256. A restore checks the
//! file against it first and every restored table after.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, Row};

/// Written beside each dump as `<name>.manifest.json` (encrypted like the dump).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// This layout's version.
    pub format: u32,
    /// The vpnshop that made it.
    pub vpnshop_version: String,
    /// The snapshot's time (the database's clock).
    pub created_at: DateTime<Utc>,
    pub database: String,
    pub server_version: String,
    pub dump: DumpFile,
    /// Versions in `_sqlx_migrations` (applied successfully), ascending.
    pub migrations: Vec<i64>,
    pub tables: Vec<TableDigest>,
}

pub const FORMAT: u32 = 1;

/// The dump file as written (encrypted, when it is).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DumpFile {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
    pub encrypted: bool,
}

/// One table's content in a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TableDigest {
    /// `schema.table`
    pub table: String,
    pub rows: i64,
    /// The MD5 of the sums of every row's MD5 (its text form), so no sort is needed and row order is irrelevant.
    pub checksum: String,
}

/// Fixes every setting that changes how a value prints, so a digest is the same on any server and session.
/// Inside a transaction (`SET LOCAL`).
async fn fix_text_forms(conn: &mut PgConnection) -> sqlx::Result<()> {
    for set in [
        "SET LOCAL TimeZone = 'UTC'",
        "SET LOCAL DateStyle = 'ISO, YMD'",
        "SET LOCAL IntervalStyle = 'postgres'",
        "SET LOCAL extra_float_digits = 1",
        "SET LOCAL bytea_output = 'hex'",
    ] {
        sqlx::query(set).execute(&mut *conn).await?;
    }
    Ok(())
}

/// The user tables (every schema but PostgreSQL's own): display name → quoted name.
pub async fn tables(conn: &mut PgConnection) -> sqlx::Result<BTreeMap<String, String>> {
    let rows = sqlx::query(
        "SELECT n.nspname || '.' || c.relname AS name, format('%I.%I', n.nspname, c.relname) AS quoted
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p')
            AND n.nspname NOT IN ('pg_catalog', 'information_schema')
            AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| Ok((r.try_get("name")?, r.try_get("quoted")?))).collect()
}

/// Every table's digest, in the caller's transaction (its snapshot).
pub async fn digests(conn: &mut PgConnection) -> sqlx::Result<Vec<TableDigest>> {
    fix_text_forms(conn).await?;
    let mut out = Vec::new();
    for (table, quoted) in tables(conn).await? {
        // the alias is quoted and unusual, so no column of the table can shadow the whole-row reference
        let sql = format!(
            "SELECT count(*) AS rows,
                    md5(coalesce(sum(('x' || left(h, 16))::bit(64)::int8::numeric), 0)::text || ':' ||
                        coalesce(sum(('x' || right(h, 16))::bit(64)::int8::numeric), 0)::text) AS checksum
               FROM (SELECT md5(\"vpnshop row\"::text) AS h FROM {quoted} AS \"vpnshop row\") r"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
        out.push(TableDigest { table, rows: row.try_get("rows")?, checksum: row.try_get("checksum")? });
    }
    Ok(out)
}

/// The applied migrations, when the database has sqlx's table.
pub async fn migrations(conn: &mut PgConnection) -> sqlx::Result<Vec<i64>> {
    let exists: bool =
        sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL").fetch_one(&mut *conn).await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM public._sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await
}

/// How a restored table differs from the manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Missing { table: String },
    Rows { table: String, expected: i64, found: i64 },
    Content { table: String, rows: i64 },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mismatch::Missing { table } => write!(f, "table {table} is missing"),
            Mismatch::Rows { table, expected, found } => {
                write!(f, "table {table} has {found} rows, the manifest says {expected}")
            }
            Mismatch::Content { table, rows } => {
                write!(f, "table {table} has its {rows} rows but their content differs (checksum)")
            }
        }
    }
}

/// Every table of the manifest compared with what was found; tables found beyond the manifest are not counted.
pub fn compare(expected: &[TableDigest], found: &[TableDigest]) -> Vec<Mismatch> {
    let found: BTreeMap<&str, &TableDigest> = found.iter().map(|d| (d.table.as_str(), d)).collect();
    expected
        .iter()
        .filter_map(|want| {
            let table = want.table.clone();
            match found.get(want.table.as_str()) {
                None => Some(Mismatch::Missing { table }),
                Some(got) if got.rows != want.rows => {
                    Some(Mismatch::Rows { table, expected: want.rows, found: got.rows })
                }
                Some(got) if got.checksum != want.checksum => Some(Mismatch::Content { table, rows: got.rows }),
                Some(_) => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(table: &str, rows: i64, checksum: &str) -> TableDigest {
        TableDigest { table: table.into(), rows, checksum: checksum.into() }
    }

    #[test]
    fn every_difference_is_named_by_its_table() {
        let want =
            [d("public.users", 3, "a"), d("public.orders", 2, "b"), d("public.jobs", 1, "c"), d("public.x", 0, "z")];
        let got = [
            d("public.users", 3, "a"),
            d("public.orders", 1, "b"),
            d("public.jobs", 1, "d"),
            d("public.extra", 5, "e"),
        ];
        let found = compare(&want, &got);
        assert_eq!(
            found.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "table public.orders has 1 rows, the manifest says 2",
                "table public.jobs has its 1 rows but their content differs (checksum)",
                "table public.x is missing",
            ]
        );
        assert!(compare(&want, &want).is_empty());
    }
}
