//! The shop under soak: the real release binary (`vpnshop serve`) as a child process, configured like production
//! (`VPNSHOP_ENV=production`: config/default.toml + config/production.toml, JSON logs) on the test's database, the
//! real Redis and, when given, its bot on the fake Telegram; what it costs (RSS from /proc), what it says
//! (/metrics, its log) and a graceful stop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::bot::{CARD, SECRET};
use crate::support::{FakeTelegram, free_port};

/// The admin (Telegram id) who receives the receipts; reviews are decided over the admin API.
pub const ADMIN: i64 = 900_001;
/// The operator's reverse proxy: every request reaches the shop from here and names its client in
/// `X-Forwarded-For` (docs/operations.md, "Behind a reverse proxy").
pub const PROXY: &str = "127.0.0.1";

/// A running `vpnshop serve`; killed when dropped without [`ShopProcess::stop`].
pub struct ShopProcess {
    child: Option<Child>,
    pub http: SocketAddr,
    pub metrics: SocketAddr,
    pub log: PathBuf,
}

impl ShopProcess {
    /// Starts `vpnshop serve` on `db` (its SSH key for the nodes at `ssh_key`), logging into `log`; with `bot`,
    /// in webhook mode against that fake Telegram, with card payments and `ADMIN` as the reviewing admin.
    pub fn start(db: &str, ssh_key: &Path, redis_prefix: &str, bot: Option<&FakeTelegram>, log: PathBuf) -> Self {
        let (http, metrics) = (free_port(), free_port());
        let out = std::fs::File::create(&log).expect("shop log file");
        let mut cmd = crate::process::vpnshop(db);
        cmd.arg("serve")
            .env("VPNSHOP_ENV", "production")
            .env_remove("RUST_LOG")
            .env("REDIS_URL", crate::helpers::redis_url())
            .env("VPNSHOP__REDIS__PREFIX", redis_prefix)
            .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{http}"))
            .env("VPNSHOP__METRICS__ADDR", format!("127.0.0.1:{metrics}"))
            .env("VPNSHOP__HTTP__TRUSTED_PROXIES", PROXY)
            .env("VPNSHOP__SECURITY__JWT_SECRET", "soak-benchmark-jwt-secret-0123456789abcdef")
            .env("VPNSHOP__PROVISION__SSH_KEY_PATH", ssh_key)
            .env("VPNSHOP__INSTANCE__NAME", format!("soak-{http}"));
        if let Some(tg) = bot {
            cmd.env("TELEGRAM_BOT_TOKEN", tg.token())
                .env("VPNSHOP__TELEGRAM__API_URL", tg.url().as_str())
                .env("VPNSHOP__TELEGRAM__PUBLIC_URL", "https://shop.example/")
                .env("VPNSHOP__TELEGRAM__WEBHOOK_SECRET", SECRET)
                .env("VPNSHOP__TELEGRAM__ADMIN_IDS", ADMIN.to_string())
                .env("VPNSHOP__PAYMENTS__CARD__NUMBER", CARD)
                .env("VPNSHOP__PAYMENTS__CARD__HOLDER", "Shop Owner")
                .env("VPNSHOP__PAYMENTS__CARD__BANK", "Mellat");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log fd"))
            .stderr(out)
            .spawn()
            .expect("start vpnshop serve");
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        ShopProcess { child: Some(child), http: local(http), metrics: local(metrics), log }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// Waits until `/readyz` answers 200 (migrated, catalogue seeded, Redis up).
    pub async fn wait_ready(&mut self, http: &reqwest::Client) {
        let start = Instant::now();
        loop {
            if let Ok(res) = http.get(self.url("/readyz")).send().await
                && res.status() == 200
            {
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("vpnshop serve exited with {status}:\n{}", self.log_tail());
            }
            assert!(start.elapsed() < Duration::from_secs(60), "serve not ready:\n{}", self.log_tail());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Every sample of `/metrics` (series with its labels → value).
    pub async fn scrape(&self, http: &reqwest::Client) -> Metrics {
        let text = http
            .get(format!("http://{}/metrics", self.metrics))
            .send()
            .await
            .expect("scrape /metrics")
            .text()
            .await
            .expect("/metrics body");
        Metrics::parse(&text)
    }

    /// SIGTERM, then waits (at most 60 s) for the exit.
    pub async fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill -TERM");
        assert!(term.success());
        tokio::task::spawn_blocking(move || {
            let limit = Instant::now() + Duration::from_secs(60);
            loop {
                if let Some(status) = child.try_wait().expect("wait for vpnshop") {
                    return status;
                }
                if Instant::now() > limit {
                    let _ = child.kill();
                    panic!("vpnshop serve did not stop within 60 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .expect("waiter")
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for ShopProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A process's resident set (VmRSS), in KiB (0 once it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time a process has used so far (user + system), in seconds (/proc counts in USER_HZ, 100 a second).
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // "pid (comm) state ppid …": utime and stime are the 12th and 13th fields after the comm
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

/// The log lines of a level (JSON logs: `"level":"ERROR"`).
pub fn log_lines(log: &Path, level: &str) -> Vec<String> {
    let needle = format!("\"level\":\"{level}\"");
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}

/// A Prometheus scrape: `name{labels}` → value (histogram buckets left out).
#[derive(Debug, Default, Clone)]
pub struct Metrics(BTreeMap<String, f64>);

impl Metrics {
    fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.contains("_bucket{"))
            .filter_map(|l| l.rsplit_once(' '))
            .filter_map(|(series, value)| Some((series.to_owned(), value.parse().ok()?)))
            .collect();
        Metrics(samples)
    }

    /// The series of `family` whose value grew since `before`, with the growth.
    pub fn grown(&self, before: &Metrics, family: &str) -> Vec<(String, f64)> {
        self.0
            .iter()
            .filter(|(series, _)| series.split('{').next() == Some(family))
            .map(|(series, v)| (series.clone(), v - before.0.get(series).copied().unwrap_or(0.0)))
            .filter(|(_, grown)| *grown > 0.0)
            .collect()
    }
}
