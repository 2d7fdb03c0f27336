//! `vpnshop server test`: checks a node step by step and says what is wrong in plain words.
//!
//! Order: can we reach its sshd → is its host key the pinned one (before we ever log in) → does our key log
//! in → is the config file readable and ours → does the core's API answer through the tunnel → are stats
//! on → does the config keep customers out of the node itself. A failed step skips the steps that depend on
//! it, so the first failure is the one to fix; the isolation verdict is shown whenever the file was read.

use std::net::IpAddr;

use super::{Nodes, base_config, target};
use crate::db;
use crate::error::AppError;
use crate::provision::isolation::{self, AllowedDestination};
use crate::provision::render;
use crate::provision::{NodeError, NodeTarget};

/// What one check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    /// Not run, because a check it depends on failed.
    Skipped,
}

/// One check of a node and what it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
    pub detail: String,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, outcome: Outcome::Ok, detail: detail.into() }
    }

    fn failed(name: &'static str, detail: impl Into<String>) -> Self {
        Self { name, outcome: Outcome::Failed, detail: detail.into() }
    }

    pub fn is_ok(&self) -> bool {
        self.outcome == Outcome::Ok
    }
}

const REACH: &str = "reach sshd";
const HOST_KEY: &str = "host key";
const LOGIN: &str = "ssh login";
const CONFIG: &str = "config file";
const CORE_API: &str = "core API";
const STATS: &str = "traffic stats";
const ISOLATION: &str = "isolation";
/// Every check, in the order they run.
pub const CHECKS: [&str; 7] = [REACH, HOST_KEY, LOGIN, CONFIG, CORE_API, STATS, ISOLATION];

/// The failure in plain words, with what to look at; `node` gives names and ports to the advice.
fn explain(e: &NodeError, node: &NodeTarget) -> String {
    let (host, port, user) = (&node.ssh_host, node.ssh_port, &node.ssh_user);
    match e {
        NodeError::Unreachable(why) if why.starts_with("no SSH key configured") => why.clone(),
        NodeError::Unreachable(why) => format!(
            "cannot reach the node over SSH at {host}:{port} ({why}); is the node up, sshd running, and port {port} \
             open to this machine?"
        ),
        NodeError::HostKeyMismatch { expected, presented } => format!(
            "the node's SSH host key differs from the pinned one: pinned {expected}, the node presents {presented}. \
             Not logging in. If the node was rebuilt, compare with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` \
             on its console and pin it with `vpnshop server pin-key {name} --fingerprint {presented}`; otherwise \
             someone may be in the middle",
            name = node.name
        ),
        NodeError::HostKeyNotPinned => format!(
            "no host key is pinned, so we do not log in; pin it with `vpnshop server pin-key {} --fingerprint \
             SHA256:…` (from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node)",
            node.name
        ),
        NodeError::AuthFailed(why) => format!(
            "the node refused our SSH key for user {user:?} ({why}); is the shop's public key in that user's \
             authorized keys (deploy/node/setup.sh --shop-key), and is the account unlocked?"
        ),
        NodeError::Api(why) => format!("the core's API answered with an error: {why}"),
        NodeError::Command(why) => format!("a command failed on the node: {why}"),
    }
}

/// Why the core's API did not answer, once SSH itself is known to work.
fn explain_api(e: &NodeError, node: &NodeTarget) -> String {
    let (core, api) = (node.core, node.api_port);
    match e {
        NodeError::Unreachable(why) if why.contains("AdministrativelyProhibited") => format!(
            "the node's sshd refused to forward to 127.0.0.1:{api} ({why}); the login user's key needs \
             permitopen=\"127.0.0.1:{api}\" and sshd AllowTcpForwarding local (deploy/node/setup.sh sets both)"
        ),
        NodeError::Unreachable(why) => format!(
            "the core API does not answer on 127.0.0.1:{api} ({why}); is {core} running (`systemctl status {core}` \
             on the node) with the api inbound on port {api}?"
        ),
        other => explain(other, node),
    }
}

/// Whether the node's config (its file now) keeps customers out of the node and private networks.
fn isolation_check(text: Option<&str>, node: &NodeTarget, allowed: &[AllowedDestination], own: &[IpAddr]) -> Check {
    let path = &node.config_path;
    let Some(text) = text else {
        return Check::ok(ISOLATION, format!("{path} does not exist yet; the first sync writes an isolated config"));
    };
    let gap = match render::parse_config(text) {
        Ok(config) => isolation::isolation_gap(&config, allowed, own),
        Err(e) => Some(format!("it cannot be read ({e})")),
    };
    match gap {
        None => Check::ok(ISOLATION, "customers cannot reach the node itself or private networks through it"),
        Some(gap) => Check::failed(
            ISOLATION,
            format!(
                "{path} lets customers reach the node itself (its core API, sshd) and private networks through                  their tunnel: {gap}. The next sync rewrites it with the blocking rules (one core restart);                  until then any customer can add users or reset counters through the API"
            ),
        ),
    }
}

fn config_check(text: &str, row: &db::servers::NodeRow, node: &NodeTarget, allowed: &[AllowedDestination]) -> Check {
    let path = &node.config_path;
    let mut counts = Vec::new();
    for inbound in &node.inbounds {
        match render::clients_in(text, &inbound.tag) {
            Ok(users) => counts.push(users.len()),
            Err(e) => {
                return Check::failed(
                    CONFIG,
                    format!(
                        "{path} has no usable inbound {:?} ({e}); the next sync rewrites it from the base config",
                        inbound.tag
                    ),
                );
            }
        }
    }
    let users = match counts.iter().max().copied().unwrap_or(0) {
        1 => "1 user".to_owned(),
        n => format!("{n} users"),
    };
    let ours = base_config(row, allowed).map(|b| render::base_hash(&b)).ok();
    let theirs = render::parse_config(text).ok().map(|v| render::base_hash(&v));
    if ours.is_some() && ours == theirs {
        Check::ok(CONFIG, format!("{path} holds {users} and our base config"))
    } else {
        Check::ok(
            CONFIG,
            format!(
                "{path} holds {users}; its base differs from ours (the next sync rewrites it and restarts the \
                 core once)"
            ),
        )
    }
}

impl Nodes {
    /// Runs every check in order (see [`CHECKS`]); a failed check marks the ones that depend on it skipped.
    pub async fn probe(&self, name: &str) -> Result<Vec<Check>, AppError> {
        let server = db::servers::find_by_name(&self.pool, name).await?.ok_or(AppError::NotFound("server"))?;
        let row = db::servers::node(&self.pool, server.id).await?.ok_or(AppError::NotFound("server"))?;
        let node = target(&row);
        let mut checks = Vec::new();
        let mut isolation = None;
        self.run_checks(&row, &node, &mut checks, &mut isolation).await;
        for name in CHECKS.iter().skip(checks.len()) {
            match isolation.take_if(|_| *name == ISOLATION) {
                Some(check) => checks.push(check),
                None => checks.push(Check {
                    name,
                    outcome: Outcome::Skipped,
                    detail: "not run: an earlier check failed".into(),
                }),
            }
        }
        Ok(checks)
    }

    /// Pushes checks until one fails; the isolation verdict is kept aside as soon as the file was read.
    async fn run_checks(
        &self,
        row: &db::servers::NodeRow,
        node: &NodeTarget,
        checks: &mut Vec<Check>,
        isolation: &mut Option<Check>,
    ) {
        let allowed = &self.settings.allow_private_destinations;
        let own = &super::own_addresses(row);
        let (host, port) = (&node.ssh_host, node.ssh_port);
        // reading the host key needs no login: a node with a changed key never sees our key or a command
        let presented = match self.api.fetch_host_key(host, port).await {
            Ok(key) => key,
            Err(e) => return checks.push(Check::failed(REACH, explain(&e, node))),
        };
        checks.push(Check::ok(REACH, format!("{host}:{port} answers SSH")));
        match &node.host_key_fingerprint {
            Some(pinned) if *pinned == presented => {
                checks.push(Check::ok(HOST_KEY, format!("{presented} is the pinned key")))
            }
            Some(pinned) => {
                let e = NodeError::HostKeyMismatch { expected: pinned.clone(), presented };
                return checks.push(Check::failed(HOST_KEY, explain(&e, node)));
            }
            None => {
                let detail = format!("{} The node presents {presented}.", explain(&NodeError::HostKeyNotPinned, node));
                return checks.push(Check::failed(HOST_KEY, detail));
            }
        }
        let login = format!("logged in as {} with our key", node.ssh_user);
        match self.api.read_config(node).await {
            Ok(Some(text)) => {
                checks.push(Check::ok(LOGIN, login));
                *isolation = Some(isolation_check(Some(&text), node, allowed, own));
                let config = config_check(&text, row, node, allowed);
                let failed = !config.is_ok();
                checks.push(config);
                if failed {
                    return;
                }
            }
            Ok(None) => {
                checks.push(Check::ok(LOGIN, login));
                *isolation = Some(isolation_check(None, node, allowed, own));
                checks.push(Check::ok(
                    CONFIG,
                    format!("{} does not exist yet (the first sync writes it)", node.config_path),
                ));
            }
            Err(e @ NodeError::Command(_)) => {
                checks.push(Check::ok(LOGIN, login));
                let detail = format!(
                    "cannot read {}: {}; is {} in the group that owns its directory?",
                    node.config_path,
                    explain(&e, node),
                    node.ssh_user
                );
                return checks.push(Check::failed(CONFIG, detail));
            }
            Err(e) => return checks.push(Check::failed(LOGIN, explain(&e, node))),
        }
        match self.api.core_uptime(node).await {
            Ok(up) => checks.push(Check::ok(
                CORE_API,
                format!("{} answers on 127.0.0.1:{} (up {} s)", node.core, node.api_port, up.as_secs()),
            )),
            Err(e) => return checks.push(Check::failed(CORE_API, explain_api(&e, node))),
        }
        match self.api.user_counters(node).await {
            Ok(c) => checks.push(Check::ok(STATS, format!("stats are on ({} user counters so far)", c.len()))),
            Err(e) => {
                return checks.push(Check::failed(
                    STATS,
                    format!("{}; the config needs \"stats\" and the StatsService in \"api\"", explain_api(&e, node)),
                ));
            }
        }
        if let Some(check) = isolation.take() {
            checks.push(check);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::server::{Core, Protocol};
    use crate::provision::render::ClientInbound;

    fn node() -> NodeTarget {
        NodeTarget {
            server_id: 1,
            name: "de-1".into(),
            ssh_host: "203.0.113.7".into(),
            ssh_port: 22,
            ssh_user: "vpnshop".into(),
            host_key_fingerprint: None,
            core: Core::V2ray,
            api_port: 10085,
            inbounds: vec![ClientInbound {
                tag: "proxy".into(),
                protocol: Protocol::Vmess,
                core: Core::V2ray,
                flow: None,
            }],
            config_path: "/etc/v2ray/config.json".into(),
            restart_command: "sudo -n systemctl restart v2ray".into(),
        }
    }

    #[test]
    fn failures_are_explained_with_what_to_do() {
        let n = node();
        let mismatch =
            explain(&NodeError::HostKeyMismatch { expected: "SHA256:a".into(), presented: "SHA256:b".into() }, &n);
        assert!(mismatch.contains("differs from the pinned one"), "{mismatch}");
        assert!(mismatch.contains("vpnshop server pin-key de-1 --fingerprint SHA256:b"), "{mismatch}");
        let down = explain_api(
            &NodeError::Unreachable(
                "cannot reach 127.0.0.1:10085 on the node: Failed to open channel (ConnectFailed)".into(),
            ),
            &n,
        );
        assert!(down.contains("core API does not answer on 127.0.0.1:10085"), "{down}");
        assert!(down.contains("systemctl status v2ray"), "{down}");
        let refused = explain_api(
            &NodeError::Unreachable(
                "cannot reach 127.0.0.1:10085 on the node: Failed to open channel (AdministrativelyProhibited)".into(),
            ),
            &n,
        );
        assert!(refused.contains("permitopen=\"127.0.0.1:10085\""), "{refused}");
        let no_key = explain(&NodeError::Unreachable("no SSH key configured: set provision.ssh_key_path".into()), &n);
        assert!(!no_key.contains("sshd running"), "a missing key of ours is not the node's fault: {no_key}");
        let ssh = explain(&NodeError::Unreachable("SSH to 203.0.113.7:22: Connection refused".into()), &n);
        assert!(ssh.starts_with("cannot reach the node over SSH at 203.0.113.7:22"), "{ssh}");
    }
}
