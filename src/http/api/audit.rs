//! `GET /api/v1/audit`: the audit log, read-only — who changed what, when, from where.

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Caller, Page, Params, page_request};
use crate::app::AppState;
use crate::db::audit::{AuditFilter, AuditRow};
use crate::domain::page::Order;
use crate::error::{AppError, AppResult};
use crate::http::Problem;
use crate::services::audit;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// `admin`, `api_key`, `system`, `user` or `cli`.
    pub actor_kind: Option<String>,
    /// The admin's, key's or customer's id.
    pub actor_id: Option<String>,
    /// `payment`, `subscription`, `server`, …
    pub entity: Option<String>,
    pub entity_id: Option<String>,
    /// `payment.accepted`, `subscription.extend`, …
    pub action: Option<String>,
    /// At or after (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Before (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// `desc` (newest first, the default) or `asc`, over (at, id).
    pub order: Option<Order>,
}

/// One recorded change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
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

impl From<AuditRow> for AuditEntry {
    fn from(r: AuditRow) -> Self {
        AuditEntry {
            id: r.id,
            at: r.at,
            actor_kind: r.actor_kind,
            actor_id: r.actor_id,
            action: r.action,
            entity: r.entity,
            entity_id: r.entity_id,
            detail: r.detail,
            source_ip: r.source_ip,
        }
    }
}

const ACTOR_KINDS: [&str; 5] = ["admin", "api_key", "system", "user", "cli"];

/// The audit log, newest first unless `order=asc`; every filter combines with the others.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = Page<AuditEntry>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_audit(
    State(state): State<AppState>,
    _caller: Caller,
    Params(q): Params<AuditQuery>,
) -> AppResult<Json<Page<AuditEntry>>> {
    let page = page_request(q.limit, q.cursor.as_deref(), q.order)?;
    if let Some(kind) = q.actor_kind.as_deref().filter(|k| !ACTOR_KINDS.contains(k)) {
        return Err(AppError::field("actor_kind", format!("{kind:?} is not one of {}", ACTOR_KINDS.join(", "))));
    }
    for (name, value) in
        [("actor_id", &q.actor_id), ("entity", &q.entity), ("entity_id", &q.entity_id), ("action", &q.action)]
    {
        if value.as_ref().is_some_and(|v| v.len() > 200) {
            return Err(AppError::field(name, "at most 200 characters"));
        }
    }
    let filter = AuditFilter {
        actor_kind: q.actor_kind,
        actor_id: q.actor_id,
        entity: q.entity,
        entity_id: q.entity_id,
        action: q.action,
        from: q.from,
        to: q.to,
    };
    let (rows, next) = audit::list(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(AuditEntry::from)))
}
