//! `spawn_app()` and friends: the real application on port 0 against the test's own database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vpnshop::app::{self, AppState, Listeners};
use vpnshop::config::Settings;

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Test settings: `config/default.toml` + `config/test.toml`, ports 0, the shipped catalogue.
pub fn test_settings() -> Settings {
    let mut env = HashMap::new();
    env.insert("VPNSHOP_ENV".to_owned(), "test".to_owned());
    // the pool is handed in by the test; the URL only has to be present
    env.insert("DATABASE_URL".to_owned(), "postgres://unused@127.0.0.1/unused".to_owned());
    let mut settings = Settings::load_from(&manifest_dir().join("config"), env).expect("test settings load");
    settings.catalog.path = manifest_dir().join("config/plans.toml");
    settings
}

/// The Redis URL of the test run (scripts/dev test exports it; a local default otherwise).
pub fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub state: AppState,
    pub http: reqwest::Client,
    cancel: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the app and waits for it to finish.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.cancel.cancel();
        match self.handle.take() {
            Some(h) => h.await?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Starts the whole app (HTTP, metrics, workers) on the given pool, after `prepare` (migrations, catalogue).
pub async fn spawn_app(pool: PgPool) -> TestApp {
    spawn_app_with(pool, |_| {}).await
}

pub async fn spawn_app_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> TestApp {
    // VPNSHOP_TEST_LOG=debug (an EnvFilter) shows the app's logs in test output
    if let Ok(filter) = std::env::var("VPNSHOP_TEST_LOG") {
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let mut settings = test_settings();
    customize(&mut settings);
    let listeners = Listeners::bind(&settings).await.expect("bind test listeners");
    let (addr, metrics_addr) = (listeners.http_addr(), listeners.metrics_addr());
    let state = AppState::with_pool(settings, pool).expect("build state");
    app::prepare(&state).await.expect("prepare app");
    let cancel = CancellationToken::new();
    let handle = tokio::spawn(app::run(state.clone(), listeners, cancel.clone()));
    TestApp { addr, metrics_addr, state, http: reqwest::Client::new(), cancel, handle: Some(handle) }
}

/// Whether the test run promised every outside tool (scripts/dev test sets this): then a missing tool fails.
pub fn tools_required() -> bool {
    std::env::var("VPNSHOP_REQUIRE_TOOLS").is_ok_and(|v| v == "1")
}

/// `false` (skip, and say so) when a tool is missing; panics instead when the run requires every tool.
pub fn have(tool: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(!tools_required(), "VPNSHOP_REQUIRE_TOOLS=1 but {tool} is missing (scripts/dev test installs it)");
    eprintln!("skipping: {tool} is not installed (scripts/dev test installs it)");
    false
}

/// Checks Prometheus exposition text with `promtool check metrics`.
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if !tools_required() => {
            eprintln!("skipping promtool check: {e} (scripts/dev test installs it)");
            return;
        }
        Err(e) => panic!("promtool is required but cannot run: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // promtool exits 1 for lint warnings too; only an error (unparseable exposition) fails the test
    assert!(!report.contains("error while linting") && out.status.code() != Some(3), "promtool: {report}");
    let problems: Vec<&str> = report.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(problems.is_empty(), "promtool found problems:\n{report}");
}

/// The URL of a test's own database (sqlx::test made it; local test servers use trust auth), for running the
/// real binary against it.
pub fn database_url(pool: &PgPool) -> String {
    let o = pool.connect_options();
    format!(
        "postgres://{}@{}:{}/{}",
        o.get_username(),
        o.get_host(),
        o.get_port(),
        o.get_database().expect("test database name")
    )
}

/// A server description for tests that register nodes they never contact.
pub fn server_input(name: &str, location: &str) -> vpnshop::services::servers::ServerInput {
    vpnshop::services::servers::ServerInput {
        name: name.into(),
        location: location.into(),
        public_host: format!("{name}.example.com"),
        public_port: 443,
        ssh_host: None,
        ssh_port: 22,
        ssh_user: "vpnshop".into(),
        host_key: Some("SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8".into()),
        core: vpnshop::domain::server::Core::V2ray,
        protocol: vpnshop::domain::server::Protocol::Vmess,
        inbound_tag: "proxy".into(),
        api_port: 10085,
        config_path: None,
        capacity: 100,
        restart_command: None,
        base_config: None,
        inbounds: Vec::new(),
    }
}

/// Prints a benchmark's result block and appends it to `$VPNSHOP_BENCH_OUT/{file}` when that is set
/// (scripts/bench sets it).
pub fn bench_report(file: &str, block: &str) {
    println!("\n{block}\n");
    if let Ok(dir) = std::env::var("VPNSHOP_BENCH_OUT") {
        use std::io::Write;
        std::fs::create_dir_all(&dir).expect("bench output dir");
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(std::path::Path::new(&dir).join(file))
            .expect("bench output file");
        writeln!(out, "{block}\n").expect("write bench output");
    }
}

/// Runs a benchmark on its own multi-threaded runtime (the binary runs on one; `#[sqlx::test]` gives a
/// current-thread one). The servers under test live on this runtime.
pub fn multi_thread<F>(bench: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("bench runtime").block_on(bench)
    })
    .join()
    .expect("benchmark panicked")
}
