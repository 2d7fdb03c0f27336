//! Managing nodes: adding, listing, enabling and removing servers. Plans reach servers through their location.

mod admin;

use sqlx::PgPool;

pub use self::admin::{ServerChange, TestReport, locations, page, restart_command, test, update, view};

use crate::db::{self, audit::AuditEntry, servers::NewServer, servers::ServerRow};
use crate::domain::inbound::{self, InboundSpec};
use crate::domain::server::{Core, Host, HostKeyFingerprint, Protocol};
use crate::error::{AppError, AppResult, violated_constraint};
use crate::provision::render::{self, ClientInbound};
use crate::services::audit::Who;

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
    /// The client inbounds; empty: one plain TCP inbound from `protocol`, `inbound_tag` and `public_port`.
    #[serde(default)]
    pub inbounds: Vec<InboundSpec>,
}

impl ServerInput {
    /// The inbounds this input describes: the given ones, else the one plain TCP inbound of the legacy fields.
    pub fn inbound_specs(&self) -> Vec<InboundSpec> {
        if self.inbounds.is_empty() {
            vec![InboundSpec::plain_tcp(&self.inbound_tag, self.protocol, self.public_port)]
        } else {
            self.inbounds.clone()
        }
    }
}

/// Checks a node's inbounds for its core and API port; errors name the field (`inbounds[1].sni`).
fn check_inbounds(inbounds: &[InboundSpec], core: Core, api_port: u16) -> AppResult<()> {
    inbound::validate_all(inbounds, core).map_err(|e| AppError::field(e.field, e.message))?;
    if let Some(i) = inbounds.iter().position(|i| i.port == api_port) {
        return Err(AppError::field(format!("inbounds[{i}].port"), "the same port as the core's API (api_port)"));
    }
    Ok(())
}

/// Replaces a node's client inbounds (a base-config change: the next sync rewrites its config with every
/// client on every inbound and restarts the core once) and asks for that sync now.
pub async fn set_inbounds(
    pool: &PgPool,
    id: i64,
    inbounds: &[InboundSpec],
    actor: Actor<'_>,
    jobs: &crate::config::JobSettings,
) -> AppResult<ServerRow> {
    replace_inbounds(pool, id, inbounds, actor.into(), jobs).await
}

/// [`set_inbounds`] through the admin API.
pub async fn set_inbounds_by(
    pool: &PgPool,
    id: i64,
    inbounds: &[InboundSpec],
    who: &Who,
    jobs: &crate::config::JobSettings,
) -> AppResult<ServerRow> {
    replace_inbounds(pool, id, inbounds, who.into(), jobs).await
}

async fn replace_inbounds(
    pool: &PgPool,
    id: i64,
    inbounds: &[InboundSpec],
    actor: By<'_>,
    jobs: &crate::config::JobSettings,
) -> AppResult<ServerRow> {
    let mut tx = pool.begin().await?;
    let server = db::servers::lock(&mut tx, id).await?.ok_or(AppError::NotFound("server"))?;
    check_inbounds(inbounds, server.core, u16::try_from(server.api_port).unwrap_or(0))?;
    if db::servers::node(&mut *tx, id).await?.is_some_and(|n| n.base_config.is_some()) {
        return Err(AppError::field(
            "inbounds",
            "this node runs the operator's own base config template: change its inbounds there",
        ));
    }
    let first = &inbounds[0];
    let json = serde_json::to_value(inbounds).map_err(|e| AppError::Internal(e.into()))?;
    db::servers::set_inbounds(&mut *tx, id, &json, (first.protocol, &first.tag, i32::from(first.port))).await?;
    let before = inbound::from_stored(&server.inbounds, server.protocol, &server.inbound_tag, server.public_port)
        .map(|list| list.iter().map(|i| i.tag.clone()).collect::<Vec<_>>())
        .unwrap_or_default();
    let after: Vec<&str> = inbounds.iter().map(|i| i.tag.as_str()).collect();
    audit(
        &mut tx,
        actor,
        "server.inbounds",
        id,
        serde_json::json!({ "name": server.name, "before": before, "after": after }),
    )
    .await?;
    crate::services::queue::JobSpec::new(
        crate::services::nodes::RECONCILE_KIND,
        serde_json::json!({ "server_id": id }),
    )
    .coalesce(format!("{}:{id}", crate::services::nodes::RECONCILE_KIND))
    .enqueue(&mut *tx, jobs)
    .await?;
    tx.commit().await?;
    db::servers::find_by_name(pool, &server.name).await?.ok_or(AppError::NotFound("server"))
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

/// Who is acting, as the audit log records it.
#[derive(Debug, Clone, Copy)]
struct By<'a> {
    kind: &'a str,
    id: Option<&'a str>,
    ip: Option<&'a str>,
}

impl<'a> From<Actor<'a>> for By<'a> {
    fn from(a: Actor<'a>) -> Self {
        By { kind: a.kind, id: a.id, ip: None }
    }
}

impl<'a> From<&'a Who> for By<'a> {
    fn from(w: &'a Who) -> Self {
        By { kind: w.kind, id: w.id.as_deref(), ip: w.ip.as_deref() }
    }
}

/// Validates and stores a new server (the CLI: any restart command the operator on the box gives).
pub async fn add(pool: &PgPool, input: &ServerInput, actor: Actor<'_>) -> AppResult<ServerRow> {
    insert(pool, input, actor.into()).await
}

/// Validates and stores a new server given through the admin API, whose restart command may only be one of
/// the forms [`restart_command`] takes.
pub async fn create(pool: &PgPool, input: &ServerInput, who: &Who) -> AppResult<ServerRow> {
    let input = ServerInput { restart_command: restart_command(input.restart_command.as_deref())?, ..input.clone() };
    insert(pool, &input, who.into()).await
}

/// A server's input after validation: hosts, fingerprint and config path in their stored form.
struct Checked {
    public_host: String,
    ssh_host: String,
    fingerprint: Option<String>,
    config_path: String,
}

/// Checks every field of `input`; errors name the field.
async fn check(pool: &PgPool, input: &ServerInput) -> AppResult<Checked> {
    if !valid_name(&input.name) {
        return Err(AppError::field(
            "name",
            format!("server name {:?} must be 1-63 lowercase letters, digits, '.', '_' or '-'", input.name),
        ));
    }
    let public_host =
        Host::parse(&input.public_host).map_err(|e| AppError::field("public_host", format!("public host: {e}")))?;
    let ssh_host = match &input.ssh_host {
        Some(h) => Host::parse(h).map_err(|e| AppError::field("ssh_host", format!("ssh host: {e}")))?,
        None => public_host.clone(),
    };
    let fingerprint = input
        .host_key
        .as_deref()
        .map(HostKeyFingerprint::parse)
        .transpose()
        .map_err(|e| AppError::field("host_key", e.to_string()))?;
    for (field, what, port) in [
        ("public_port", "public port", input.public_port),
        ("ssh_port", "ssh port", input.ssh_port),
        ("api_port", "api port", input.api_port),
    ] {
        if port == 0 {
            return Err(AppError::field(field, format!("{what} must be between 1 and 65535")));
        }
    }
    if input.capacity == 0 || input.capacity > i32::MAX as u32 {
        return Err(AppError::field("capacity", "capacity must be a positive number of clients"));
    }
    let user_ok = !input.ssh_user.is_empty()
        && input.ssh_user.len() <= 32
        && input.ssh_user.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !user_ok {
        return Err(AppError::field("ssh_user", format!("ssh user {:?} is not a valid user name", input.ssh_user)));
    }
    if input.inbound_tag.is_empty() || input.inbound_tag.len() > 64 {
        return Err(AppError::field("inbound_tag", "inbound tag must be 1-64 characters"));
    }
    let inbounds = input.inbound_specs();
    if input.inbounds.is_empty() {
        // the legacy fields: name them, not inbounds[0]
        check_inbounds(&inbounds, input.core, input.api_port).map_err(|e| match e {
            AppError::Field { field, message } => {
                let field = match field.strip_prefix("inbounds[0].") {
                    Some("tag") => "inbound_tag".to_owned(),
                    Some("port") => "public_port".to_owned(),
                    Some("security") => "protocol".to_owned(),
                    _ => field,
                };
                AppError::Field { field, message }
            }
            other => other,
        })?;
    } else {
        check_inbounds(&inbounds, input.core, input.api_port)?;
    }
    let config_path = input.config_path.clone().unwrap_or_else(|| format!("/etc/{}/config.json", input.core));
    if !config_path.starts_with('/') || config_path.len() > 500 {
        return Err(AppError::field("config_path", "config path must be absolute"));
    }
    if let Some(cmd) = &input.restart_command
        && (cmd.trim().is_empty() || cmd.len() > 500)
    {
        return Err(AppError::field("restart_command", "restart command must be 1-500 characters"));
    }
    if let Some(base) = &input.base_config {
        // the template must hold our inbounds with the right protocols, or every sync would fail later
        let inbounds: Vec<ClientInbound> = inbounds.iter().map(|i| ClientInbound::of(i, input.core)).collect();
        let mut isolated = base.clone();
        crate::provision::isolation::isolate(&mut isolated, &[], &[])
            .and_then(|()| render::render(&isolated, &inbounds, &[]))
            .map_err(|e| AppError::field("base_config", format!("base config: {e}")))?;
    }
    let location = if input.location.len() > 16 { None } else { db::locations::find(pool, &input.location).await? };
    if location.is_none() {
        let known: Vec<String> = db::locations::list(pool).await?.into_iter().map(|l| l.code).collect();
        return Err(AppError::field(
            "location",
            format!(
                "unknown location {:?} (known: {}; run `vpnshop catalog seed` after adding it to config/plans.toml)",
                input.location,
                known.join(", ")
            ),
        ));
    }
    Ok(Checked {
        public_host: public_host.as_str().to_owned(),
        ssh_host: ssh_host.as_str().to_owned(),
        fingerprint: fingerprint.map(|f| f.as_str().to_owned()),
        config_path,
    })
}

async fn insert(pool: &PgPool, input: &ServerInput, actor: By<'_>) -> AppResult<ServerRow> {
    let Checked { public_host, ssh_host, fingerprint, config_path } = check(pool, input).await?;
    let specs = input.inbound_specs();
    let first = &specs[0];
    let inbounds = serde_json::to_value(&specs).map_err(|e| AppError::Internal(e.into()))?;
    let row = NewServer {
        name: &input.name,
        location_code: &input.location,
        public_host: &public_host,
        public_port: i32::from(first.port),
        ssh_host: &ssh_host,
        ssh_port: i32::from(input.ssh_port),
        ssh_user: &input.ssh_user,
        host_key_fingerprint: fingerprint.as_deref(),
        core: input.core,
        // what the previous release reads: the first inbound
        protocol: first.protocol,
        inbound_tag: &first.tag,
        inbounds: &inbounds,
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
    delete(pool, server.id, actor.into()).await
}

/// [`remove`] by id, for the admin API.
pub async fn remove_id(pool: &PgPool, id: i64, who: &Who) -> AppResult<()> {
    delete(pool, id, who.into()).await
}

async fn delete(pool: &PgPool, id: i64, actor: By<'_>) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    let server = db::servers::lock(&mut tx, id).await?.ok_or(AppError::NotFound("server"))?;
    let name = &server.name;
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
    enable(pool, server.id, enabled, actor.into()).await
}

/// [`set_enabled`] by id, for the admin API; the same state again changes nothing and records nothing.
pub async fn set_enabled_id(pool: &PgPool, id: i64, enabled: bool, who: &Who) -> AppResult<()> {
    enable(pool, id, enabled, who.into()).await
}

async fn enable(pool: &PgPool, id: i64, enabled: bool, actor: By<'_>) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    let server = db::servers::lock(&mut tx, id).await?.ok_or(AppError::NotFound("server"))?;
    if server.enabled == enabled {
        return Ok(());
    }
    db::servers::set_enabled(&mut *tx, server.id, enabled).await?;
    let action = if enabled { "server.enable" } else { "server.disable" };
    audit(&mut tx, actor, action, server.id, serde_json::json!({ "name": server.name })).await?;
    tx.commit().await?;
    Ok(())
}

async fn audit(
    tx: &mut sqlx::PgConnection,
    actor: By<'_>,
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
        source_ip: actor.ip,
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
        actor.into(),
        "server.pin_host_key",
        server.id,
        serde_json::json!({ "name": name, "fingerprint": fingerprint }),
    )
    .await?;
    tx.commit().await?;
    Ok(fingerprint)
}
