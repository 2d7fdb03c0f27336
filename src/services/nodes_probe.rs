//! `vpnshop server test`: checks a node step by step and says what is wrong in plain words.

use super::{Nodes, base_config, target};
use crate::db;
use crate::error::AppError;
use crate::provision::NodeError;
use crate::provision::render;

/// One check of a node and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

fn explain(e: &NodeError) -> String {
    match e {
        NodeError::Unreachable(why) => {
            format!("cannot reach the node over SSH ({why}); is sshd running and the port open?")
        }
        NodeError::HostKeyMismatch { expected, presented } => format!(
            "the node's host key is {presented}, but {expected} is pinned; if the node was rebuilt, verify and run \
             `vpnshop server pin-key <name> --fingerprint {presented}`"
        ),
        NodeError::HostKeyNotPinned => {
            "no host key is pinned; run `vpnshop server pin-key <name> --trust` (or pass --fingerprint)".into()
        }
        NodeError::AuthFailed(why) => {
            format!("SSH login refused ({why}); is our public key in the login user's authorized_keys?")
        }
        NodeError::Api(why) => {
            format!("the core's API did not answer ({why}); is the core running with the api inbound?")
        }
        NodeError::Command(why) => format!("a command failed on the node: {why}"),
    }
}

impl Nodes {
    /// Runs every check in order; later checks are skipped when SSH itself fails.
    pub async fn probe(&self, name: &str) -> Result<Vec<Check>, AppError> {
        let server = db::servers::find_by_name(&self.pool, name).await?.ok_or(AppError::NotFound("server"))?;
        let row = db::servers::node(&self.pool, server.id).await?.ok_or(AppError::NotFound("server"))?;
        let node = target(&row);
        let mut checks = Vec::new();
        let port = node.ssh_port;
        let presented = self.api.fetch_host_key(&node.ssh_host, port).await;
        let key_ok = match (&presented, &node.host_key_fingerprint) {
            (Ok(p), Some(pinned)) if p == pinned => {
                checks.push(Check { name: "host key", ok: true, detail: format!("{p} matches the pinned key") });
                true
            }
            (Ok(p), Some(pinned)) => {
                let e = NodeError::HostKeyMismatch { expected: pinned.clone(), presented: p.clone() };
                checks.push(Check { name: "host key", ok: false, detail: explain(&e) });
                false
            }
            (Ok(p), None) => {
                let detail = format!("{}; the node presents {p}", explain(&NodeError::HostKeyNotPinned));
                checks.push(Check { name: "host key", ok: false, detail });
                false
            }
            (Err(e), _) => {
                checks.push(Check { name: "ssh", ok: false, detail: explain(e) });
                false
            }
        };
        if !key_ok {
            return Ok(checks);
        }
        match self.api.read_config(&node).await {
            Ok(Some(text)) => {
                let ours = base_config(&row).map(|b| render::base_hash(&b)).ok();
                let theirs = render::parse_config(&text).ok().map(|v| render::base_hash(&v));
                let users = render::clients_in(&text, &row.inbound_tag).map(|u| u.len());
                let ok = users.is_ok();
                let detail = match (users, ours == theirs) {
                    (Ok(n), true) => format!("{} holds {n} users and our base config", node.config_path),
                    (Ok(n), false) => format!(
                        "{} holds {n} users; its base differs from ours (the next sync rewrites it and restarts the core once)",
                        node.config_path
                    ),
                    (Err(e), _) => format!("{} has no usable inbound {:?}: {e}", node.config_path, row.inbound_tag),
                };
                checks.push(Check { name: "ssh login and config file", ok, detail });
            }
            Ok(None) => checks.push(Check {
                name: "ssh login and config file",
                ok: true,
                detail: format!("logged in; {} does not exist yet (the first sync writes it)", node.config_path),
            }),
            Err(e) => checks.push(Check { name: "ssh login and config file", ok: false, detail: explain(&e) }),
        }
        match self.api.core_uptime(&node).await {
            Ok(up) => checks.push(Check {
                name: "core API",
                ok: true,
                detail: format!("{} answers on 127.0.0.1:{} (up {} s)", node.core, node.api_port, up.as_secs()),
            }),
            Err(e) => checks.push(Check { name: "core API", ok: false, detail: explain(&e) }),
        }
        match self.api.user_counters(&node).await {
            Ok(c) => checks.push(Check {
                name: "traffic stats",
                ok: true,
                detail: format!("stats are on ({} user counters so far)", c.len()),
            }),
            Err(e) => checks.push(Check { name: "traffic stats", ok: false, detail: explain(&e) }),
        }
        Ok(checks)
    }
}
