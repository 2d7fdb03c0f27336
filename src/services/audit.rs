//! Who changed something, for the audit log: every mutation through the admin API (and the dashboard) records
//! its caller in the same transaction as the change.

use sqlx::PgConnection;

use crate::db;
use crate::services::auth::Principal;

/// The caller of a change: kind (`admin`, `api_key`, `cli`, `system`), id within the kind, and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    pub kind: &'static str,
    pub id: Option<String>,
    /// As people read it (`alice`, `key vpnshop_ab12cd34`, `cli`).
    pub name: String,
    pub ip: Option<String>,
}

impl Who {
    pub fn cli() -> Who {
        Who { kind: "cli", id: std::env::var("USER").ok(), name: "cli".into(), ip: None }
    }

    pub fn of(principal: &Principal, ip: Option<String>) -> Who {
        Who { kind: principal.actor_kind(), id: Some(principal.actor_id()), name: principal.display(), ip }
    }

    /// Records `action` on `entity` `entity_id` in the caller's transaction.
    pub async fn record(
        &self,
        conn: &mut PgConnection,
        action: &str,
        entity: &str,
        entity_id: impl ToString,
        detail: serde_json::Value,
    ) -> sqlx::Result<()> {
        let entity_id = entity_id.to_string();
        db::audit::record(
            conn,
            &db::audit::AuditEntry {
                actor_kind: self.kind,
                actor_id: self.id.as_deref(),
                action,
                entity,
                entity_id: Some(&entity_id),
                detail,
                source_ip: self.ip.as_deref(),
            },
        )
        .await
    }
}

/// A page of the audit log (over `(at, id)`) and the cursor of the next one.
pub async fn list(
    pool: &sqlx::PgPool,
    filter: &db::audit::AuditFilter,
    page: &crate::domain::page::PageRequest,
) -> crate::error::AppResult<(Vec<db::audit::AuditRow>, Option<crate::domain::page::Cursor>)> {
    let rows = db::audit::list(pool, filter, page).await?;
    Ok(page.cut(rows, db::audit::AuditRow::cursor))
}
