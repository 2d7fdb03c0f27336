//! The `audit_log` table: who did what to which row, when, from where.

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, Postgres, QueryBuilder};

use crate::domain::page::{Cursor, PageRequest};

/// One audit entry; write it in the same transaction as the change it records.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub actor_kind: &'a str,
    pub actor_id: Option<&'a str>,
    pub action: &'a str,
    pub entity: &'a str,
    pub entity_id: Option<&'a str>,
    pub detail: serde_json::Value,
    pub source_ip: Option<&'a str>,
}

pub async fn record(db: impl PgExecutor<'_>, e: &AuditEntry<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO audit_log (actor_kind, actor_id, action, entity, entity_id, detail, source_ip)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        e.actor_kind,
        e.actor_id,
        e.action,
        e.entity,
        e.entity_id,
        e.detail,
        e.source_ip,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// One recorded change.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_kind: String,
    pub actor_id: Option<String>,
    pub action: String,
    pub entity: String,
    pub entity_id: Option<String>,
    pub detail: serde_json::Value,
    pub source_ip: Option<String>,
}

impl AuditRow {
    pub fn cursor(&self) -> Cursor {
        Cursor::at(self.at, self.id)
    }
}

/// Which entries a listing shows (all filters combine).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub actor_kind: Option<String>,
    pub actor_id: Option<String>,
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    pub action: Option<String>,
    /// At or after.
    pub from: Option<DateTime<Utc>>,
    /// Before.
    pub to: Option<DateTime<Utc>>,
}

/// A page of entries over `(at, id)`; up to `page.fetch()` rows.
pub async fn list(db: impl PgExecutor<'_>, f: &AuditFilter, page: &PageRequest) -> sqlx::Result<Vec<AuditRow>> {
    let mut q: QueryBuilder<Postgres> = QueryBuilder::new(
        "SELECT id, at, actor_kind, actor_id, action, entity, entity_id, detail, source_ip FROM audit_log WHERE true",
    );
    let text = [
        (" AND actor_kind = ", &f.actor_kind),
        (" AND actor_id = ", &f.actor_id),
        (" AND entity = ", &f.entity),
        (" AND entity_id = ", &f.entity_id),
        (" AND action = ", &f.action),
    ];
    for (sql, value) in text {
        if let Some(v) = value {
            q.push(sql).push_bind(v.clone());
        }
    }
    if let Some(from) = f.from {
        q.push(" AND at >= ").push_bind(from);
    }
    if let Some(to) = f.to {
        q.push(" AND at < ").push_bind(to);
    }
    if let Some(after) = page.after {
        q.push(" AND (at, id) ").push(page.op()).push(" (");
        q.push_bind(after.time()).push(", ").push_bind(after.id).push(")");
    }
    let dir = page.dir();
    q.push(format_args!(" ORDER BY at {dir}, id {dir} LIMIT ")).push_bind(page.fetch());
    q.build_query_as().fetch_all(db).await
}
