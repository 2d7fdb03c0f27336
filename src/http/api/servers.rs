//! Servers (`/servers`): list with load, one, register, change, enable/disable, delete, and test a node.
//! A restart command is never free shell text here: only `systemctl restart <unit>` or
//! `sudo -n systemctl restart <unit>` with a plain unit name, or null (the core's default).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Body, Caller, Page, Params, PathOf, Writer, page_request};
use crate::app::AppState;
use crate::db::servers::{ServerFilter, ServerView};
use crate::domain::inbound::{self, InboundSpec};
use crate::domain::page::Order;
use crate::domain::server::{Core, Health, Protocol};
use crate::error::AppResult;
use crate::http::Problem;
use crate::services::servers::{self, ServerChange, ServerInput, TestReport};

/// A node, with its load.
#[derive(Debug, Serialize, ToSchema)]
pub struct Server {
    pub id: i64,
    pub name: String,
    pub location: String,
    pub public_host: String,
    pub public_port: i32,
    pub ssh_host: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub host_key: Option<String>,
    pub core: Core,
    pub protocol: Protocol,
    pub inbound_tag: String,
    /// The client inbounds: a customer's seat is one client on each, with one share link per inbound.
    pub inbounds: Vec<InboundSpec>,
    pub api_port: i32,
    pub config_path: String,
    /// Most clients it takes.
    pub capacity: i32,
    /// Clients that should be on it now.
    pub active_clients: i64,
    /// New clients are placed on it.
    pub enabled: bool,
    /// Null: `sudo -n systemctl restart <core>`.
    pub restart_command: Option<String>,
    /// `unknown`, `ok`, `down` or `host_key_mismatch`, from the last time we talked to it.
    pub health: Health,
    pub health_detail: Option<String>,
    pub last_seen_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<ServerView> for Server {
    fn from(s: ServerView) -> Self {
        Server {
            id: s.id,
            name: s.name,
            location: s.location_code,
            public_host: s.public_host,
            public_port: s.public_port,
            ssh_host: s.ssh_host,
            ssh_port: s.ssh_port,
            ssh_user: s.ssh_user,
            host_key: s.host_key_fingerprint,
            core: s.core,
            protocol: s.protocol,
            inbounds: inbound::from_stored(&s.inbounds, s.protocol, &s.inbound_tag, s.public_port).unwrap_or_default(),
            inbound_tag: s.inbound_tag,
            api_port: s.api_port,
            config_path: s.config_path,
            capacity: s.capacity,
            active_clients: s.active_clients,
            enabled: s.enabled,
            restart_command: s.restart_command,
            health: s.health,
            health_detail: s.health_detail,
            last_seen_at: s.last_seen_at,
            created_at: s.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ServerQuery {
    /// A location code (`de`).
    pub location: Option<String>,
    pub enabled: Option<bool>,
    /// Rows per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// By id: `desc` (newest first, the default) or `asc`.
    pub order: Option<Order>,
}

/// Servers with their load, filtered (the filters combine).
#[utoipa::path(get, path = "/api/v1/servers", tag = "servers", params(ServerQuery),
    responses((status = 200, body = Page<Server>), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 422, body = Problem)))]
pub async fn list_servers(
    State(state): State<AppState>,
    _caller: Caller,
    Params(query): Params<ServerQuery>,
) -> AppResult<Json<Page<Server>>> {
    let page = page_request(query.limit, query.cursor.as_deref(), query.order)?;
    let filter = ServerFilter { location: query.location, enabled: query.enabled };
    let (rows, next) = servers::page(&state.pool, &filter, &page).await?;
    Ok(Json(Page::new(rows, next).map(Server::from)))
}

/// One server with its load (active clients against capacity) and last health.
#[utoipa::path(get, path = "/api/v1/servers/{id}", tag = "servers", params(("id" = i64, Path, description = "The server's id")),
    responses((status = 200, body = Server), (status = 401, body = Problem), (status = 404, body = Problem)))]
pub async fn get_server(
    State(state): State<AppState>,
    _caller: Caller,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<Server>> {
    Ok(Json(servers::view(&state.pool, id).await?.into()))
}

fn default_port() -> u16 {
    443
}
fn default_ssh_port() -> u16 {
    22
}
fn default_ssh_user() -> String {
    "vpnshop".into()
}
fn default_tag() -> String {
    "proxy".into()
}
fn default_api_port() -> u16 {
    10085
}
fn default_capacity() -> u32 {
    500
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateServer {
    /// 1–63 of `a-z 0-9 . _ -`.
    pub name: String,
    /// A location code of the catalogue.
    pub location: String,
    /// Host customers connect to (in share links).
    pub public_host: String,
    #[serde(default = "default_port")]
    pub public_port: u16,
    /// Host we SSH to (default: public_host).
    #[serde(default)]
    pub ssh_host: Option<String>,
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    #[serde(default = "default_ssh_user")]
    pub ssh_user: String,
    /// Pinned SSH host key fingerprint (`SHA256:…`).
    #[serde(default)]
    pub host_key: Option<String>,
    #[serde(default)]
    pub core: Option<Core>,
    #[serde(default)]
    pub protocol: Option<Protocol>,
    #[serde(default = "default_tag")]
    pub inbound_tag: String,
    #[serde(default = "default_api_port")]
    pub api_port: u16,
    /// Default `/etc/<core>/config.json`.
    #[serde(default)]
    pub config_path: Option<String>,
    #[serde(default = "default_capacity")]
    pub capacity: u32,
    /// `systemctl restart <unit>` or `sudo -n systemctl restart <unit>`; null: `sudo -n systemctl restart <core>`.
    #[serde(default)]
    pub restart_command: Option<String>,
    /// The node's base config template (default: built from the fields above).
    #[serde(default)]
    pub base_config: Option<serde_json::Value>,
    /// The client inbounds (default: one plain VMess TCP inbound from protocol, inbound_tag and public_port).
    #[serde(default)]
    pub inbounds: Vec<InboundSpec>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutInbounds {
    /// Every client inbound of the node, in link order (1–16; tags and ports unique).
    pub inbounds: Vec<InboundSpec>,
}

/// Replace a node's client inbounds. Its next sync (asked for now) rewrites its config with every client on
/// every inbound and restarts the core once; feeds then list one link per inbound.
#[utoipa::path(put, path = "/api/v1/servers/{id}/inbounds", tag = "servers", request_body = PutInbounds,
    params(("id" = i64, Path, description = "The server's id")),
    responses((status = 200, body = Server), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn put_inbounds(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<PutInbounds>,
) -> AppResult<Json<Server>> {
    servers::set_inbounds_by(&state.pool, id, &req.inbounds, &writer.who(), &state.settings.jobs).await?;
    Ok(Json(servers::view(&state.pool, id).await?.into()))
}

/// Register a node. Its host key is pinned when given (else pin it with `vpnshop server pin-key`).
#[utoipa::path(post, path = "/api/v1/servers", tag = "servers", request_body = CreateServer,
    responses((status = 201, body = Server), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)))]
pub async fn create_server(
    State(state): State<AppState>,
    writer: Writer,
    Body(req): Body<CreateServer>,
) -> AppResult<(StatusCode, Json<Server>)> {
    let input = ServerInput {
        name: req.name,
        location: req.location,
        public_host: req.public_host,
        public_port: req.public_port,
        ssh_host: req.ssh_host,
        ssh_port: req.ssh_port,
        ssh_user: req.ssh_user,
        host_key: req.host_key,
        core: req.core.unwrap_or(Core::V2ray),
        protocol: req.protocol.unwrap_or(Protocol::Vmess),
        inbound_tag: req.inbound_tag,
        api_port: req.api_port,
        config_path: req.config_path,
        capacity: req.capacity,
        restart_command: req.restart_command,
        base_config: req.base_config,
        inbounds: req.inbounds,
    };
    let row = servers::create(&state.pool, &input, &writer.who()).await?;
    Ok((StatusCode::CREATED, Json(servers::view(&state.pool, row.id).await?.into())))
}

/// `null` kept apart from absent: `Some(None)`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchServer {
    pub name: Option<String>,
    pub public_host: Option<String>,
    pub public_port: Option<u16>,
    pub ssh_host: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_user: Option<String>,
    pub api_port: Option<u16>,
    pub capacity: Option<u32>,
    /// `systemctl restart <unit>` or `sudo -n systemctl restart <unit>`; null: back to the core's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub restart_command: Option<Option<String>>,
}

/// Change a server's fields (absent ones stay), checked like a new server's.
#[utoipa::path(patch, path = "/api/v1/servers/{id}", tag = "servers", request_body = PatchServer,
    params(("id" = i64, Path, description = "The server's id")),
    responses((status = 200, body = Server), (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn patch_server(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
    Body(req): Body<PatchServer>,
) -> AppResult<Json<Server>> {
    let change = ServerChange {
        name: req.name,
        public_host: req.public_host,
        public_port: req.public_port,
        ssh_host: req.ssh_host,
        ssh_port: req.ssh_port,
        ssh_user: req.ssh_user,
        api_port: req.api_port,
        capacity: req.capacity,
        restart_command: req.restart_command,
    };
    Ok(Json(servers::update(&state.pool, id, &change, &writer.who()).await?.into()))
}

/// Place new clients on this server again. Enabling an enabled server changes nothing.
#[utoipa::path(post, path = "/api/v1/servers/{id}/enable", tag = "servers", params(("id" = i64, Path, description = "The server's id")),
    responses((status = 200, body = Server), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn enable_server(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<Server>> {
    servers::set_enabled_id(&state.pool, id, true, &writer.who()).await?;
    Ok(Json(servers::view(&state.pool, id).await?.into()))
}

/// Stop placing new clients on this server; its clients stay until their subscriptions end.
#[utoipa::path(post, path = "/api/v1/servers/{id}/disable", tag = "servers", params(("id" = i64, Path, description = "The server's id")),
    responses((status = 200, body = Server), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn disable_server(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<Server>> {
    servers::set_enabled_id(&state.pool, id, false, &writer.who()).await?;
    Ok(Json(servers::view(&state.pool, id).await?.into()))
}

/// Delete a server that never carried a subscription (409 otherwise: disable it instead).
#[utoipa::path(delete, path = "/api/v1/servers/{id}", tag = "servers", params(("id" = i64, Path, description = "The server's id")),
    responses((status = 204, description = "Deleted"), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn delete_server(
    State(state): State<AppState>,
    writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<StatusCode> {
    servers::remove_id(&state.pool, id, &writer.who()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check the node step by step, as `vpnshop server test` does: reach its sshd, compare its host key with the
/// pinned one (before logging in), log in, read its config, ask the core's API, read its traffic stats, check
/// isolation. Always 200 when the server exists: `ok` says whether every check passed, a failed check says why
/// and the later ones are `skipped`; an unreachable node is `ok: false` with `reach sshd` failed. Read-only.
/// Bounded by the request timeout.
#[utoipa::path(post, path = "/api/v1/servers/{id}/test", tag = "servers", params(("id" = i64, Path, description = "The server's id")),
    responses((status = 200, body = TestReport), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn test_server(
    State(state): State<AppState>,
    _writer: Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<TestReport>> {
    let limit = Duration::from_secs(state.settings.http.request_timeout_secs.saturating_sub(2).max(1));
    Ok(Json(servers::test(&state.nodes, id, limit).await?))
}
