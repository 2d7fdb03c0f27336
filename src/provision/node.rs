//! The node as the provisioner sees it: a small trait over "SSH + the core's API", and its value types.

use std::time::Duration;

use chrono::{DateTime, Utc};

use uuid::Uuid;

use super::render::ClientInbound;
use crate::domain::server::Core;

/// Everything needed to reach and drive one node (built from a `servers` row plus settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTarget {
    pub server_id: i64,
    pub name: String,
    pub ssh_host: String,
    pub ssh_port: u16,
    pub ssh_user: String,
    /// Pinned `SHA256:…` fingerprint; `None` refuses to connect (pin first, or trust on first use explicitly).
    pub host_key_fingerprint: Option<String>,
    pub core: Core,
    /// The core's gRPC API port on the node's loopback.
    pub api_port: u16,
    /// The inbounds every client lives in (a seat is one client on each of them).
    pub inbounds: Vec<ClientInbound>,
    /// Absolute path of the core's config file on the node.
    pub config_path: String,
    /// Shell command that restarts the core (e.g. `sudo -n systemctl restart v2ray`).
    pub restart_command: String,
}

/// One client (seat) as the core knows it: the email tag names it in stats and removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUser {
    pub uuid: Uuid,
    pub email: String,
}

/// Raw traffic counters of one email tag since the core started (they reset when it restarts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserCounter {
    pub uplink: u64,
    pub downlink: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    /// Cannot reach the node (connection refused, timeout, SSH or channel failure). Retry later.
    #[error("node unreachable: {0}")]
    Unreachable(String),
    /// The node's SSH host key is not the pinned one: stop all work on it and alert an operator.
    #[error("host key mismatch: pinned {expected}, node presented {presented}")]
    HostKeyMismatch { expected: String, presented: String },
    /// No host key is pinned for this node.
    #[error("no host key pinned for this node; add one with --host-key or --trust-host-key")]
    HostKeyNotPinned,
    /// SSH authentication with our key failed.
    #[error("SSH login refused: {0}")]
    AuthFailed(String),
    /// The core's API answered with an error (other than "already exists"/"not found", which are success).
    #[error("core API error: {0}")]
    Api(String),
    /// A command on the node failed (config test, move, restart), with its output.
    #[error("command failed on node: {0}")]
    Command(String),
}

/// The operations the provisioner needs from a node. Every operation is safe to repeat.
#[async_trait::async_trait]
pub trait NodeApi: Send + Sync {
    /// Adds a user to every inbound at runtime (no restart). "Already exists" is success.
    async fn add_user(&self, node: &NodeTarget, user: &NodeUser) -> Result<(), NodeError>;

    /// Removes a user from every inbound at runtime. "Not found" is success.
    async fn remove_user(&self, node: &NodeTarget, email: &str) -> Result<(), NodeError>;

    /// Every user counter on the node (`user>>>{email}>>>traffic>>>uplink|downlink`), read without reset.
    /// Emails with no traffic yet may be missing.
    async fn user_counters(&self, node: &NodeTarget) -> Result<Vec<(String, UserCounter)>, NodeError>;

    /// How long the core has been running (from its system stats); a restart shows as a small uptime.
    async fn core_uptime(&self, node: &NodeTarget) -> Result<Duration, NodeError>;

    /// The current config file, or `None` if it does not exist.
    async fn read_config(&self, node: &NodeTarget) -> Result<Option<String>, NodeError>;

    /// Writes the config file atomically: temp file in the same directory, mode 0640, `<core> -test`,
    /// then rename. A config the core rejects is an error and the old file stays.
    async fn write_config(&self, node: &NodeTarget, config_json: &str) -> Result<(), NodeError>;

    /// Restarts the core (cuts every open connection; counters reset).
    async fn restart_core(&self, node: &NodeTarget) -> Result<(), NodeError>;

    /// The SSH host key fingerprint the node presents (for trust on first use and `server test`).
    async fn fetch_host_key(&self, host: &str, port: u16) -> Result<String, NodeError>;

    /// When the first certificate in the PEM file at `cert_path` on the node ends (its notAfter), or `None` when
    /// there is no such file. A file that cannot be read or holds no certificate is an error saying so.
    async fn tls_not_after(&self, node: &NodeTarget, cert_path: &str) -> Result<Option<DateTime<Utc>>, NodeError>;
}

/// Stands in when no SSH key is configured: every operation fails with a message saying what to set, so
/// node jobs wait (and retry) instead of the shop refusing to start.
pub struct NoSshKey;

const NO_KEY: &str = "no SSH key configured: set provision.ssh_key_path or VPNSHOP__PROVISION__SSH_KEY";

#[async_trait::async_trait]
impl NodeApi for NoSshKey {
    async fn add_user(&self, _: &NodeTarget, _: &NodeUser) -> Result<(), NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn remove_user(&self, _: &NodeTarget, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn user_counters(&self, _: &NodeTarget) -> Result<Vec<(String, UserCounter)>, NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn core_uptime(&self, _: &NodeTarget) -> Result<Duration, NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn read_config(&self, _: &NodeTarget) -> Result<Option<String>, NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn write_config(&self, _: &NodeTarget, _: &str) -> Result<(), NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn restart_core(&self, _: &NodeTarget) -> Result<(), NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn fetch_host_key(&self, _: &str, _: u16) -> Result<String, NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
    async fn tls_not_after(&self, _: &NodeTarget, _: &str) -> Result<Option<DateTime<Utc>>, NodeError> {
        Err(NodeError::Unreachable(NO_KEY.into()))
    }
}
