//! The `audit_log` table: who did what to which row, when, from where.

use sqlx::PgExecutor;

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
