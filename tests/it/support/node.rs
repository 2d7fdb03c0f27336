//! `TestNode`: a real node on loopback — our own `sshd` (own host key, own config, key login for the current
//! user) and a real `v2ray` with the API, stats and a `proxy` inbound, all inside one temp dir.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tempfile::TempDir;
use uuid::Uuid;
use vpnshop::domain::server::{Core, Protocol};
use vpnshop::provision::NodeTarget;
use vpnshop::provision::render::ClientInbound;

use super::{ClientParams, SSHD, V2RAY, descendants, free_port, kill_pids, run, wait_for_port, wait_for_port_closed};

const READY: Duration = Duration::from_secs(10);
static NEXT_SERVER_ID: AtomicI64 = AtomicI64::new(1);

/// A running sshd + v2ray pair. Stops both (and every sshd session) when dropped.
pub struct TestNode {
    dir: TempDir,
    pub server_id: i64,
    pub protocol: Protocol,
    pub ssh_port: u16,
    pub api_port: u16,
    pub proxy_port: u16,
    /// `SHA256:…` of the sshd host key, as `ssh-keygen -lf` prints it.
    pub host_fingerprint: String,
    user: String,
    sshd: Mutex<Option<Child>>,
}

impl TestNode {
    /// A VMess (AEAD) node.
    pub async fn start() -> TestNode {
        Self::start_with(Protocol::Vmess).await
    }

    pub async fn start_with(protocol: Protocol) -> TestNode {
        let dir = tempfile::Builder::new().prefix("vpnshop-node-").tempdir().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_ed25519"), "ed25519");
        keygen(&d.join("client_ed25519"), "ed25519");
        keygen(&d.join("client_rsa"), "rsa");
        let authorized = [d.join("client_ed25519.pub"), d.join("client_rsa.pub")]
            .iter()
            .map(|p| fs::read_to_string(p).expect("public key"))
            .collect::<String>();
        fs::write(d.join("authorized_keys"), authorized).expect("authorized_keys");
        let fingerprint = run(Command::new("ssh-keygen").arg("-lf").arg(d.join("host_ed25519.pub")));
        let host_fingerprint = fingerprint.split_whitespace().nth(1).expect("fingerprint field").to_owned();
        let user = run(Command::new("id").arg("-un")).trim().to_owned();

        let node = TestNode {
            server_id: NEXT_SERVER_ID.fetch_add(1, Ordering::Relaxed),
            protocol,
            ssh_port: free_port(),
            api_port: free_port(),
            proxy_port: free_port(),
            host_fingerprint,
            user,
            sshd: Mutex::new(None),
            dir,
        };
        fs::write(node.config_path(), node.base_config()).expect("v2ray config");
        fs::write(node.dir.path().join("core.sh"), core_script(node.dir.path())).expect("core.sh");
        node.write_sshd_config();
        node.start_core().await;
        node.start_sshd().await;
        node
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the provisioner would use to reach this node (pinned host key, `proxy` inbound).
    pub fn target(&self) -> NodeTarget {
        NodeTarget {
            server_id: self.server_id,
            name: format!("test-node-{}", self.server_id),
            ssh_host: "127.0.0.1".into(),
            ssh_port: self.ssh_port,
            ssh_user: self.user.clone(),
            host_key_fingerprint: Some(self.host_fingerprint.clone()),
            core: Core::V2ray,
            api_port: self.api_port,
            inbounds: vec![ClientInbound {
                tag: "proxy".into(),
                protocol: self.protocol,
                core: Core::V2ray,
                flow: None,
            }],
            config_path: self.config_path().to_string_lossy().into_owned(),
            restart_command: self.restart_command(),
        }
    }

    /// The ed25519 client key sshd accepts.
    pub fn key_path(&self) -> PathBuf {
        self.dir().join("client_ed25519")
    }

    /// An RSA client key sshd accepts too.
    pub fn rsa_key_path(&self) -> PathBuf {
        self.dir().join("client_rsa")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir().join("config.json")
    }

    /// Restarts this node's v2ray from its config file (what `restart_core` runs over SSH).
    pub fn restart_command(&self) -> String {
        format!("sh {}/core.sh restart", self.dir().display())
    }

    /// How a client reaches this node's `proxy` inbound as user `uuid`.
    pub fn client_params(&self, uuid: Uuid) -> ClientParams {
        ClientParams { protocol: self.protocol, host: "127.0.0.1".into(), port: self.proxy_port, uuid }
    }

    /// The spec's working server config: API + stats + policy, the API inbound, an empty `proxy` inbound (no
    /// isolation: the node API tests browse to an origin on loopback through it).
    pub fn base_config(&self) -> String {
        let proxy_settings = match self.protocol {
            Protocol::Vmess => serde_json::json!({"clients": []}),
            Protocol::Vless => serde_json::json!({"decryption": "none", "clients": []}),
        };
        let config = serde_json::json!({
            "log": {"loglevel": "warning"},
            "api": {"tag": "api", "services": ["HandlerService", "StatsService"]},
            "stats": {},
            "policy": {
                "levels": {"0": {"statsUserUplink": true, "statsUserDownlink": true}},
                "system": {"statsInboundUplink": true, "statsInboundDownlink": true}
            },
            "inbounds": [
                {"tag": "api", "listen": "127.0.0.1", "port": self.api_port, "protocol": "dokodemo-door",
                 "settings": {"address": "127.0.0.1"}},
                {"tag": "proxy", "listen": "127.0.0.1", "port": self.proxy_port,
                 "protocol": self.protocol.to_string(), "settings": proxy_settings}
            ],
            "outbounds": [{"tag": "direct", "protocol": "freedom", "settings": {}}],
            "routing": {"rules": [{"type": "field", "inboundTag": ["api"], "outboundTag": "api"}]}
        });
        serde_json::to_string_pretty(&config).expect("config json")
    }

    /// [`Self::base_config`] with the shop's isolation rules (what a node prepared by setup.sh runs).
    pub fn isolated_base_config(&self) -> String {
        let mut config: serde_json::Value = serde_json::from_str(&self.base_config()).expect("config json");
        vpnshop::provision::isolation::isolate(&mut config, &[], &[]).expect("isolated test config");
        serde_json::to_string_pretty(&config).expect("config json")
    }

    fn core(&self, action: &str) {
        run(Command::new("sh").arg(self.dir().join("core.sh")).arg(action));
    }

    /// Stops v2ray and waits until its ports are closed.
    pub async fn kill_core(&self) {
        self.core("stop");
        wait_for_port_closed(self.api_port, READY).await.expect("v2ray stopped");
    }

    /// Starts v2ray (if it is not running) and waits until its API and proxy ports listen.
    pub async fn start_core(&self) {
        self.core("start");
        self.wait_core().await;
    }

    /// Waits until v2ray's API and proxy ports listen (e.g. after `restart_core`).
    pub async fn wait_core(&self) {
        for port in [self.api_port, self.proxy_port] {
            if let Err(e) = wait_for_port(port, READY).await {
                panic!("v2ray did not come up: {e}\n{}", self.log("v2ray.log"));
            }
        }
    }

    /// Starts sshd on the node's port and waits until it listens.
    pub async fn start_sshd(&self) {
        if fs::metadata("/run/sshd").is_err() {
            // sshd running as root needs its privilege separation directory; ordinary users do not
            let _ = fs::create_dir_all("/run/sshd");
        }
        let log = fs::OpenOptions::new().create(true).append(true).open(self.dir().join("sshd.log")).expect("log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(self.dir().join("sshd_config"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start sshd");
        *self.sshd.lock().unwrap() = Some(child);
        if let Err(e) = wait_for_port(self.ssh_port, READY).await {
            panic!("sshd did not come up: {e}\n{}", self.log("sshd.log"));
        }
    }

    /// Stops sshd and every session it runs (the node is then unreachable over SSH).
    pub async fn stop_sshd(&self) {
        let child = self.sshd.lock().unwrap().take();
        if let Some(mut child) = child {
            kill_pids(&descendants(child.id()));
            let _ = child.kill();
            let _ = child.wait();
        }
        wait_for_port_closed(self.ssh_port, READY).await.expect("sshd stopped");
    }

    /// How many times someone logged in with a key (from sshd's log).
    pub fn logins(&self) -> usize {
        self.log("sshd.log").matches("Accepted publickey").count()
    }

    /// A log file of the node (`sshd.log`, `v2ray.log`), for assertions and failure messages.
    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.dir().join(name)).unwrap_or_default()
    }

    fn write_sshd_config(&self) {
        let d = self.dir().display();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_ed25519\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n\
             AllowTcpForwarding yes\nLogLevel VERBOSE\n\
             # bash skips ~/.bashrc for ssh commands when it is not the top-level shell: the login user's\n\
             # interactive set-up (pyenv and the like) must not run, or hang, for our commands\n\
             SetEnv SHLVL=1\n",
            port = self.ssh_port
        );
        fs::write(self.dir().join("sshd_config"), config).expect("sshd_config");
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Ok(mut sshd) = self.sshd.lock()
            && let Some(mut child) = sshd.take()
        {
            kill_pids(&descendants(child.id()));
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("sh").arg(self.dir().join("core.sh")).arg("stop").output();
    }
}

fn keygen(path: &Path, kind: &str) {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", "", "-C", "vpnshop-test", "-f"]).arg(path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    run(&mut cmd);
}

/// start | stop | restart the node's v2ray, tracked by a pidfile (a dead or zombie pid counts as stopped).
fn core_script(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"#!/bin/sh
dir='{d}'
pidfile="$dir/v2ray.pid"
alive() {{
  state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ]
}}
stop() {{
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  kill "$pid" 2>/dev/null
  i=0
  while alive "$pid" && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
  alive "$pid" && kill -9 "$pid" 2>/dev/null
  rm -f "$pidfile"
}}
start() {{
  if [ -f "$pidfile" ] && alive "$(cat "$pidfile")"; then return 0; fi
  setsid {V2RAY} -config "$dir/config.json" >>"$dir/v2ray.log" 2>&1 </dev/null &
  echo $! > "$pidfile"
}}
case "$1" in
  start) start ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: core.sh start|stop|restart" >&2; exit 2 ;;
esac
"#
    )
}
