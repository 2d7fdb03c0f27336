//! The `servers` table: the V2Ray/Xray nodes we provision onto.

use sqlx::PgExecutor;

use crate::domain::server::{Core, Health, Protocol};

#[derive(Debug, Clone, PartialEq)]
pub struct ServerRow {
    pub id: i64,
    pub name: String,
    pub location_code: String,
    pub public_host: String,
    pub public_port: i32,
    pub ssh_host: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub host_key_fingerprint: Option<String>,
    pub core: Core,
    pub protocol: Protocol,
    pub inbound_tag: String,
    /// The client inbounds (`domain::inbound::InboundSpec` list; empty: the legacy one from the columns above).
    pub inbounds: serde_json::Value,
    pub api_port: i32,
    pub config_path: String,
    pub capacity: i32,
    pub enabled: bool,
    pub health: Health,
    pub health_detail: Option<String>,
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The columns of a new server (already validated by the caller).
#[derive(Debug, Clone)]
pub struct NewServer<'a> {
    pub name: &'a str,
    pub location_code: &'a str,
    pub public_host: &'a str,
    pub public_port: i32,
    pub ssh_host: &'a str,
    pub ssh_port: i32,
    pub ssh_user: &'a str,
    pub host_key_fingerprint: Option<&'a str>,
    pub core: Core,
    pub protocol: Protocol,
    pub inbound_tag: &'a str,
    pub inbounds: &'a serde_json::Value,
    pub api_port: i32,
    pub config_path: &'a str,
    pub capacity: i32,
    pub restart_command: Option<&'a str>,
    pub base_config: Option<&'a serde_json::Value>,
}

pub async fn insert(db: impl PgExecutor<'_>, s: &NewServer<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"INSERT INTO servers (name, location_code, public_host, public_port, ssh_host, ssh_port, ssh_user,
                                host_key_fingerprint, core, protocol, inbound_tag, api_port, config_path, capacity,
                                restart_command, base_config, inbounds)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id"#,
        s.name,
        s.location_code,
        s.public_host,
        s.public_port,
        s.ssh_host,
        s.ssh_port,
        s.ssh_user,
        s.host_key_fingerprint,
        s.core.as_str(),
        s.protocol.as_str(),
        s.inbound_tag,
        s.api_port,
        s.config_path,
        s.capacity,
        s.restart_command,
        s.base_config,
        s.inbounds,
    )
    .fetch_one(db)
    .await
}

pub async fn list(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<ServerRow>> {
    sqlx::query_as!(
        ServerRow,
        r#"SELECT id, name, location_code, public_host, public_port, ssh_host, ssh_port, ssh_user,
                  host_key_fingerprint, core AS "core: Core", protocol AS "protocol: Protocol", inbound_tag, inbounds,
                  api_port, config_path, capacity, enabled, health AS "health: Health", health_detail, last_seen_at
             FROM servers ORDER BY location_code, name"#
    )
    .fetch_all(db)
    .await
}

pub async fn find_by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<ServerRow>> {
    sqlx::query_as!(
        ServerRow,
        r#"SELECT id, name, location_code, public_host, public_port, ssh_host, ssh_port, ssh_user,
                  host_key_fingerprint, core AS "core: Core", protocol AS "protocol: Protocol", inbound_tag, inbounds,
                  api_port, config_path, capacity, enabled, health AS "health: Health", health_detail, last_seen_at
             FROM servers WHERE name = $1"#,
        name
    )
    .fetch_optional(db)
    .await
}

/// Whether any subscription or client (live or historic) refers to the server.
pub async fn is_referenced(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM subscriptions WHERE server_id = $1)
               OR EXISTS (SELECT 1 FROM clients WHERE server_id = $1) AS "referenced!""#,
        id
    )
    .fetch_one(db)
    .await
}

pub async fn delete(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<bool> {
    Ok(sqlx::query!("DELETE FROM servers WHERE id = $1", id).execute(db).await?.rows_affected() == 1)
}

pub async fn set_enabled(db: impl PgExecutor<'_>, id: i64, enabled: bool) -> sqlx::Result<bool> {
    let done = sqlx::query!("UPDATE servers SET enabled = $2, updated_at = now() WHERE id = $1", id, enabled)
        .execute(db)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Per location: enabled healthy-enough servers, and how many more clients they can take.
pub async fn availability(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(String, i64, i64)>> {
    let rows = sqlx::query!(
        r#"SELECT s.location_code, count(*) AS "servers!",
                  COALESCE(sum(GREATEST(s.capacity - (SELECT count(*) FROM clients c
                                                       WHERE c.server_id = s.id AND c.desired = 'present'), 0)), 0)::int8
                      AS "free!"
             FROM servers s
            WHERE s.enabled AND s.health <> 'host_key_mismatch'
            GROUP BY s.location_code ORDER BY s.location_code"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.location_code, r.servers, r.free)).collect())
}

/// What the provisioner needs of a node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeRow {
    pub id: i64,
    pub name: String,
    pub public_host: String,
    pub public_port: i32,
    pub ssh_host: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub host_key_fingerprint: Option<String>,
    pub core: Core,
    pub protocol: Protocol,
    pub inbound_tag: String,
    pub inbounds: serde_json::Value,
    pub api_port: i32,
    pub config_path: String,
    pub restart_command: Option<String>,
    pub base_config: Option<serde_json::Value>,
    pub applied_base_hash: Option<String>,
    pub applied_config_hash: Option<String>,
    pub users_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_restart_at: Option<chrono::DateTime<chrono::Utc>>,
    pub health: Health,
}

pub async fn node(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<NodeRow>> {
    sqlx::query_as!(
        NodeRow,
        r#"SELECT id, name, public_host, public_port, ssh_host, ssh_port, ssh_user, host_key_fingerprint,
                  core AS "core: Core", protocol AS "protocol: Protocol", inbound_tag, inbounds, api_port, config_path,
                  restart_command, base_config, applied_base_hash, applied_config_hash, users_synced_at,
                  last_restart_at, health AS "health: Health"
             FROM servers WHERE id = $1"#,
        id
    )
    .fetch_optional(db)
    .await
}

/// Nodes that carry (or should carry) clients: enabled ones and any with clients on them.
pub async fn active_node_ids(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"SELECT id AS "id!" FROM servers s
            WHERE s.enabled OR EXISTS (SELECT 1 FROM clients c WHERE c.server_id = s.id AND c.node_state = 'present')
            ORDER BY id"#
    )
    .fetch_all(db)
    .await
}

/// Records the result of talking to a node.
pub async fn set_health(db: impl PgExecutor<'_>, id: i64, health: Health, detail: Option<&str>) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE servers SET health = $2, health_detail = $3,
                  last_seen_at = CASE WHEN $2 = 'ok' THEN now() ELSE last_seen_at END
            WHERE id = $1"#,
        id,
        health.as_str(),
        detail
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn record_config_written(
    db: impl PgExecutor<'_>,
    id: i64,
    base_hash: &str,
    config_hash: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE servers SET applied_base_hash = $2, applied_config_hash = $3, config_written_at = now()
            WHERE id = $1"#,
        id,
        base_hash,
        config_hash
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn record_users_synced(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE servers SET users_synced_at = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}

/// The core run our stored raw counters belong to: the core's uptime when we last read it, and when that was
/// (database clock). `None`: not known (never read yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreRun {
    pub read_at: chrono::DateTime<chrono::Utc>,
    pub uptime_secs: i64,
}

/// The node's stored core run and when we last restarted its core, row-locked for the caller's transaction
/// (two folds of one node never overlap).
pub async fn lock_core_run(
    conn: &mut sqlx::PgConnection,
    id: i64,
) -> sqlx::Result<(Option<CoreRun>, Option<chrono::DateTime<chrono::Utc>>)> {
    let row = sqlx::query!(
        "SELECT core_read_at, core_uptime_secs, last_restart_at FROM servers WHERE id = $1 FOR UPDATE",
        id
    )
    .fetch_one(conn)
    .await?;
    let run = row.core_read_at.zip(row.core_uptime_secs).map(|(read_at, uptime_secs)| CoreRun { read_at, uptime_secs });
    Ok((run, row.last_restart_at))
}

pub async fn set_core_run(db: impl PgExecutor<'_>, id: i64, run: Option<CoreRun>) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE servers SET core_read_at = $2, core_uptime_secs = $3 WHERE id = $1",
        id,
        run.map(|r| r.read_at),
        run.map(|r| r.uptime_secs)
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Stamps a metering pass; returns how long ago the previous one was (database clock), if there was one.
pub async fn record_metered(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<f64>> {
    sqlx::query_scalar!(
        r#"UPDATE servers s SET metered_at = now()
             FROM (SELECT metered_at AS prev FROM servers WHERE id = $1) p
            WHERE s.id = $1
        RETURNING EXTRACT(EPOCH FROM (now() - p.prev))::float8 AS "since""#,
        id
    )
    .fetch_one(db)
    .await
}

/// Whether the last restart we caused was at least `min_gap_secs` ago (or there was none), by the database
/// clock that stamped it.
/// Seconds until the node's core may be restarted again, `min_gap_secs` after the last restart (0: now).
pub async fn restart_wait(db: impl PgExecutor<'_>, id: i64, min_gap_secs: f64) -> sqlx::Result<f64> {
    sqlx::query_scalar!(
        r#"SELECT GREATEST(0, COALESCE(EXTRACT(EPOCH FROM last_restart_at + make_interval(secs => $2) - now()), 0))::float8
                  AS "wait!"
             FROM servers WHERE id = $1"#,
        id,
        min_gap_secs
    )
    .fetch_one(db)
    .await
}

pub async fn record_restart(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!("UPDATE servers SET last_restart_at = now() WHERE id = $1", id).execute(db).await?;
    Ok(())
}

/// Whether the node's certificates are due to be read again: never read, or last read `every_secs` ago or more
/// (database clock).
pub async fn tls_check_due(db: impl PgExecutor<'_>, id: i64, every_secs: f64) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT tls_checked_at IS NULL OR tls_checked_at <= now() - make_interval(secs => $2) AS "due!"
             FROM servers WHERE id = $1"#,
        id,
        every_secs
    )
    .fetch_one(db)
    .await
}

/// Records a reading of the node's certificates: the earliest notAfter over its TLS inbounds (`None`: it has
/// none), read now.
pub async fn record_tls(
    db: impl PgExecutor<'_>,
    id: i64,
    not_after: Option<chrono::DateTime<chrono::Utc>>,
) -> sqlx::Result<()> {
    sqlx::query!("UPDATE servers SET tls_not_after = $2, tls_checked_at = now() WHERE id = $1", id, not_after)
        .execute(db)
        .await?;
    Ok(())
}

/// Marks the certificate ending at `not_after` as alerted; `false` when it already was (someone else sent it).
pub async fn claim_tls_alert(
    db: impl PgExecutor<'_>,
    id: i64,
    not_after: chrono::DateTime<chrono::Utc>,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "UPDATE servers SET tls_alerted_for = $2 WHERE id = $1 AND tls_alerted_for IS DISTINCT FROM $2",
        id,
        not_after
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

pub async fn pin_host_key(db: impl PgExecutor<'_>, id: i64, fingerprint: &str) -> sqlx::Result<()> {
    sqlx::query!(
        r#"UPDATE servers SET host_key_fingerprint = $2, health = CASE WHEN health = 'host_key_mismatch' THEN 'unknown' ELSE health END,
                  updated_at = now() WHERE id = $1"#,
        id,
        fingerprint
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn lock(conn: &mut sqlx::PgConnection, id: i64) -> sqlx::Result<Option<ServerRow>> {
    sqlx::query_as!(
        ServerRow,
        r#"SELECT id, name, location_code, public_host, public_port, ssh_host, ssh_port, ssh_user,
                  host_key_fingerprint, core AS "core: Core", protocol AS "protocol: Protocol", inbound_tag, inbounds,
                  api_port, config_path, capacity, enabled, health AS "health: Health", health_detail, last_seen_at
             FROM servers WHERE id = $1 FOR UPDATE"#,
        id
    )
    .fetch_optional(conn)
    .await
}

/// A server as the admin API shows it, with its load (clients that should be on it).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct ServerView {
    pub id: i64,
    pub name: String,
    pub location_code: String,
    pub public_host: String,
    pub public_port: i32,
    pub ssh_host: String,
    pub ssh_port: i32,
    pub ssh_user: String,
    pub host_key_fingerprint: Option<String>,
    pub core: Core,
    pub protocol: Protocol,
    pub inbound_tag: String,
    pub inbounds: serde_json::Value,
    pub api_port: i32,
    pub config_path: String,
    pub capacity: i32,
    pub enabled: bool,
    pub restart_command: Option<String>,
    pub health: Health,
    pub health_detail: Option<String>,
    pub last_seen_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub active_clients: i64,
    /// When its users were last made equal to what the database wants.
    pub users_synced_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Up + down bytes its clients moved (accumulated, every client it ever had).
    pub traffic_bytes: i64,
}

const SERVER_VIEW: &str = "SELECT s.id, s.name, s.location_code, s.public_host, s.public_port, s.ssh_host, s.ssh_port,
        s.ssh_user, s.host_key_fingerprint, s.core, s.protocol, s.inbound_tag, s.inbounds, s.api_port, s.config_path, s.capacity,
        s.enabled, s.restart_command, s.health, s.health_detail, s.last_seen_at, s.created_at,
        (SELECT count(*) FROM clients c WHERE c.server_id = s.id AND c.desired = 'present') AS active_clients,
        s.users_synced_at,
        (SELECT COALESCE(sum(t.up_bytes + t.down_bytes), 0)::int8
           FROM clients c JOIN traffic t ON t.client_id = c.id WHERE c.server_id = s.id) AS traffic_bytes
   FROM servers s WHERE TRUE";

/// How to find servers: every given filter must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerFilter {
    pub location: Option<String>,
    pub enabled: Option<bool>,
}

/// One page of servers by id.
pub async fn page(
    db: impl PgExecutor<'_>,
    filter: &ServerFilter,
    page: &crate::domain::page::PageRequest,
) -> sqlx::Result<Vec<ServerView>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(SERVER_VIEW);
    if let Some(location) = &filter.location {
        q.push(" AND s.location_code = ").push_bind(location.clone());
    }
    if let Some(enabled) = filter.enabled {
        q.push(" AND s.enabled = ").push_bind(enabled);
    }
    if let Some(after) = page.after {
        q.push(" AND s.id ").push(page.op()).push(" ").push_bind(after.id);
    }
    q.push(" ORDER BY s.id ").push(page.dir()).push(" LIMIT ").push_bind(page.fetch());
    q.build_query_as().fetch_all(db).await
}

pub async fn view(db: impl PgExecutor<'_>, id: i64) -> sqlx::Result<Option<ServerView>> {
    let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(SERVER_VIEW);
    q.push(" AND s.id = ").push_bind(id);
    q.build_query_as().fetch_optional(db).await
}

/// The columns an operator may change on a registered server (already validated by the caller).
#[derive(Debug, Clone)]
pub struct ServerUpdate<'a> {
    pub name: &'a str,
    pub public_host: &'a str,
    pub public_port: i32,
    pub ssh_host: &'a str,
    pub ssh_port: i32,
    pub ssh_user: &'a str,
    pub api_port: i32,
    pub capacity: i32,
    pub restart_command: Option<&'a str>,
}

pub async fn update(db: impl PgExecutor<'_>, id: i64, s: &ServerUpdate<'_>) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        r#"UPDATE servers SET name = $2, public_host = $3, public_port = $4, ssh_host = $5, ssh_port = $6, ssh_user = $7,
                  api_port = $8, capacity = $9, restart_command = $10, updated_at = now()
            WHERE id = $1"#,
        id,
        s.name,
        s.public_host,
        s.public_port,
        s.ssh_host,
        s.ssh_port,
        s.ssh_user,
        s.api_port,
        s.capacity,
        s.restart_command,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Replaces a node's client inbounds, with the legacy columns (what the previous release reads) from the first.
pub async fn set_inbounds(
    db: impl PgExecutor<'_>,
    id: i64,
    inbounds: &serde_json::Value,
    first: (Protocol, &str, i32),
) -> sqlx::Result<bool> {
    let (protocol, tag, port) = first;
    let done = sqlx::query!(
        r#"UPDATE servers SET inbounds = $2, protocol = $3, inbound_tag = $4, public_port = $5, updated_at = now()
            WHERE id = $1"#,
        id,
        inbounds,
        protocol.as_str(),
        tag,
        port,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}
