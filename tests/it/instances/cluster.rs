//! Several real `vpnshop serve` processes on one database, one Redis key prefix and one fake Telegram, in webhook
//! mode, provisioning one real node: started, killed with SIGKILL and restarted under their own names and ports.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::bot::{CARD, SECRET};
use crate::helpers::{manifest_dir, redis_url};
use crate::payments::ADMIN;
use crate::support::{FakeTelegram, TestNode, free_port};

/// The settings every instance shares (on top of the shipped `default.toml`): fast job leases and polling, the
/// auto-accept sweep every second, card payments, two admins' worth of reviews, and Telegram's per-chat limit
/// shortened so that the admins' chats (every review and decision goes there) are not the test's critical path.
fn shared_settings() -> String {
    format!(
        r#"
[metrics]
addr = "127.0.0.1:0"

[database]
max_connections = 10

[jobs]
poll_interval_ms = 50
lease_secs = 3
backoff_base_secs = 1
backoff_max_secs = 2

[scheduler]
enabled = true

[scheduler.sweeps]
auto_accept = "* * * * * *"

[telegram]
admin_ids = [{ADMIN}]

[telegram.limits]
chat_interval_ms = {CHAT_INTERVAL_MS}
per_second = 200

[payments.card]
number = "{CARD}"
holder = "Shop Owner"
bank = "Mellat"
review_mins = 30
auto_accept_notice_secs = 1

[trial]
global_max = 1000

[provision]
connect_timeout_secs = 3
op_timeout_secs = 15
removal_grace_secs = 1
"#
    )
}

/// `telegram.limits.chat_interval_ms` of every instance: new messages to one chat are at least this far apart.
pub const CHAT_INTERVAL_MS: u64 = 1000;

/// One `vpnshop serve` process (or its place while it is down).
pub struct Instance {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
    /// Its stdout and stderr, across restarts.
    log: PathBuf,
}

impl Instance {
    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}/telegram/webhook", self.port)
    }

    /// The job workers' and the inbox's lease holder names start with this.
    pub fn worker_prefix(&self) -> String {
        format!("{}/", self.name)
    }
}

/// The instances, their settings directory and logs; every process is killed when dropped.
pub struct Cluster {
    /// The settings and the logs; removed when dropped.
    _dir: TempDir,
    db: String,
    env: Vec<(String, String)>,
    pub instances: Vec<Instance>,
}

impl Cluster {
    /// Settings for `n` instances named `shop-a`, `shop-b`, … (none started yet).
    pub fn new(db: &str, n: usize, tg: &FakeTelegram, node: &TestNode) -> Cluster {
        let dir = tempfile::Builder::new().prefix("vpnshop-instances-").tempdir().expect("temp dir");
        let config = dir.path().join("config");
        fs::create_dir(&config).expect("config dir");
        fs::copy(manifest_dir().join("config/default.toml"), config.join("default.toml")).expect("default.toml");
        fs::write(config.join("test.toml"), shared_settings()).expect("test.toml");
        let prefix = format!("vpnshop-test-{}", uuid::Uuid::new_v4().simple());
        let env = [
            ("VPNSHOP_CONFIG_DIR", config.to_string_lossy().into_owned()),
            ("REDIS_URL", redis_url()),
            ("VPNSHOP__REDIS__PREFIX", prefix),
            ("VPNSHOP__TELEGRAM__TOKEN", tg.token().to_owned()),
            ("VPNSHOP__TELEGRAM__API_URL", tg.url().to_string()),
            ("VPNSHOP__TELEGRAM__PUBLIC_URL", "https://shop.example/".to_owned()),
            ("VPNSHOP__TELEGRAM__WEBHOOK_SECRET", SECRET.to_owned()),
            ("VPNSHOP__PROVISION__SSH_KEY_PATH", node.key_path().to_string_lossy().into_owned()),
        ]
        .map(|(k, v)| (k.to_owned(), v));
        let instances = (0..n)
            .map(|i| {
                let name = format!("shop-{}", char::from(b'a' + i as u8));
                let log = dir.path().join(format!("{name}.log"));
                Instance { name, port: free_port(), child: None, log }
            })
            .collect();
        Cluster { _dir: dir, db: db.to_owned(), env: env.to_vec(), instances }
    }

    /// Starts instance `i` (again) under its name and port, and waits until it is ready.
    pub async fn start(&mut self, i: usize) {
        let instance = &mut self.instances[i];
        assert!(instance.child.is_none(), "{} is running", instance.name);
        let log = fs::OpenOptions::new().create(true).append(true).open(&instance.log).expect("instance log");
        let child = crate::process::vpnshop(&self.db)
            .arg("serve")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env("VPNSHOP__INSTANCE__NAME", &instance.name)
            .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{}", instance.port))
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("start vpnshop serve");
        instance.child = Some(child);
        self.wait_ready(i).await;
    }

    async fn wait_ready(&mut self, i: usize) {
        let url = format!("http://127.0.0.1:{}/readyz", self.instances[i].port);
        let http = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(res) = http.get(&url).timeout(Duration::from_secs(2)).send().await
                && res.status() == 200
            {
                return;
            }
            let exited = self.instances[i].child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            assert!(exited.is_none(), "{} exited with {exited:?}:\n{}", self.instances[i].name, self.log(i));
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{} not ready:\n{}",
                self.instances[i].name,
                self.log(i)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the process ends at once, in the middle of whatever it was doing.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.instances[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The end of an instance's log (for failure messages).
    pub fn log(&self, i: usize) -> String {
        tail(&self.instances[i].log, 60)
    }

    /// The lines of every instance's log that carry a warning or an error.
    pub fn complaints(&self) -> Vec<String> {
        self.instances
            .iter()
            .flat_map(|instance| {
                let text = fs::read_to_string(&instance.log).unwrap_or_default();
                text.lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .map(|l| format!("{}: {l}", instance.name))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.instances.len() {
            self.kill(i);
            if std::thread::panicking() {
                eprintln!("--- the end of {}'s log ---\n{}", self.instances[i].name, self.log(i));
            }
        }
    }
}

/// Keeps a runtime running in the background until dropped.
pub struct OwnRuntime(Option<tokio::runtime::Runtime>);

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The fake Telegram on a runtime of its own: the moment it records a call's arrival is not held up by the test's
/// own work (customers, deliveries, queries) on the test's single thread.
pub fn fake_telegram() -> (FakeTelegram, OwnRuntime) {
    std::thread::spawn(|| {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("a runtime");
        let tg = runtime.block_on(FakeTelegram::start());
        (tg, OwnRuntime(Some(runtime)))
    })
    .join()
    .expect("the fake Telegram starts")
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
