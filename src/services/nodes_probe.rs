//! `vpnshop server test`: checks a node step by step and says what is wrong in plain words.
//!
//! Order: can we reach its sshd → is its host key the pinned one (before we ever log in) → does our key log
//! in → is the config file readable and ours → does the core's API answer through the tunnel → are stats
//! on → does the config keep customers out of the node itself. A failed step skips the steps that depend on
//! it, so the first failure is the one to fix; the isolation verdict is shown whenever the file was read.
//! Then, for every client inbound: does its port accept connections at the node's own address (a CDN inbound is
//! tested at its origin), and for a TLS inbound, is its certificate on the node and not expired.

use std::net::IpAddr;
use std::time::Duration;

use chrono::Utc;

use super::{Nodes, base_config, inbounds, target};
use crate::db;
use crate::domain::inbound::{InboundSpec, Security};
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
/// One per client inbound, after [`CHECKS`]: its port at the node's own address.
pub const INBOUND_PORT: &str = "inbound port";
/// One per TLS inbound, after its port: its certificate on the node.
pub const CERTIFICATE: &str = "certificate";

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

/// Whether something accepts TCP connections at `host:port`, from here, within `limit`.
async fn tcp_check(spec: &InboundSpec, host: &str, limit: Duration) -> Check {
    let (tag, port) = (&spec.tag, spec.port);
    let bare = host.trim_matches(['[', ']']);
    let at = if bare.contains(':') { format!("[{bare}]:{port}") } else { format!("{bare}:{port}") };
    let cdn = spec.cdn.then(|| {
        format!(
            " (tested at the origin; customers' links use the CDN host {}:{})",
            spec.connect_host(host),
            spec.connect_port()
        )
    });
    match tokio::time::timeout(limit, tokio::net::TcpStream::connect((bare, port))).await {
        Ok(Ok(_)) => Check::ok(INBOUND_PORT, format!("{tag}: {at} accepts connections{}", cdn.unwrap_or_default())),
        outcome => {
            let why = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {} s", limit.as_secs()),
            };
            let from = if spec.cdn { "the CDN's addresses" } else { "customers" };
            Check::failed(
                INBOUND_PORT,
                format!(
                    "{tag}: nothing accepts connections at {at} ({why}){}; is the core running with this inbound \
                     (the first sync writes it), and is port {port} open to {from} in the node's firewall?",
                    cdn.unwrap_or_default()
                ),
            )
        }
    }
}

/// What a TLS inbound's certificate read from the node says (`read` is `NodeApi::tls_not_after`'s answer).
fn certificate_check(
    spec: &InboundSpec,
    path: &str,
    read: Result<Option<chrono::DateTime<Utc>>, NodeError>,
    node: &NodeTarget,
    alert_days: u32,
) -> Check {
    let tag = &spec.tag;
    match read {
        Ok(Some(not_after)) => {
            let left = not_after - Utc::now();
            let when = not_after.format("%Y-%m-%d %H:%M UTC");
            if left <= chrono::Duration::zero() {
                return Check::failed(
                    CERTIFICATE,
                    format!(
                        "{tag}: {path} expired on {when}; customers' apps refuse it: renew it (deploy/node/README.md)"
                    ),
                );
            }
            let days = match left.num_days() {
                1 => "1 day".to_owned(),
                n => format!("{n} days"),
            };
            let soon = if left <= chrono::Duration::days(i64::from(alert_days)) { "; renew it soon" } else { "" };
            Check::ok(CERTIFICATE, format!("{tag}: certificate {path} valid until {when} ({days}){soon}"))
        }
        Ok(None) => Check::failed(
            CERTIFICATE,
            format!(
                "{tag}: {path} does not exist on the node; the core cannot serve this inbound without it: install \
                 the certificate (deploy/node/setup.sh --tls-cert FILE --tls-key FILE)"
            ),
        ),
        Err(NodeError::Command(why)) => Check::failed(CERTIFICATE, format!("{tag}: {why}")),
        Err(e) => Check::failed(CERTIFICATE, format!("{tag}: {path} could not be read: {}", explain(&e, node))),
    }
}

impl Nodes {
    /// One port check per inbound (skipped when the node does not even answer SSH: that is the failure to fix
    /// first), and one certificate check per TLS inbound (read over SSH only once our login worked).
    async fn inbound_checks(
        &self,
        row: &db::servers::NodeRow,
        node: &NodeTarget,
        checks_so_far: &[Check],
    ) -> Vec<Check> {
        let specs = match inbounds(row) {
            Ok(specs) => specs,
            Err(e) => return vec![Check::failed(INBOUND_PORT, format!("the node's inbounds cannot be read: {e}"))],
        };
        let passed = |name: &str| checks_so_far.iter().any(|c| c.name == name && c.is_ok());
        let (reached, logged_in) = (passed(REACH), passed(LOGIN));
        let limit = Duration::from_secs(self.settings.connect_timeout_secs.max(1));
        let mut checks = Vec::new();
        for spec in &specs {
            if spec.is_plain_vless() {
                checks.push(Check::failed(
                    INBOUND_PORT,
                    format!(
                        "{}: VLESS without TLS or REALITY: customers' traffic crosses the network unencrypted (it \
                         still works, as it did before). Give it TLS or REALITY, or make it VMess, with `vpnshop \
                         server inbounds {}`",
                        spec.tag, row.name
                    ),
                ));
                continue;
            }
            checks.push(if reached {
                tcp_check(spec, &row.public_host, limit).await
            } else {
                Check {
                    name: INBOUND_PORT,
                    outcome: Outcome::Skipped,
                    detail: format!("{}: not run: an earlier check failed", spec.tag),
                }
            });
            let Some(path) = spec.cert_path.as_deref().filter(|_| spec.security == Security::Tls) else {
                continue;
            };
            if !logged_in {
                checks.push(Check {
                    name: CERTIFICATE,
                    outcome: Outcome::Skipped,
                    detail: format!("{}: not run: an earlier check failed", spec.tag),
                });
                continue;
            }
            let read = self.api.tls_not_after(node, path).await;
            checks.push(certificate_check(spec, path, read, node, self.settings.certificate_alert_days));
        }
        checks
    }

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
        let more = self.inbound_checks(&row, &node, &checks).await;
        checks.extend(more);
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

    fn tls_spec() -> InboundSpec {
        InboundSpec {
            security: Security::Tls,
            cert_path: Some("/etc/v2ray/tls/fullchain.pem".into()),
            key_path: Some("/etc/v2ray/tls/privkey.pem".into()),
            ..InboundSpec::plain_tcp("vless-tls", Protocol::Vless, 443)
        }
    }

    #[test]
    fn a_certificate_is_ok_until_it_expires_and_a_missing_one_fails() {
        let (spec, n, path) = (tls_spec(), node(), "/etc/v2ray/tls/fullchain.pem");
        let later = Utc::now() + chrono::Duration::days(40) + chrono::Duration::hours(1);
        let ok = certificate_check(&spec, path, Ok(Some(later)), &n, 14);
        assert!(ok.is_ok() && ok.name == CERTIFICATE, "{ok:?}");
        assert!(ok.detail.starts_with("vless-tls: certificate /etc/v2ray/tls/fullchain.pem valid until "), "{ok:?}");
        assert!(ok.detail.ends_with("(40 days)"), "{ok:?}");
        let soon = certificate_check(&spec, path, Ok(Some(Utc::now() + chrono::Duration::hours(50))), &n, 14);
        assert!(soon.is_ok() && soon.detail.ends_with("(2 days); renew it soon"), "{soon:?}");
        let expired = certificate_check(&spec, path, Ok(Some(Utc::now() - chrono::Duration::hours(1))), &n, 14);
        assert_eq!(expired.outcome, Outcome::Failed);
        assert!(expired.detail.contains("expired on"), "{expired:?}");
        let missing = certificate_check(&spec, path, Ok(None), &n, 14);
        assert_eq!(missing.outcome, Outcome::Failed);
        assert!(missing.detail.contains("does not exist on the node"), "{missing:?}");
        let garbage = certificate_check(&spec, path, Err(NodeError::Command("not a PEM file".into())), &n, 14);
        assert_eq!((garbage.outcome, garbage.detail.as_str()), (Outcome::Failed, "vless-tls: not a PEM file"));
    }

    #[tokio::test]
    async fn an_inbound_port_is_tested_at_the_nodes_own_address() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap().port();
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
        let limit = Duration::from_secs(2);
        let spec = InboundSpec { port: open, ..tls_spec() };
        let ok = tcp_check(&spec, "127.0.0.1", limit).await;
        assert!(ok.is_ok(), "{ok:?}");
        assert_eq!(ok.detail, format!("vless-tls: 127.0.0.1:{open} accepts connections"));
        let cdn =
            InboundSpec { cdn: true, public_host: Some("cdn.example.com".into()), public_port: Some(443), ..spec };
        let ok = tcp_check(&cdn, "127.0.0.1", limit).await;
        assert!(ok.detail.ends_with("(tested at the origin; customers' links use the CDN host cdn.example.com:443)"));
        let shut = tcp_check(&InboundSpec { port: closed, ..tls_spec() }, "127.0.0.1", limit).await;
        assert_eq!(shut.outcome, Outcome::Failed);
        assert!(shut.detail.contains(&format!("nothing accepts connections at 127.0.0.1:{closed}")), "{shut:?}");
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
