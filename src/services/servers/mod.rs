//! Managing nodes: adding, listing, enabling and removing servers. Plans reach servers through their location.

use sqlx::PgPool;

use crate::db::{self, audit::AuditEntry, servers::NewServer, servers::ServerRow};
use crate::domain::server::{Core, Host, HostKeyFingerprint, Protocol};
use crate::error::{AppError, AppResult, violated_constraint};
use crate::provision::render::{self, ClientInbound};

/// A server as an operator describes it (CLI flags or an API body), before validation.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ServerInput {
    pub name: String,
    pub location: String,
    pub public_host: String,
    pub public_port: u16,
    pub ssh_host: Option<String>,
    pub ssh_port: u16,
    pub ssh_user: String,
    pub host_key: Option<String>,
    pub core: Core,
    pub protocol: Protocol,
    pub inbound_tag: String,
    pub api_port: u16,
    pub config_path: Option<String>,
    pub capacity: u32,
    /// How to restart the core (default `sudo -n systemctl restart <core>`).
    #[serde(default)]
    pub restart_command: Option<String>,
    /// The node's base config template (default: built from the fields above).
    #[serde(default)]
    pub base_config: Option<serde_json::Value>,
}

/// Who is acting, for the audit log.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    pub kind: &'a str,
    pub id: Option<&'a str>,
}

impl Actor<'static> {
    pub const CLI: Actor<'static> = Actor { kind: "cli", id: None };
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

/// Validates and stores a new server.
pub async fn add(pool: &PgPool, input: &ServerInput, actor: Actor<'_>) -> AppResult<ServerRow> {
    if !valid_name(&input.name) {
        return Err(AppError::invalid(format!(
            "server name {:?} must be 1-63 lowercase letters, digits, '.', '_' or '-'",
            input.name
        )));
    }
    let public_host = Host::parse(&input.public_host).map_err(|e| AppError::invalid(format!("public host: {e}")))?;
    let ssh_host = match &input.ssh_host {
        Some(h) => Host::parse(h).map_err(|e| AppError::invalid(format!("ssh host: {e}")))?,
        None => public_host.clone(),
    };
    let fingerprint = input
        .host_key
        .as_deref()
        .map(HostKeyFingerprint::parse)
        .transpose()
        .map_err(|e| AppError::invalid(e.to_string()))?;
    for (what, port) in [("public port", input.public_port), ("ssh port", input.ssh_port), ("api port", input.api_port)]
    {
        if port == 0 {
            return Err(AppError::invalid(format!("{what} must be between 1 and 65535")));
        }
    }
    if input.capacity == 0 || input.capacity > i32::MAX as u32 {
        return Err(AppError::invalid("capacity must be a positive number of clients"));
    }
    let user_ok = !input.ssh_user.is_empty()
        && input.ssh_user.len() <= 32
        && input.ssh_user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !user_ok {
        return Err(AppError::invalid(format!("ssh user {:?} is not a valid user name", input.ssh_user)));
    }
    if input.inbound_tag.is_empty() || input.inbound_tag.len() > 64 {
        return Err(AppError::invalid("inbound tag must be 1-64 characters"));
    }
    let config_path = input.config_path.clone().unwrap_or_else(|| format!("/etc/{}/config.json", input.core));
    if !config_path.starts_with('/') {
        return Err(AppError::invalid("config path must be absolute"));
    }
    if let Some(cmd) = &input.restart_command
        && (cmd.trim().is_empty() || cmd.len() > 500)
    {
        return Err(AppError::invalid("restart command must be 1-500 characters"));
    }
    if let Some(base) = &input.base_config {
        // the template must hold our inbound with the right protocol, or every sync would fail later
        let inbound = ClientInbound { tag: input.inbound_tag.clone(), protocol: input.protocol, core: input.core };
        let mut isolated = base.clone();
        crate::provision::isolation::isolate(&mut isolated, &[], &[])
            .and_then(|()| render::render(&isolated, &inbound, &[]))
            .map_err(|e| AppError::invalid(format!("base config: {e}")))?;
    }
    let location = db::locations::find(pool, &input.location).await?;
    if location.is_none() {
        let known: Vec<String> = db::locations::list(pool).await?.into_iter().map(|l| l.code).collect();
        return Err(AppError::invalid(format!(
            "unknown location {:?} (known: {}; run `vpnshop catalog seed` after adding it to config/plans.toml)",
            input.location,
            known.join(", ")
        )));
    }
    let row = NewServer {
        name: &input.name,
        location_code: &input.location,
        public_host: public_host.as_str(),
        public_port: i32::from(input.public_port),
        ssh_host: ssh_host.as_str(),
        ssh_port: i32::from(input.ssh_port),
        ssh_user: &input.ssh_user,
        host_key_fingerprint: fingerprint.as_ref().map(|f| f.as_str()),
        core: input.core,
        protocol: input.protocol,
        inbound_tag: &input.inbound_tag,
        api_port: i32::from(input.api_port),
        config_path: &config_path,
        capacity: input.capacity as i32,
        restart_command: input.restart_command.as_deref(),
        base_config: input.base_config.as_ref(),
    };
    let mut tx = pool.begin().await?;
    let id = db::servers::insert(&mut *tx, &row).await.map_err(|e| match violated_constraint(&e) {
        Some("servers_name_key") => AppError::conflict(format!("a server named {:?} already exists", input.name)),
        _ => AppError::from(e),
    })?;
    audit(&mut tx, actor, "server.add", id, serde_json::json!({ "name": input.name, "location": input.location }))
        .await?;
    tx.commit().await?;
    db::servers::find_by_name(pool, &input.name).await?.ok_or(AppError::NotFound("server"))
}

pub async fn list(pool: &PgPool) -> AppResult<Vec<ServerRow>> {
    Ok(db::servers::list(pool).await?)
}

/// Deletes a server nothing refers to. One that ever carried clients is kept for history: disable it instead.
pub async fn remove(pool: &PgPool, name: &str, actor: Actor<'_>) -> AppResult<()> {
    let server = db::servers::find_by_name(pool, name).await?.ok_or(AppError::NotFound("server"))?;
    let mut tx = pool.begin().await?;
    if db::servers::is_referenced(&mut *tx, server.id).await? {
        return Err(AppError::conflict(format!(
            "server {name:?} has (or had) subscriptions; disable it with `vpnshop server disable {name}` instead"
        )));
    }
    db::servers::delete(&mut *tx, server.id).await?;
    audit(&mut tx, actor, "server.remove", server.id, serde_json::json!({ "name": name })).await?;
    tx.commit().await?;
    Ok(())
}

/// Takes a server out of (or back into) placement; its existing clients stay until they end.
pub async fn set_enabled(pool: &PgPool, name: &str, enabled: bool, actor: Actor<'_>) -> AppResult<()> {
    let server = db::servers::find_by_name(pool, name).await?.ok_or(AppError::NotFound("server"))?;
    let mut tx = pool.begin().await?;
    db::servers::set_enabled(&mut *tx, server.id, enabled).await?;
    let action = if enabled { "server.enable" } else { "server.disable" };
    audit(&mut tx, actor, action, server.id, serde_json::json!({ "name": name })).await?;
    tx.commit().await?;
    Ok(())
}

async fn audit(
    tx: &mut sqlx::PgConnection,
    actor: Actor<'_>,
    action: &str,
    id: i64,
    detail: serde_json::Value,
) -> AppResult<()> {
    let id = id.to_string();
    let entry = AuditEntry {
        actor_kind: actor.kind,
        actor_id: actor.id,
        action,
        entity: "server",
        entity_id: Some(&id),
        detail,
        source_ip: None,
    };
    db::audit::record(tx, &entry).await?;
    Ok(())
}

/// Pins a node's SSH host key: the given fingerprint, or (trust on first use, only when asked) whatever the
/// node presents now. Returns the pinned fingerprint.
pub async fn pin_host_key(
    pool: &PgPool,
    nodes: &crate::services::nodes::Nodes,
    name: &str,
    fingerprint: Option<&str>,
    actor: Actor<'_>,
) -> AppResult<String> {
    let server = db::servers::find_by_name(pool, name).await?.ok_or(AppError::NotFound("server"))?;
    let fingerprint = match fingerprint {
        Some(f) => HostKeyFingerprint::parse(f).map_err(|e| AppError::invalid(e.to_string()))?.to_string(),
        None => {
            let port = u16::try_from(server.ssh_port).unwrap_or(22);
            nodes
                .api
                .fetch_host_key(&server.ssh_host, port)
                .await
                .map_err(|e| AppError::Unavailable(format!("node {name} ({e})")))?
        }
    };
    let mut tx = pool.begin().await?;
    db::servers::pin_host_key(&mut *tx, server.id, &fingerprint).await?;
    audit(
        &mut tx,
        actor,
        "server.pin_host_key",
        server.id,
        serde_json::json!({ "name": name, "fingerprint": fingerprint }),
    )
    .await?;
    tx.commit().await?;
    Ok(fingerprint)
}
