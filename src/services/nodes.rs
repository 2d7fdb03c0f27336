//! Converging nodes to the database: add/remove users through the core's API, keep the config file equal to
//! the desired state, repair drift after restarts, meter traffic, enforce data caps and hard cuts, read the
//! TLS certificates of its inbounds (`certs`). One operation per node at a time (a Postgres advisory lock held
//! on a lock connection, `db::locks`), across all instances.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::config::{JobSettings, ProvisionSettings};
use crate::db::locks::{HeldLock, Locks};
use crate::db::{self, servers::NodeRow};
use crate::domain::inbound::{self, InboundSpec};
use crate::domain::server::{Core, Health};
use crate::domain::status::Presence;
use crate::error::AppError;
use crate::provision::isolation::{self, AllowedDestination};
use crate::provision::render::{self, ClientInbound, NodeParams, RenderError};
use crate::provision::{NodeApi, NodeError, NodeTarget, NodeUser};
use crate::services::notify;
use crate::services::subscriptions;

pub const RECONCILE_KIND: &str = "node.reconcile";

/// `servers.applied_base_hash` while a new base is written but the core has not restarted onto it (never a real
/// hash): the next sync rewrites and restarts again.
const RESTART_PENDING: &str = "restart-pending";
pub const METER_KIND: &str = "node.meter";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// Another worker is working on this node right now.
    #[error("node is busy")]
    Busy,
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The node's config cannot be rendered (a bad base template): an operator must fix it.
    #[error("cannot render the node's config: {0}")]
    Render(#[from] RenderError),
    #[error(transparent)]
    App(#[from] AppError),
}

impl From<sqlx::Error> for SyncError {
    fn from(e: sqlx::Error) -> Self {
        SyncError::App(e.into())
    }
}

/// What one sync changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub removed: usize,
    pub activated: usize,
    pub config_written: bool,
    pub restarted: bool,
    pub strays_removed: usize,
}

/// What one metering pass saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MeterReport {
    pub bytes: u64,
    pub limited: usize,
    pub reminded: usize,
    /// Removed clients whose counters still grew (live sessions).
    pub live_after_removal: usize,
    pub restarted: bool,
}

/// The node service.
#[derive(Clone)]
pub struct Nodes {
    pub pool: PgPool,
    /// Where node locks are held (connections of their own).
    pub locks: Locks,
    pub api: Arc<dyn NodeApi>,
    pub settings: ProvisionSettings,
    pub jobs: JobSettings,
}

/// The restart command used when a node has none of its own.
pub fn default_restart_command(core: Core) -> String {
    format!("sudo -n systemctl restart {core}")
}

/// The node's client inbounds, from its row (see [`inbound::from_stored`]).
pub fn inbounds(row: &NodeRow) -> Result<Vec<InboundSpec>, RenderError> {
    inbound::from_stored(&row.inbounds, row.protocol, &row.inbound_tag, row.public_port)
        .map_err(|e| RenderError::InvalidParams(e.to_string()))
}

/// How to reach a node, from its row. A row whose stored inbounds cannot be read has none here (adding users
/// then does nothing); rendering its config fails with the reason (see [`base_config`]).
pub fn target(row: &NodeRow) -> NodeTarget {
    let inbounds = inbounds(row).unwrap_or_default().iter().map(|spec| ClientInbound::of(spec, row.core)).collect();
    NodeTarget {
        server_id: row.id,
        name: row.name.clone(),
        ssh_host: row.ssh_host.clone(),
        ssh_port: u16::try_from(row.ssh_port).unwrap_or(22),
        ssh_user: row.ssh_user.clone(),
        host_key_fingerprint: row.host_key_fingerprint.clone(),
        core: row.core,
        api_port: u16::try_from(row.api_port).unwrap_or(10085),
        inbounds,
        config_path: row.config_path.clone(),
        restart_command: row.restart_command.clone().unwrap_or_else(|| default_restart_command(row.core)),
    }
}

/// The node's base config: the operator's template, or the built-in default for its parameters, always
/// isolated (customers never reach the node itself or private networks, but for `allowed` destinations).
pub fn base_config(row: &NodeRow, allowed: &[AllowedDestination]) -> Result<serde_json::Value, RenderError> {
    let mut base = match &row.base_config {
        Some(base) => base.clone(),
        None => render::default_base(&NodeParams {
            core: row.core,
            api_port: u16::try_from(row.api_port).unwrap_or(10085),
            inbounds: inbounds(row)?,
        })?,
    };
    isolation::isolate(&mut base, allowed, &own_addresses(row))?;
    Ok(base)
}

/// The node's own addresses as registered (its public and SSH hosts, when given as addresses): customers must
/// not reach its services through them. Host names are not resolved here (a lookup that changes or fails
/// would change the base and restart the core); register nodes by address to have them blocked too.
pub fn own_addresses(row: &NodeRow) -> Vec<std::net::IpAddr> {
    let mut own: Vec<std::net::IpAddr> =
        [&row.public_host, &row.ssh_host].iter().filter_map(|h| h.trim_matches(['[', ']']).parse().ok()).collect();
    own.sort();
    own.dedup();
    own
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The advisory-lock key of a node: one operation per node at a time, across all instances.
fn lock_key(server_id: i64) -> i64 {
    db::advisory_key(&format!("node.{server_id}"))
}

impl Nodes {
    /// Takes the node's lock if it is free (on a lock connection: no pool connection waits on the node).
    async fn lock(&self, server_id: i64) -> Result<HeldLock, SyncError> {
        self.locks.try_lock(lock_key(server_id)).await?.ok_or(SyncError::Busy)
    }

    /// Waits (up to `limit`) for the node's lock: a customer's sync should follow the one in progress at once
    /// rather than come back later.
    async fn lock_waiting(&self, server_id: i64, limit: std::time::Duration) -> Result<HeldLock, SyncError> {
        self.locks.lock_within(lock_key(server_id), limit).await?.ok_or(SyncError::Busy)
    }

    async fn load(&self, server_id: i64) -> Result<NodeRow, SyncError> {
        Ok(db::servers::node(&self.pool, server_id).await?.ok_or(AppError::NotFound("server"))?)
    }

    /// Records how talking to the node went (health, metrics, an alert on a changed host key).
    pub async fn record(&self, row: &NodeRow, result: &Result<(), &NodeError>) {
        let (health, detail) = match result {
            Ok(()) => (Health::Ok, None),
            Err(NodeError::HostKeyMismatch { .. }) => (Health::HostKeyMismatch, Some(result_text(result))),
            Err(_) => (Health::Down, Some(result_text(result))),
        };
        // vpnshop_node_up is read from servers.health (metrics::shop), the same on every instance
        if let Err(e) = db::servers::set_health(&self.pool, row.id, health, detail.as_deref()).await {
            tracing::warn!(node = %row.name, error = %e, "could not record node health");
        }
        if health == Health::HostKeyMismatch && row.health != Health::HostKeyMismatch {
            tracing::error!(node = %row.name, detail = detail.as_deref().unwrap_or(""), "node host key changed: all work on it stops");
            let text = format!(
                "Node {} presented a different SSH host key. All work on it is stopped. If the node was rebuilt, \
                 check the new key and pin it again; otherwise treat it as compromised.",
                row.name
            );
            let key = format!("hostkey:{}:{}", row.id, Utc::now().format("%Y%m%d"));
            if let Err(e) = notify::enqueue_admin_alert(&self.pool, &key, &text, &self.jobs).await {
                tracing::warn!(error = %e, "could not enqueue the host key alert");
            }
        }
    }

    async fn checked<T>(&self, row: &NodeRow, op: &'static str, result: Result<T, NodeError>) -> Result<T, SyncError> {
        let label = if result.is_ok() { "ok" } else { "error" };
        metrics::counter!("vpnshop_node_operations_total", "node" => row.name.clone(), "op" => op, "result" => label)
            .increment(1);
        match result {
            Ok(v) => Ok(v),
            Err(e) => {
                self.record(row, &Err(&e)).await;
                Err(e.into())
            }
        }
    }

    /// Pushes every pending change of one node: adds wanted clients, removes unwanted ones (snapshotting
    /// their counters first), activates subscriptions whose clients are all on the node, and rewrites the
    /// config file when it differs.
    pub async fn apply(&self, server_id: i64) -> Result<SyncReport, SyncError> {
        let lock = self.lock_waiting(server_id, std::time::Duration::from_secs(10)).await?;
        let result = async {
            let row = self.load(server_id).await?;
            let report = self.apply_locked(&row, false).await?;
            self.record(&row, &Ok(())).await;
            Ok(report)
        }
        .await;
        lock.release().await;
        result
    }

    async fn apply_locked(&self, row: &NodeRow, force_write: bool) -> Result<SyncReport, SyncError> {
        let node = target(row);
        let mut report = SyncReport::default();
        let pending = db::clients::out_of_sync_on(&self.pool, row.id).await?;
        let (adds, removes): (Vec<_>, Vec<_>) = pending.into_iter().partition(|c| c.desired == Presence::Present);
        if self.base_changed(row, &node).await? {
            // new inbounds (or other base changes): the running core may not have the inbounds the API would
            // name, so the file (every wanted client on every inbound) and one restart do it all; the restart
            // takes the counters first, so what removed clients used is kept
            let (written, restarted) = self.write_config(row, &node, true).await?;
            report.config_written = written;
            report.restarted = restarted;
            let add_ids: Vec<i64> = adds.iter().map(|c| c.id).collect();
            db::clients::mark_on_node(&self.pool, &add_ids, true).await?;
            let remove_ids: Vec<i64> = removes.iter().map(|c| c.id).collect();
            db::clients::mark_on_node(&self.pool, &remove_ids, false).await?;
            (report.added, report.removed) = (adds.len(), removes.len());
            for sub in db::subscriptions::pending_on(&self.pool, row.id).await? {
                if subscriptions::activate_if_on_node(&self.pool, sub, &self.jobs).await? {
                    report.activated += 1;
                }
            }
            return Ok(report);
        }
        for c in &adds {
            let user = NodeUser { uuid: c.uuid, email: c.email.clone() };
            self.checked(row, "add_user", self.api.add_user(&node, &user).await).await?;
        }
        let add_ids: Vec<i64> = adds.iter().map(|c| c.id).collect();
        db::clients::mark_on_node(&self.pool, &add_ids, true).await?;
        report.added = adds.len();

        if !removes.is_empty() {
            for c in &removes {
                self.checked(row, "remove_user", self.api.remove_user(&node, &c.email).await).await?;
            }
            // what they used up to now is theirs; anything after this is a session that outlived removal
            let reading = self.read_counters(row, &node).await?;
            self.fold(row, &reading).await?;
            let ids: Vec<i64> = removes.iter().map(|c| c.id).collect();
            db::clients::mark_on_node(&self.pool, &ids, false).await?;
            report.removed = removes.len();
        }

        // the file first: a customer is only told once a restart of the core would keep their client
        let (written, restarted) = self.write_config(row, &node, force_write).await?;
        report.config_written = written;
        report.restarted = restarted;
        // every pending subscription on this node, not only those added now: when an earlier attempt put the
        // clients on the node and then failed (writing the file, say), its retry has nothing to add but must
        // still open them
        let mut subs: HashSet<i64> = adds.iter().map(|c| c.subscription_id).collect();
        subs.extend(db::subscriptions::pending_on(&self.pool, row.id).await?);
        for sub in subs {
            if subscriptions::activate_if_on_node(&self.pool, sub, &self.jobs).await? {
                report.activated += 1;
            }
        }
        Ok(report)
    }

    /// Waits (up to 5 s) until a restarted core's API answers again, so the next operation on the node and the
    /// customer told their service is ready do not meet a core still starting (it takes ~0.1–0.3 s). A core
    /// that stays down is the next operation's error to report, not this one's.
    async fn wait_for_core(&self, row: &NodeRow, node: &NodeTarget) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.api.core_uptime(node).await {
                Ok(_) => return,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    tracing::warn!(node = %row.name, error = %e, "the core's API does not answer after a restart");
                    return;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
    }

    /// Whether the node's base (everything but the users: its inbounds, ports, isolation) differs from the one
    /// we last wrote, or, on a node we never wrote to, from the file it runs (so users are never pushed through
    /// the API into inbounds the running core does not have, or has in another protocol).
    async fn base_changed(&self, row: &NodeRow, node: &NodeTarget) -> Result<bool, SyncError> {
        let ours = render::base_hash(&base_config(row, &self.settings.allow_private_destinations)?);
        if let Some(applied) = &row.applied_base_hash {
            return Ok(ours != *applied);
        }
        let running = self.checked(row, "read_config", self.api.read_config(node).await).await?;
        Ok(running.and_then(|t| render::parse_config(&t).ok()).map(|v| render::base_hash(&v)) != Some(ours))
    }

    /// Rewrites the node's file when the desired config differs from the last one written (or `force`).
    /// Restarts the core only when the base (everything but the users) changed. Returns (written, restarted).
    async fn write_config(&self, row: &NodeRow, node: &NodeTarget, force: bool) -> Result<(bool, bool), SyncError> {
        let base = base_config(row, &self.settings.allow_private_destinations)?;
        let users: Vec<NodeUser> = db::clients::desired_on(&self.pool, row.id)
            .await?
            .into_iter()
            .map(|c| NodeUser { uuid: c.uuid, email: c.email })
            .collect();
        if node.inbounds.is_empty() {
            // the stored inbounds cannot be read: say why instead of writing a file without clients
            inbounds(row)?;
        }
        let text = render::render(&base, &node.inbounds, &users)?;
        let config_hash = sha256_hex(&text);
        if !force && row.applied_config_hash.as_deref() == Some(config_hash.as_str()) {
            return Ok((false, false));
        }
        let base_hash = render::base_hash(&base);
        let running_base = match &row.applied_base_hash {
            Some(hash) => Some(hash.clone()),
            // never written by us: compare with what the node runs now
            None => self
                .checked(row, "read_config", self.api.read_config(node).await)
                .await?
                .and_then(|t| render::parse_config(&t).ok())
                .map(|v| render::base_hash(&v)),
        };
        let restart = running_base.as_deref() != Some(base_hash.as_str());
        if restart {
            // until the core has restarted onto it, the new file is not what runs: should the write or the restart
            // fail (or we die in between), the next sync must not take the file for the running base
            db::servers::record_config_written(&self.pool, row.id, RESTART_PENDING, "").await?;
        }
        self.checked(row, "write_config", self.api.write_config(node, &text).await).await?;
        if restart {
            self.restart(row, node, "base_config_changed").await?;
        }
        db::servers::record_config_written(&self.pool, row.id, &base_hash, &config_hash).await?;
        Ok((true, restart))
    }

    async fn restart(&self, row: &NodeRow, node: &NodeTarget, reason: &'static str) -> Result<(), SyncError> {
        tracing::warn!(node = %row.name, reason, "restarting the core");
        // a restart zeroes the counters: take what they hold first
        let reading = self.read_counters(row, node).await?;
        self.fold(row, &reading).await?;
        self.checked(row, "restart", self.api.restart_core(node).await).await?;
        self.wait_for_core(row, node).await;
        // the next reading is of a new run (a smaller uptime) and counts everyone from zero, the neighbours of a
        // cut-off client too; had the command not really restarted the core, it reads the same run on
        let mut tx = self.pool.begin().await?;
        db::servers::record_restart(&mut *tx, row.id).await?;
        // it started from the file we keep equal to the desired state
        db::servers::record_users_synced(&mut *tx, row.id).await?;
        tx.commit().await?;
        metrics::counter!("vpnshop_node_restarts_total", "node" => row.name.clone(), "reason" => reason).increment(1);
        Ok(())
    }

    /// Repairs drift: a core that restarted since our last full sync gets every user back, users on the node
    /// (in its file or its counters) that should not be there are removed, and a file edited behind our back
    /// is rewritten.
    pub async fn reconcile(&self, server_id: i64) -> Result<SyncReport, SyncError> {
        let lock = self.lock(server_id).await?;
        let result = self.reconcile_locked(server_id).await;
        lock.release().await;
        result
    }

    async fn reconcile_locked(&self, server_id: i64) -> Result<SyncReport, SyncError> {
        let row = self.load(server_id).await?;
        let node = target(&row);
        let uptime = self.checked(&row, "uptime", self.api.core_uptime(&node).await).await?;
        // the database's clock: `users_synced_at` was stamped by it
        let started = db::now(&self.pool).await? - chrono::Duration::from_std(uptime).unwrap_or_default();
        let restarted = row.users_synced_at.is_none_or(|synced| started > synced);
        if restarted {
            // the core only has what its file had: push every wanted user again (adding is idempotent)
            db::clients::mark_all_desired_unsynced(&self.pool, row.id).await?;
        }
        let file = self.checked(&row, "read_config", self.api.read_config(&node).await).await?;
        let counters = self.checked(&row, "user_counters", self.api.user_counters(&node).await).await?;
        let desired: HashSet<String> =
            db::clients::desired_on(&self.pool, row.id).await?.into_iter().map(|c| c.email).collect();
        let mut seen: HashSet<String> = counters.iter().map(|(email, _)| email.clone()).collect();
        if let Some(text) = &file {
            for inbound in &node.inbounds {
                seen.extend(render::clients_in(text, &inbound.tag).unwrap_or_default().into_iter().map(|u| u.email));
            }
        }
        let mut strays = 0;
        // a base change rewrites the file and restarts the core (below): strays go with it
        let rewrite = self.base_changed(&row, &node).await?;
        for email in seen.difference(&desired).filter(|_| !rewrite) {
            self.checked(&row, "remove_user", self.api.remove_user(&node, email).await).await?;
            strays += 1;
        }
        // before the config is written: a certificate the core refuses (missing, say) is still read and reported
        self.check_certificates(&row, &node).await;
        let drifted = file.as_deref().map(sha256_hex) != row.applied_config_hash;
        let mut report = self.apply_locked(&row, drifted).await?;
        report.strays_removed = strays;
        db::servers::record_users_synced(&self.pool, row.id).await?;
        self.record(&row, &Ok(())).await;
        Ok(report)
    }
}

fn result_text(result: &Result<(), &NodeError>) -> String {
    match result {
        Ok(()) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[path = "nodes_meter.rs"]
mod meter;

#[path = "nodes_certs.rs"]
pub mod certs;

#[path = "nodes_probe.rs"]
pub mod probe;
