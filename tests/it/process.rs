//! The real `vpnshop` binary: start, readiness, graceful stop, settings errors, and the CLI.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::helpers::{database_url, manifest_dir};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The real binary on the test's database, with nothing of this environment but `PATH`.
pub fn vpnshop(db: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vpnshop"));
    cmd.current_dir(manifest_dir())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VPNSHOP_ENV", "test")
        .env("DATABASE_URL", db)
        .env("RUST_LOG", "info");
    cmd
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[sqlx::test(migrations = false)]
async fn serve_starts_without_a_bot_token_and_stops_cleanly_on_sigterm(pool: PgPool) {
    let (http, metrics) = (free_port(), free_port());
    let child = vpnshop(&database_url(&pool))
        .arg("serve")
        .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{http}"))
        .env("VPNSHOP__METRICS__ADDR", format!("127.0.0.1:{metrics}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let client = reqwest::Client::new();
    let ready = loop {
        if let Ok(res) = client.get(format!("http://127.0.0.1:{http}/readyz")).send().await {
            break res;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready.status(), 200, "migrated at start");
    let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM plans").fetch_one(&pool).await.unwrap();
    assert_eq!(plans, 256, "the catalogue was seeded at first start");
    let scrape = client.get(format!("http://127.0.0.1:{metrics}/metrics")).send().await.unwrap();
    assert_eq!(scrape.status(), 200);

    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let log = text(&out);
    assert!(out.status.success(), "exit status {:?}\n{log}", out.status);
    assert!(log.contains("Telegram bot disabled"), "{log}");
    assert_eq!(log.matches("provisioning disabled").count(), 1, "said once: {log}");
    assert!(log.contains("SIGTERM received") && log.contains("shutting down"), "{log}");
}

#[sqlx::test(migrations = false)]
async fn invalid_settings_stop_the_start_and_name_the_key(pool: PgPool) {
    let out = vpnshop(&database_url(&pool)).arg("serve").env("VPNSHOP__HTTP__ADDR", "nowhere").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("http.addr"), "{}", text(&out));

    let out = vpnshop(&database_url(&pool)).arg("serve").env("VPNSHOP_ENV", "production").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let msg = text(&out);
    assert!(msg.contains("security.jwt_secret"), "{msg}");
    assert!(!msg.contains("postgres://"), "no connection strings in errors: {msg}");
}

#[sqlx::test(migrations = false)]
async fn the_catalogue_cli_seeds_once_and_lists(pool: PgPool) {
    let db = database_url(&pool);
    let out = vpnshop(&db).arg("migrate").output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let first = vpnshop(&db).args(["catalog", "seed"]).output().unwrap();
    assert!(first.status.success(), "{}", text(&first));
    assert!(text(&first).contains("plans +256"), "{}", text(&first));
    let second = vpnshop(&db).args(["catalog", "seed"]).output().unwrap();
    assert!(text(&second).contains("nothing changed"), "{}", text(&second));
    let list = vpnshop(&db).args(["catalog", "list", "--location", "de"]).output().unwrap();
    let listing = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listing.contains("de-30d-1dev-50gb") && listing.contains("$2.99"), "{listing}");
    assert!(listing.contains("270,000 Toman"), "{listing}");
    assert!(listing.trim_end().ends_with("64 plans"), "{listing}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_server_cli_adds_lists_and_removes(pool: PgPool) {
    let db = database_url(&pool);
    assert!(vpnshop(&db).args(["catalog", "seed"]).output().unwrap().status.success());
    let add = vpnshop(&db)
        .args(["server", "add", "--name", "nl-1", "--location", "nl", "--host", "203.0.113.7", "--capacity", "50"])
        .output()
        .unwrap();
    assert!(add.status.success(), "{}", text(&add));
    assert!(text(&add).contains("no host key pinned"), "{}", text(&add));
    let list = vpnshop(&db).args(["server", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("nl-1"));
    let bad = vpnshop(&db).args(["server", "add", "--name", "x", "--location", "zz", "--host", "h"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).contains("unknown location \"zz\""), "{}", text(&bad));
    let bad = vpnshop(&db)
        .args(["server", "add", "--name", "x", "--location", "nl", "--host", "h", "--core", "singbox"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2), "clap rejects an unknown core");
    let rm = vpnshop(&db).args(["server", "remove", "nl-1"]).output().unwrap();
    assert!(rm.status.success(), "{}", text(&rm));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn commands_print_their_result_on_stdout_and_errors_once_on_stderr(pool: PgPool) {
    let db = database_url(&pool);
    // as an operator runs them: no RUST_LOG, the default environment
    let plain = |db: &str, args: &[&str]| {
        vpnshop(db).env_remove("RUST_LOG").env_remove("VPNSHOP_ENV").args(args).output().unwrap()
    };
    for args in [&["catalog", "seed"][..], &["server", "list"], &["catalog", "list", "--location", "nl"]] {
        let out = plain(&db, args);
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{args:?}: {stdout}{stderr}");
        assert!(!stdout.trim().is_empty(), "{args:?} prints its result on stdout");
        assert!(stderr.trim().is_empty(), "{args:?} prints nothing else (no log lines): {stderr}");
    }
    // (a short name: Postgres cuts names at 63 bytes, and the test database's name is long)
    let missing = format!("{}/vpnshop_no_such_database", db.rsplit_once('/').unwrap().0);
    let out = plain(&missing, &["migrate"]);
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{missing}: {stdout}{stderr}");
    assert!(stdout.trim().is_empty(), "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.matches("does not exist").count(), 1, "the cause said once: {stderr}");
}

/// A local stand-in for Sentry's ingest endpoint: records the paths and bodies it receives.
pub async fn fake_sentry() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>) {
    use axum::body::Bytes;
    use axum::http::Uri;
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, body: Bytes| {
        let record = record.clone();
        async move {
            record.lock().unwrap().push((uri.path().to_owned(), String::from_utf8_lossy(&body).into_owned()));
            "{}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (port, seen)
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn failures_reach_sentry_when_a_dsn_is_set(pool: PgPool) {
    let (port, seen) = fake_sentry().await;
    let db = database_url(&pool);
    let out = tokio::task::spawn_blocking(move || {
        vpnshop(&db)
            .args(["catalog", "seed", "--file", "/nonexistent/plans.toml"])
            .env("VPNSHOP__SENTRY__DSN", format!("http://publickey@127.0.0.1:{port}/42"))
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let seen = seen.lock().unwrap();
    let event =
        seen.iter().find(|(path, _)| path == "/api/42/envelope/").unwrap_or_else(|| panic!("no envelope: {seen:?}"));
    assert!(event.1.contains("/nonexistent/plans.toml"), "{}", event.1);
    assert!(!event.1.contains("postgres://"), "no connection strings are sent");
}
