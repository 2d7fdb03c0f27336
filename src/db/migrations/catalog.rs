//! What the database says about its tables, indexes, columns and functions, for [`super::check`].

use anyhow::Context;
use sqlx::PgConnection;

use super::check::{Catalog, Index, TableSize, Volatility};

/// The catalogue of the tables, indexes and functions visible on the connection's search path.
pub async fn load(conn: &mut PgConnection) -> anyhow::Result<Catalog> {
    let mut catalog = Catalog::default();
    let tables = sqlx::query!(
        r#"SELECT c.relname AS "name!", c.reltuples AS "rows!", pg_table_size(c.oid) AS "bytes!"
           FROM pg_class c WHERE c.relkind IN ('r', 'p') AND pg_table_is_visible(c.oid)"#
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading table sizes")?;
    for t in tables {
        // reltuples is -1 until the table is first vacuumed or analysed
        let rows = (t.rows >= 0.0).then_some(t.rows as u64);
        catalog.tables.insert(t.name, TableSize { rows, bytes: t.bytes });
    }
    let indexes = sqlx::query!(
        r#"SELECT i.relname AS "index!", t.relname AS "table!", x.indisunique AS "unique!"
           FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid
           WHERE pg_table_is_visible(t.oid)"#
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading indexes")?;
    for i in indexes {
        catalog.indexes.insert(i.index, Index { table: i.table, unique: i.unique });
    }
    let functions = sqlx::query!(
        r#"SELECT proname AS "name!",
                  max(CASE provolatile WHEN 'v' THEN 2 WHEN 's' THEN 1 ELSE 0 END) AS "volatility!"
           FROM pg_proc GROUP BY proname"#
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading function volatility")?;
    for f in functions {
        let v = match f.volatility {
            2 => Volatility::Volatile,
            1 => Volatility::Stable,
            _ => Volatility::Immutable,
        };
        catalog.functions.insert(f.name, v);
    }
    let not_null = sqlx::query!(
        r#"SELECT c.relname AS "table!", a.attname AS "column!"
           FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
           WHERE a.attnotnull AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
             AND pg_table_is_visible(c.oid)"#
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading NOT NULL columns")?;
    catalog.not_null = not_null.into_iter().map(|r| (r.table, r.column)).collect();
    let checks = sqlx::query!(
        r#"SELECT c.relname AS "table!", pg_get_constraintdef(k.oid) AS "definition!"
           FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
           WHERE k.contype = 'c' AND k.convalidated AND pg_table_is_visible(c.oid)"#
    )
    .fetch_all(&mut *conn)
    .await
    .context("reading CHECK constraints")?;
    for c in checks {
        if let Some(column) = not_null_column(&c.definition) {
            catalog.not_null_checked.insert((c.table, column));
        }
    }
    Ok(catalog)
}

/// The column of a `CHECK ((column IS NOT NULL))` as `pg_get_constraintdef` writes it.
fn not_null_column(definition: &str) -> Option<String> {
    let inner = definition.strip_prefix("CHECK")?.trim().trim_start_matches('(').trim_end_matches(')');
    let column = inner.strip_suffix(" IS NOT NULL")?.trim();
    let column = match column.strip_prefix('"').and_then(|c| c.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None if column.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => column.to_owned(),
        None => return None,
    };
    Some(column)
}

#[cfg(test)]
mod tests {
    use super::not_null_column;

    #[test]
    fn a_not_null_check_names_its_column() {
        assert_eq!(not_null_column("CHECK ((trace_parent IS NOT NULL))").as_deref(), Some("trace_parent"));
        assert_eq!(not_null_column("CHECK ((\"Odd Name\" IS NOT NULL))").as_deref(), Some("Odd Name"));
        assert_eq!(not_null_column("CHECK (((a IS NOT NULL) OR (b IS NOT NULL)))"), None);
        assert_eq!(not_null_column("CHECK ((amount > 0))"), None);
    }
}
