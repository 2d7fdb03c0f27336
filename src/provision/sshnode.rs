//! `SshNodes`: the real `NodeApi`. Commands and config files go over the node's SSH session; the core's gRPC
//! API is reached through a `direct-tcpip` channel to its loopback port, on one HTTP/2 connection per node
//! that is reused until it fails. A failure on a reused session or connection is retried once on a fresh one
//! (every operation is safe to repeat).

use std::collections::HashMap;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::grpc::{self, GrpcChannel, GrpcError};
use super::node::{NodeApi, NodeError, NodeTarget, NodeUser, UserCounter};
use super::ssh::{ExecOutput, KeySource, SshOptions, SshPool, SshSession, shell_quote};
use crate::domain::server::Core;

/// Exit status our file-reading script uses for "no such file" (the config, a certificate).
const NO_FILE: u32 = 66;
/// Exit status our `write_config` script uses for "the core rejected the config".
const CONFIG_REJECTED: u32 = 65;

/// The core API connection of one node, tied to the SSH session that carries it.
struct ApiConn {
    channel: GrpcChannel,
    session: Arc<SshSession>,
}

type ApiSlot = Arc<Mutex<Option<Arc<ApiConn>>>>;

/// Real nodes over SSH. Cheap to share behind an `Arc<dyn NodeApi>`.
pub struct SshNodes {
    ssh: SshPool,
    api: StdMutex<HashMap<i64, ApiSlot>>,
}

impl SshNodes {
    /// Loads our private key (never from the database) and prepares a session pool with these timeouts.
    pub fn new(key: &KeySource, options: SshOptions) -> Result<Self, NodeError> {
        let key = key.load().map_err(NodeError::AuthFailed)?;
        Ok(Self { ssh: SshPool::new(key, options), api: StdMutex::new(HashMap::new()) })
    }

    fn api_slot(&self, server_id: i64) -> ApiSlot {
        let mut slots = self.api.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(server_id).or_default().clone()
    }

    /// The node's API connection (reused while its session lives), and whether it was reused.
    async fn api_conn(&self, node: &NodeTarget) -> Result<(Arc<ApiConn>, bool), NodeError> {
        let (session, _) = self.ssh.session(node).await?;
        let slot = self.api_slot(node.server_id);
        let mut guard = slot.lock().await;
        if let Some(conn) = guard.as_ref()
            && !conn.channel.is_closed()
            && Arc::ptr_eq(&conn.session, &session)
        {
            return Ok((conn.clone(), true));
        }
        *guard = None;
        let stream = match session.tunnel(node.api_port).await {
            Ok(stream) => stream,
            Err(e) => {
                if session.is_closed() {
                    self.ssh.discard(node, &session).await;
                }
                return Err(e);
            }
        };
        let timeout = self.ssh.options().command_timeout;
        let channel = tokio::time::timeout(timeout, GrpcChannel::handshake(stream))
            .await
            .map_err(|_| NodeError::Unreachable("core API handshake timed out".into()))??;
        let conn = Arc::new(ApiConn { channel, session });
        *guard = Some(conn.clone());
        Ok((conn, false))
    }

    async fn drop_api(&self, node: &NodeTarget, conn: &Arc<ApiConn>) {
        let slot = self.api_slot(node.server_id);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *guard = None;
        }
        if conn.session.is_closed() {
            self.ssh.discard(node, &conn.session).await;
        }
    }

    /// Runs one API call, retrying once on a fresh connection when a reused one turned out broken.
    async fn call<T, F, Fut>(&self, node: &NodeTarget, f: F) -> Result<T, NodeError>
    where
        F: Fn(Arc<ApiConn>) -> Fut,
        Fut: Future<Output = Result<T, GrpcError>>,
    {
        let timeout = self.ssh.options().command_timeout;
        let mut retried = false;
        loop {
            let (conn, reused) = self.api_conn(node).await?;
            match tokio::time::timeout(timeout, f(conn.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e @ GrpcError::Transport(_))) => {
                    self.drop_api(node, &conn).await;
                    if reused && !retried {
                        retried = true;
                        continue;
                    }
                    return Err(e.into());
                }
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {
                    self.drop_api(node, &conn).await;
                    return Err(NodeError::Unreachable(format!("core API call timed out after {timeout:?}")));
                }
            }
        }
    }

    /// Runs a shell command on the node, retrying once on a fresh session if a reused one had died.
    async fn exec(&self, node: &NodeTarget, command: &str, stdin: &[u8]) -> Result<ExecOutput, NodeError> {
        let mut retried = false;
        loop {
            let (session, reused) = self.ssh.session(node).await?;
            tracing::debug!(node = %node.name, command, "running on node");
            match session.exec(command, stdin).await {
                Ok(out) => return Ok(out),
                Err(e) => {
                    if session.is_closed() {
                        self.ssh.discard(node, &session).await;
                        if reused && !retried {
                            retried = true;
                            continue;
                        }
                    }
                    return Err(e);
                }
            }
        }
    }
}

fn core_binary(core: Core) -> &'static str {
    match core {
        Core::V2ray => "v2ray",
        Core::Xray => "xray",
    }
}

/// `sh -c '<script>'`, so the node user's login shell does not matter.
fn sh(script: &str) -> String {
    format!("sh -c {}", shell_quote(script))
}

/// Prints a file, or exits with `NO_FILE` when there is none.
fn read_file_script(path: &str) -> String {
    let file = shell_quote(path);
    format!("if [ -e {file} ]; then exec cat -- {file}; else exit {NO_FILE}; fi")
}

/// stdin → temp file in the config's directory → mode 0640 → `<core> -test` → `mv -f` over the config.
fn write_config_script(core: Core, path: &str) -> String {
    let dir = Path::new(path)
        .parent()
        .map(|d| d.to_string_lossy().into_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| ".".into());
    let (cfg, dir, bin) = (shell_quote(path), shell_quote(&dir), core_binary(core));
    let prefix = super::render::NODE_FILE_PREFIX;
    format!(
        r#"tmp=$(mktemp {dir}/.vpnshop-config.XXXXXXXX) || exit 1
fail() {{ rm -f "$tmp"; exit "$1"; }}
cat > "$tmp" || fail 1
# REALITY private keys stay on the node: put each named key file's content where the shop wrote its name
for ref in $(grep -o '"{prefix}/[A-Za-z0-9/._+@-]*"' "$tmp" | sort -u); do
  file=${{ref#\"{prefix}}}; file=${{file%\"}}
  key=$(tr -d ' \t\r\n' < "$file") || {{ echo "cannot read the REALITY key file $file"; fail {CONFIG_REJECTED}; }}
  case $key in ''|*[!A-Za-z0-9_-]*) echo "$file does not hold an x25519 key (xray x25519)"; fail {CONFIG_REJECTED};; esac
  sed -i "s|\"{prefix}$file\"|\"$key\"|g" "$tmp" || fail 1
done
chmod 0640 "$tmp" || fail 1
if [ -e {cfg} ]; then chgrp --reference={cfg} "$tmp" 2>/dev/null || true; fi
if ! out=$({bin} -test -config "$tmp" 2>&1); then printf '%s\n' "$out"; fail {CONFIG_REJECTED}; fi
mv -f "$tmp" {cfg} || fail 1
"#
    )
}

fn command_failed(what: &str, out: &ExecOutput) -> NodeError {
    let status = out.status.map_or_else(|| "no exit status".to_owned(), |s| format!("exit {s}"));
    NodeError::Command(format!("{what} ({status}): {}", out.text()))
}

#[async_trait::async_trait]
impl NodeApi for SshNodes {
    #[tracing::instrument(name = "node.add_user", skip_all, fields(server.id = node.server_id, user.email = %user.email))]
    async fn add_user(&self, node: &NodeTarget, user: &NodeUser) -> Result<(), NodeError> {
        for inbound in &node.inbounds {
            self.call(node, |c| async move { grpc::add_user(&c.channel, node.core, inbound, user).await }).await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "node.remove_user", skip_all, fields(server.id = node.server_id, user.email = %email))]
    async fn remove_user(&self, node: &NodeTarget, email: &str) -> Result<(), NodeError> {
        for inbound in &node.inbounds {
            let tag = inbound.tag.as_str();
            self.call(node, |c| async move { grpc::remove_user(&c.channel, node.core, tag, email).await }).await?;
        }
        Ok(())
    }

    #[tracing::instrument(name = "node.user_counters", skip_all, fields(server.id = node.server_id))]
    async fn user_counters(&self, node: &NodeTarget) -> Result<Vec<(String, UserCounter)>, NodeError> {
        let core = node.core;
        self.call(node, |c| async move { grpc::user_counters(&c.channel, core).await }).await
    }

    #[tracing::instrument(name = "node.core_uptime", skip_all, fields(server.id = node.server_id))]
    async fn core_uptime(&self, node: &NodeTarget) -> Result<Duration, NodeError> {
        let core = node.core;
        self.call(node, |c| async move { grpc::uptime(&c.channel, core).await }).await
    }

    #[tracing::instrument(name = "node.read_config", skip_all, fields(server.id = node.server_id))]
    async fn read_config(&self, node: &NodeTarget) -> Result<Option<String>, NodeError> {
        let out = self.exec(node, &sh(&read_file_script(&node.config_path)), &[]).await?;
        match out.status {
            Some(0) => String::from_utf8(out.stdout)
                .map(Some)
                .map_err(|_| NodeError::Command("the config file is not UTF-8".into())),
            Some(NO_FILE) => Ok(None),
            _ => Err(command_failed("reading the config failed", &out)),
        }
    }

    #[tracing::instrument(name = "node.write_config", skip_all, fields(server.id = node.server_id, config.bytes = config_json.len()))]
    async fn write_config(&self, node: &NodeTarget, config_json: &str) -> Result<(), NodeError> {
        let script = write_config_script(node.core, &node.config_path);
        let out = self.exec(node, &sh(&script), config_json.as_bytes()).await?;
        match out.status {
            Some(0) => Ok(()),
            Some(CONFIG_REJECTED) => {
                Err(command_failed(&format!("{} -test rejected the config", core_binary(node.core)), &out))
            }
            _ => Err(command_failed("writing the config failed", &out)),
        }
    }

    #[tracing::instrument(name = "node.restart_core", skip_all, fields(server.id = node.server_id))]
    async fn restart_core(&self, node: &NodeTarget) -> Result<(), NodeError> {
        let out = self.exec(node, &node.restart_command, &[]).await?;
        if out.success() { Ok(()) } else { Err(command_failed("restarting the core failed", &out)) }
    }

    #[tracing::instrument(name = "node.fetch_host_key", skip(self))]
    async fn fetch_host_key(&self, host: &str, port: u16) -> Result<String, NodeError> {
        self.ssh.fetch_host_key(host, port).await
    }

    #[tracing::instrument(name = "node.tls_not_after", skip(self, node), fields(server.id = node.server_id))]
    async fn tls_not_after(&self, node: &NodeTarget, cert_path: &str) -> Result<Option<DateTime<Utc>>, NodeError> {
        let out = self.exec(node, &sh(&read_file_script(cert_path)), &[]).await?;
        match out.status {
            Some(0) => super::cert::pem_not_after(&out.stdout)
                .map(Some)
                .map_err(|e| NodeError::Command(format!("the certificate {cert_path} on the node: {e}"))),
            Some(NO_FILE) => Ok(None),
            _ => Err(command_failed(&format!("reading the certificate {cert_path} failed"), &out)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_shell_quoted_in_scripts() {
        let script = write_config_script(Core::Xray, "/etc/it's here/config.json");
        assert!(script.contains(r"mktemp '/etc/it'\''s here'/.vpnshop-config.XXXXXXXX"));
        assert!(script.contains(r#"mv -f "$tmp" '/etc/it'\''s here/config.json'"#));
        assert!(script.contains("xray -test -config"));
        assert_eq!(sh("echo 'a'"), r"sh -c 'echo '\''a'\'''");
    }
}
