//! SSH to nodes (russh): one long-lived, pinned, key-authenticated session per node, reused and reopened on
//! failure; commands with stdin and captured output; `direct-tcpip` channels used as byte streams.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use russh::client::{self, Handle, Msg};
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{ChannelMsg, ChannelStream, Disconnect};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

use super::node::{NodeError, NodeTarget};

/// Where our SSH private key comes from (OpenSSH format, ed25519 or RSA, unencrypted). Never the database.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A file holding the key.
    Path(PathBuf),
    /// The key text itself (e.g. from a secret in the environment).
    Text(SecretString),
}

impl KeySource {
    /// Reads and parses the key. The error names the file but never includes key material.
    pub fn load(&self) -> Result<PrivateKey, String> {
        match self {
            KeySource::Path(path) => russh::keys::load_secret_key(path, None)
                .map_err(|e| format!("cannot load SSH key {}: {e}", path.display())),
            KeySource::Text(text) => russh::keys::decode_secret_key(text.expose_secret(), None)
                .map_err(|e| format!("cannot parse the SSH key text: {e}")),
        }
    }
}

/// Timeouts and keepalive of SSH sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshOptions {
    /// TCP connect + key exchange + host key check, and separately authentication.
    pub connect_timeout: Duration,
    /// Opening a channel and running one command (or one API call) to completion.
    pub command_timeout: Duration,
    /// Idle sessions send a keepalive this often; `keepalive_max` unanswered ones close the session.
    pub keepalive_interval: Duration,
    /// Unanswered keepalives after which the session counts as dead.
    pub keepalive_max: usize,
}

impl Default for SshOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            command_timeout: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(15),
            keepalive_max: 3,
        }
    }
}

/// The OpenSSH `SHA256:<unpadded base64>` fingerprint of a public key (as `ssh-keygen -lf` prints it).
pub fn fingerprint(key: &russh::keys::PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Wraps a value in single quotes for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// What the host key check saw (filled in by the handler during key exchange).
#[derive(Debug, Default)]
struct KeyVerdict {
    presented: Option<String>,
    refused: Option<NodeError>,
}

/// russh handler: accepts the server only if its key matches the pin (`expect: None` refuses everything,
/// which `fetch_host_key` uses to read the key without logging in).
struct PinnedHost {
    expect: Option<String>,
    verdict: Arc<StdMutex<KeyVerdict>>,
}

impl client::Handler for PinnedHost {
    type Error = russh::Error;

    async fn check_server_key(&mut self, key: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        let presented = fingerprint(&key.public_key());
        let refused = match &self.expect {
            None => Some(NodeError::HostKeyNotPinned),
            Some(pinned) if pinned.trim() == presented => None,
            Some(pinned) => {
                Some(NodeError::HostKeyMismatch { expected: pinned.trim().to_owned(), presented: presented.clone() })
            }
        };
        let accept = refused.is_none();
        if let Ok(mut verdict) = self.verdict.lock() {
            verdict.presented = Some(presented);
            verdict.refused = refused;
        }
        Ok(accept)
    }
}

/// What a command printed and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// `None` when the command was killed by a signal or the server sent no status.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    /// Exit status 0.
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    /// stdout and stderr as (lossy) text, trimmed, for error messages.
    pub fn text(&self) -> String {
        let out = String::from_utf8_lossy(&self.stdout);
        let err = String::from_utf8_lossy(&self.stderr);
        format!("{}\n{}", out.trim(), err.trim()).trim().to_owned()
    }
}

/// A byte stream to a port on the node's loopback, carried by the SSH session.
pub type TunnelStream = ChannelStream<Msg>;

/// An authenticated SSH session to one node. Cheap to share; channels are opened concurrently.
pub struct SshSession {
    handle: Handle<PinnedHost>,
    /// The connection parameters it was opened with; a changed target gets a new session.
    key: SessionKey,
    command_timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionKey {
    host: String,
    port: u16,
    user: String,
    pin: Option<String>,
}

impl SessionKey {
    fn of(node: &NodeTarget) -> Self {
        Self {
            host: node.ssh_host.clone(),
            port: node.ssh_port,
            user: node.ssh_user.clone(),
            pin: node.host_key_fingerprint.clone(),
        }
    }
}

fn unreachable(what: &str, e: impl std::fmt::Display) -> NodeError {
    NodeError::Unreachable(format!("{what}: {e}"))
}

impl SshSession {
    /// Whether the connection has ended (then the pool opens a new one).
    pub fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Runs `command` with `stdin` as its standard input and waits for it to finish. Its span says how much
    /// went in and how it exited, never the command (it may hold paths an operator chose) nor the input.
    #[tracing::instrument(name = "ssh.exec", skip_all, fields(
        otel.kind = "client",
        ssh.stdin_bytes = stdin.len(),
        ssh.exit_status = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    ))]
    pub async fn exec(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput, NodeError> {
        let t = self.command_timeout;
        let out = tokio::time::timeout(t, self.exec_inner(command, stdin))
            .await
            .map_err(|_| unreachable("command timed out", format!("no result within {t:?}")))
            .and_then(|done| done);
        let span = tracing::Span::current();
        match &out {
            Ok(ExecOutput { status: Some(status), .. }) => span.record("ssh.exit_status", status),
            Ok(_) => &span,
            Err(_) => span.record("otel.status_code", "ERROR"),
        };
        out
    }

    async fn exec_inner(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput, NodeError> {
        let channel = self
            .handle
            .channel_open_session()
            .await
            .map_err(|e| unreachable("cannot open an SSH session channel", e))?;
        channel.exec(true, command).await.map_err(|e| unreachable("cannot start the command", e))?;
        let (mut read, write) = channel.split();
        let send = async {
            if !stdin.is_empty() {
                write.data(stdin).await?;
            }
            write.eof().await
        };
        let receive = async {
            let mut out = ExecOutput::default();
            let mut refused = false;
            while let Some(msg) = read.wait().await {
                match msg {
                    ChannelMsg::Data { data } => out.stdout.extend_from_slice(&data),
                    ChannelMsg::ExtendedData { data, ext: 1 } => out.stderr.extend_from_slice(&data),
                    ChannelMsg::ExitStatus { exit_status } => out.status = Some(exit_status),
                    ChannelMsg::Failure => refused = true,
                    _ => {}
                }
            }
            (out, refused)
        };
        let (sent, (out, refused)) = tokio::join!(send, receive);
        if refused {
            return Err(NodeError::Command("the node refused to run the command".into()));
        }
        // a command that exits without reading all of stdin closes the pipe: its status tells the story
        if let (Err(e), None) = (sent, out.status) {
            return Err(unreachable("cannot send the command's input", e));
        }
        if out.status.is_none() && self.is_closed() {
            return Err(unreachable("the SSH session ended during the command", "no exit status"));
        }
        Ok(out)
    }

    /// Opens a `direct-tcpip` channel to `127.0.0.1:<port>` on the node.
    pub async fn tunnel(&self, port: u16) -> Result<TunnelStream, NodeError> {
        let open = self.handle.channel_open_direct_tcpip("127.0.0.1", u32::from(port), "127.0.0.1", 0);
        match tokio::time::timeout(self.command_timeout, open).await {
            Ok(Ok(channel)) => Ok(channel.into_stream()),
            Ok(Err(e)) => Err(unreachable(&format!("cannot reach 127.0.0.1:{port} on the node"), e)),
            Err(_) => Err(unreachable("opening a tunnel timed out", port)),
        }
    }

    /// Politely ends the session (best effort).
    pub async fn close(&self) {
        let _ = self.handle.disconnect(Disconnect::ByApplication, "", "en").await;
    }
}

/// Opens SSH sessions and keeps one per node (keyed by server id), reopening it when it died.
pub struct SshPool {
    key: Arc<PrivateKey>,
    options: SshOptions,
    config: Arc<client::Config>,
    slots: StdMutex<HashMap<i64, SessionSlot>>,
}

/// One node's current session (if any); locked while a session is being opened, so only one is.
type SessionSlot = Arc<Mutex<Option<Arc<SshSession>>>>;

impl SshPool {
    /// A pool logging in with `key`; sessions send keepalives and are never dropped for mere idleness.
    pub fn new(key: PrivateKey, options: SshOptions) -> Self {
        let config = client::Config {
            inactivity_timeout: None,
            keepalive_interval: Some(options.keepalive_interval),
            keepalive_max: options.keepalive_max,
            nodelay: true,
            ..Default::default()
        };
        Self { key: Arc::new(key), options, config: Arc::new(config), slots: StdMutex::new(HashMap::new()) }
    }

    /// The timeouts this pool applies.
    pub fn options(&self) -> SshOptions {
        self.options
    }

    fn slot(&self, server_id: i64) -> SessionSlot {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.entry(server_id).or_default().clone()
    }

    /// The node's live session, opening one if there is none (or it died, or the target changed).
    /// The bool says whether the session was reused (then a failure may just mean it went stale).
    pub async fn session(&self, node: &NodeTarget) -> Result<(Arc<SshSession>, bool), NodeError> {
        let slot = self.slot(node.server_id);
        let mut guard = slot.lock().await;
        if let Some(session) = guard.as_ref() {
            if !session.is_closed() && session.key == SessionKey::of(node) {
                return Ok((session.clone(), true));
            }
            session.close().await;
        }
        *guard = None;
        let session = Arc::new(self.connect(node).await?);
        *guard = Some(session.clone());
        Ok((session, false))
    }

    /// Forgets the node's session if it is still `session` (after a failure on it).
    pub async fn discard(&self, node: &NodeTarget, session: &Arc<SshSession>) {
        let slot = self.slot(node.server_id);
        let mut guard = slot.lock().await;
        if guard.as_ref().is_some_and(|s| Arc::ptr_eq(s, session)) {
            *guard = None;
            session.close().await;
        }
    }

    #[tracing::instrument(name = "ssh.connect", skip_all, fields(otel.kind = "client", server.id = node.server_id))]
    async fn connect(&self, node: &NodeTarget) -> Result<SshSession, NodeError> {
        let pin = node.host_key_fingerprint.clone();
        if pin.is_none() {
            return Err(NodeError::HostKeyNotPinned);
        }
        let mut handle = self.handshake(&node.ssh_host, node.ssh_port, pin).await?;
        let t = self.options.connect_timeout;
        tokio::time::timeout(t, self.authenticate(&mut handle, &node.ssh_user))
            .await
            .map_err(|_| unreachable("SSH login timed out", format!("no answer within {t:?}")))??;
        tracing::debug!(server.id = node.server_id, "SSH session opened");
        Ok(SshSession { handle, key: SessionKey::of(node), command_timeout: self.options.command_timeout })
    }

    /// TCP connect, key exchange and host key check, within the connect timeout.
    async fn handshake(&self, host: &str, port: u16, expect: Option<String>) -> Result<Handle<PinnedHost>, NodeError> {
        let verdict = Arc::new(StdMutex::new(KeyVerdict::default()));
        let handler = PinnedHost { expect, verdict: verdict.clone() };
        let t = self.options.connect_timeout;
        let result = tokio::time::timeout(t, client::connect(self.config.clone(), (host, port), handler)).await;
        let refused = verdict.lock().ok().and_then(|mut v| v.refused.take());
        match result {
            Err(_) => Err(unreachable(&format!("SSH to {host}:{port} timed out"), format!("{t:?}"))),
            Ok(Ok(handle)) => Ok(handle),
            Ok(Err(e)) => Err(refused.unwrap_or_else(|| unreachable(&format!("SSH to {host}:{port}"), e))),
        }
    }

    async fn authenticate(&self, handle: &mut Handle<PinnedHost>, user: &str) -> Result<(), NodeError> {
        let hash = if self.key.algorithm().is_rsa() {
            handle.best_supported_rsa_hash().await.map_err(|e| unreachable("SSH login", e))?.flatten()
        } else {
            None
        };
        let key = PrivateKeyWithHashAlg::new(self.key.clone(), hash);
        let result = handle.authenticate_publickey(user, key).await.map_err(|e| unreachable("SSH login", e))?;
        if result.success() {
            Ok(())
        } else {
            Err(NodeError::AuthFailed(format!("the node refused our key for user {user:?}")))
        }
    }

    /// Connects only to read the host key the node presents (no login): its `SHA256:…` fingerprint.
    pub async fn fetch_host_key(&self, host: &str, port: u16) -> Result<String, NodeError> {
        let verdict = Arc::new(StdMutex::new(KeyVerdict::default()));
        let handler = PinnedHost { expect: None, verdict: verdict.clone() };
        let t = self.options.connect_timeout;
        let result = tokio::time::timeout(t, client::connect(self.config.clone(), (host, port), handler)).await;
        let presented = verdict.lock().ok().and_then(|mut v| v.presented.take());
        match (presented, result) {
            (Some(fp), _) => Ok(fp),
            (None, Err(_)) => Err(unreachable(&format!("SSH to {host}:{port} timed out"), format!("{t:?}"))),
            (None, Ok(Err(e))) => Err(unreachable(&format!("SSH to {host}:{port}"), e)),
            (None, Ok(Ok(_))) => Err(unreachable(&format!("SSH to {host}:{port}"), "no host key seen")),
        }
    }
}
