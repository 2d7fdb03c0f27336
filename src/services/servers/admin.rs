//! Servers through the admin API: listed with their load, changed field by field, and tested. A restart command
//! given through the API is never free shell text: only `systemctl restart <unit>` or
//! `sudo -n systemctl restart <unit>` with a plain unit name (or none: the core's default).

use std::time::{Duration, Instant};

use sqlx::PgPool;

use super::{By, Checked, ServerInput, audit, check};
use crate::db::{self, servers::ServerFilter, servers::ServerUpdate, servers::ServerView};
use crate::domain::inbound;
use crate::domain::page::{Cursor, PageRequest};
use crate::error::{AppError, AppResult, violated_constraint};
use crate::services::audit::Who;
use crate::services::nodes::Nodes;
use crate::services::nodes::probe::Outcome;

/// A restart command given through the API: `systemctl restart <unit>` or `sudo -n systemctl restart <unit>`,
/// the unit 1-100 of `A-Z a-z 0-9 _ . @ -` starting with a letter or digit; `None` keeps the core's default.
pub fn restart_command(text: Option<&str>) -> AppResult<Option<String>> {
    let Some(text) = text else { return Ok(None) };
    let unit = text.strip_prefix("sudo -n systemctl restart ").or_else(|| text.strip_prefix("systemctl restart "));
    let valid = unit.is_some_and(|u| {
        u.len() <= 100
            && u.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && u.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
    });
    if !valid {
        return Err(AppError::field(
            "restart_command",
            "`systemctl restart <unit>` or `sudo -n systemctl restart <unit>` with a unit name of letters, digits, \
             `_ . @ -` (or null for the core's default)",
        ));
    }
    Ok(Some(text.to_owned()))
}

/// The fields of a server the API may change; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ServerChange {
    pub name: Option<String>,
    pub public_host: Option<String>,
    pub public_port: Option<u16>,
    pub ssh_host: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_user: Option<String>,
    pub api_port: Option<u16>,
    pub capacity: Option<u32>,
    /// `Some(None)`: back to the core's default.
    pub restart_command: Option<Option<String>>,
}

/// One page of servers (by id) with their load.
pub async fn page(
    pool: &PgPool,
    filter: &ServerFilter,
    page: &PageRequest,
) -> AppResult<(Vec<ServerView>, Option<Cursor>)> {
    let rows = db::servers::page(pool, filter, page).await?;
    Ok(page.cut(rows, |s| Cursor { key: s.id, id: s.id }))
}

/// The catalogue's locations a server may serve (for an operator's form), in catalogue order.
pub async fn locations(pool: &PgPool) -> AppResult<Vec<db::locations::LocationRow>> {
    Ok(db::locations::list(pool).await?)
}

pub async fn view(pool: &PgPool, id: i64) -> AppResult<ServerView> {
    db::servers::view(pool, id).await?.ok_or(AppError::NotFound("server"))
}

fn port(value: i32) -> u16 {
    u16::try_from(value).unwrap_or(0)
}

/// Changes a server's fields, checked like a new server's (errors name the field).
pub async fn update(pool: &PgPool, id: i64, change: &ServerChange, who: &Who) -> AppResult<ServerView> {
    let restart = match &change.restart_command {
        Some(cmd) => Some(restart_command(cmd.as_deref())?),
        None => None,
    };
    let mut tx = pool.begin().await?;
    db::servers::lock(&mut tx, id).await?.ok_or(AppError::NotFound("server"))?;
    let now = db::servers::view(&mut *tx, id).await?.ok_or(AppError::NotFound("server"))?;
    let mut inbounds = inbound::from_stored(&now.inbounds, now.protocol, &now.inbound_tag, now.public_port)
        .map_err(|e| AppError::field("inbounds", e.to_string()))?;
    // a node with one inbound: its public port is that inbound's port (what the API always meant by it); with
    // several, each has its own: they change with the inbounds
    let port_moved = match (change.public_port, inbounds.as_mut_slice()) {
        (Some(port), [only]) if only.port != port => {
            only.port = port;
            true
        }
        (Some(_), [_, _, ..]) => {
            return Err(AppError::field(
                "public_port",
                "this node has several inbounds, each with its own port: change them with PUT /api/v1/servers/{id}/inbounds",
            ));
        }
        _ => false,
    };
    let input = ServerInput {
        name: change.name.clone().unwrap_or_else(|| now.name.clone()),
        location: now.location_code.clone(),
        public_host: change.public_host.clone().unwrap_or_else(|| now.public_host.clone()),
        public_port: change.public_port.unwrap_or(port(now.public_port)),
        ssh_host: Some(change.ssh_host.clone().unwrap_or_else(|| now.ssh_host.clone())),
        ssh_port: change.ssh_port.unwrap_or(port(now.ssh_port)),
        ssh_user: change.ssh_user.clone().unwrap_or_else(|| now.ssh_user.clone()),
        host_key: now.host_key_fingerprint.clone(),
        core: now.core,
        protocol: now.protocol,
        inbound_tag: now.inbound_tag.clone(),
        api_port: change.api_port.unwrap_or(port(now.api_port)),
        config_path: Some(now.config_path.clone()),
        capacity: change.capacity.unwrap_or(u32::try_from(now.capacity).unwrap_or(0)),
        restart_command: restart.unwrap_or_else(|| now.restart_command.clone()),
        base_config: None,
        inbounds: inbounds.clone(),
    };
    let Checked { public_host, ssh_host, .. } = check(pool, &input).await?;
    let row = ServerUpdate {
        name: &input.name,
        public_host: &public_host,
        public_port: i32::from(input.public_port),
        ssh_host: &ssh_host,
        ssh_port: i32::from(input.ssh_port),
        ssh_user: &input.ssh_user,
        api_port: i32::from(input.api_port),
        capacity: i32::try_from(input.capacity).unwrap_or(i32::MAX),
        restart_command: input.restart_command.as_deref(),
    };
    db::servers::update(&mut *tx, id, &row).await.map_err(|e| match violated_constraint(&e) {
        Some("servers_name_key") => AppError::conflict(format!("a server named {:?} already exists", input.name)),
        _ => AppError::from(e),
    })?;
    let detail = serde_json::json!({
        "before": {
            "name": now.name, "public_host": now.public_host, "public_port": now.public_port, "ssh_host": now.ssh_host,
            "ssh_port": now.ssh_port, "ssh_user": now.ssh_user, "api_port": now.api_port, "capacity": now.capacity,
            "restart_command": now.restart_command,
        },
        "after": {
            "name": row.name, "public_host": row.public_host, "public_port": row.public_port, "ssh_host": row.ssh_host,
            "ssh_port": row.ssh_port, "ssh_user": row.ssh_user, "api_port": row.api_port, "capacity": row.capacity,
            "restart_command": row.restart_command,
        },
    });
    if port_moved {
        let json = serde_json::to_value(&inbounds).map_err(|e| AppError::Internal(e.into()))?;
        let first = &inbounds[0];
        db::servers::set_inbounds(&mut *tx, id, &json, (first.protocol, &first.tag, i32::from(first.port))).await?;
    }
    audit(&mut tx, By::from(who), "server.update", id, detail).await?;
    let view = db::servers::view(&mut *tx, id).await?.ok_or(AppError::NotFound("server"))?;
    tx.commit().await?;
    Ok(view)
}

/// What a test of a node found: every check in order, and how long it took.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TestReport {
    /// Every check passed.
    pub ok: bool,
    pub checks: Vec<TestCheck>,
    pub elapsed_ms: u64,
}

#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct TestCheck {
    /// `reach sshd`, `host key`, `ssh login`, `config file`, `core API`, `traffic stats`, `isolation`; then
    /// `inbound port` for each inbound and `certificate` for each TLS inbound.
    pub name: String,
    /// `ok`, `failed`, or `skipped` (an earlier check failed).
    pub outcome: String,
    pub detail: String,
}

/// Checks a node over SSH and through its core's API (`vpnshop server test`), within `limit`. A node that cannot
/// be reached is a report with `ok: false`, not an error. Read-only: nothing on the node or here changes.
pub async fn test(nodes: &Nodes, id: i64, limit: Duration) -> AppResult<TestReport> {
    let server = view(&nodes.pool, id).await?;
    let started = Instant::now();
    let checks = match tokio::time::timeout(limit, nodes.probe(&server.name)).await {
        Ok(checks) => checks?
            .into_iter()
            .map(|c| TestCheck {
                name: c.name.to_owned(),
                outcome: match c.outcome {
                    Outcome::Ok => "ok",
                    Outcome::Failed => "failed",
                    Outcome::Skipped => "skipped",
                }
                .to_owned(),
                detail: c.detail,
            })
            .collect(),
        Err(_) => vec![TestCheck {
            name: "timeout".into(),
            outcome: "failed".into(),
            detail: format!("the node did not finish answering within {} s", limit.as_secs()),
        }],
    };
    let ok = checks.iter().all(|c| c.outcome == "ok");
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(TestReport { ok, checks, elapsed_ms })
}
