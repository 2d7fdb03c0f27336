//! The two-release test: the previous release (`deploy/previous-release`, built by `scripts/dev test` and named
//! by `VPNSHOP_PREVIOUS_BIN`) serves customers and admins while this release checks and applies its migrations
//! and then serves beside it on the same database. Not one request to the previous release may fail.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::helpers::{database_url, manifest_dir, tools_required};
use crate::support::{FakeTelegram, TgUser, free_port, message_update};

const SECRET: &str = "upgrade-webhook-secret";
const FEED_TOKEN: &str = "upgradeFeedToken_0123456789abcdefghijklmnop";

/// The previous release's binary, or `None` (with the reason printed) when this run does not have it.
fn previous_release() -> Option<PathBuf> {
    match std::env::var_os("VPNSHOP_PREVIOUS_BIN").map(PathBuf::from) {
        Some(bin) if bin.is_file() => Some(bin),
        other => {
            let why = format!("VPNSHOP_PREVIOUS_BIN is {other:?}, not a built binary (scripts/dev test builds it)");
            assert!(!tools_required(), "VPNSHOP_REQUIRE_TOOLS=1 but {why}");
            eprintln!("skipping the two-release test: {why}");
            None
        }
    }
}

/// One release: its binary and the directory it runs in (where its own `config/` is).
#[derive(Clone)]
struct Release {
    name: &'static str,
    bin: PathBuf,
    dir: PathBuf,
}

impl Release {
    fn command(&self, db: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.current_dir(&self.dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("VPNSHOP_ENV", "test")
            .env("DATABASE_URL", db)
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        cmd
    }

    /// Runs a command of this release to its end: exit code, stdout, stderr.
    async fn run(&self, db: &str, args: &[&str]) -> (Option<i32>, String, String) {
        let mut cmd = self.command(db);
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await.expect("finished").unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    }

    /// `serve` with the Telegram bot on the fake Bot API, waiting until `/readyz` answers 200.
    async fn serve(&self, db: &str, tg: &FakeTelegram, logs: &Path) -> Instance {
        let http = free_port();
        let log = logs.join(format!("{}-{http}.log", self.name));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = self.command(db);
        cmd.arg("serve")
            .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{http}"))
            .env("VPNSHOP__METRICS__ADDR", format!("127.0.0.1:{}", free_port()))
            .env("TELEGRAM_BOT_TOKEN", tg.token())
            .env("VPNSHOP__TELEGRAM__API_URL", tg.url().as_str())
            .env("VPNSHOP__TELEGRAM__PUBLIC_URL", "https://shop.example.com")
            .env("VPNSHOP__TELEGRAM__WEBHOOK_SECRET", SECRET)
            // one test client makes every request
            .env("VPNSHOP__HTTP__RATE_LIMIT_PER_SECOND", "100000")
            .env("VPNSHOP__HTTP__RATE_LIMIT_BURST", "100000")
            .env("VPNSHOP__SECURITY__API_RATE_LIMIT_PER_SECOND", "100000")
            .env("VPNSHOP__SECURITY__API_RATE_LIMIT_BURST", "100000")
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        let mut child = cmd.spawn().unwrap();
        let base = format!("http://127.0.0.1:{http}");
        let started = Instant::now();
        loop {
            if let Ok(res) = reqwest::get(format!("{base}/readyz")).await
                && res.status() == 200
            {
                return Instance { child, base, log };
            }
            let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
            assert!(child.try_wait().unwrap().is_none(), "{} serve exited:\n{}", self.name, log_text());
            assert!(started.elapsed() < Duration::from_secs(60), "{} serve not ready:\n{}", self.name, log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

struct Instance {
    child: tokio::process::Child,
    base: String,
    log: PathBuf,
}

impl Instance {
    /// SIGTERM, and a clean exit.
    async fn stop(mut self) {
        let pid = self.child.id().unwrap().to_string();
        assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait()).await.unwrap().unwrap();
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        assert!(status.success(), "exit {status:?}:\n{log}");
    }
}

/// What the traffic uses: an admin API key, a customer with a working feed, customers to ban and unban.
#[derive(Clone)]
struct Shop {
    key: String,
    reader: i64,
    toggled: i64,
}

/// Requests against one instance, over and over, until stopped; every failure is kept.
#[derive(Default)]
struct Traffic {
    rounds: AtomicU64,
    requests: AtomicU64,
    failures: std::sync::Mutex<Vec<String>>,
}

static UPDATE_ID: AtomicU32 = AtomicU32::new(500_000);

async fn traffic(base: String, shop: Shop, seen: Arc<Traffic>, stop: CancellationToken) {
    let http = reqwest::Client::new();
    let api = |path: &str| format!("{base}/api/v1{path}");
    while !stop.is_cancelled() {
        let update = message_update(UPDATE_ID.fetch_add(1, Ordering::Relaxed), &TgUser::new(990_001, "Sara"), "/start");
        let round = seen.rounds.load(Ordering::Relaxed);
        let requests = [
            ("readyz", http.get(format!("{base}/readyz"))),
            ("feed", http.get(format!("{base}/sub/{FEED_TOKEN}"))),
            ("api read", http.get(api(&format!("/users/{}", shop.reader))).bearer_auth(&shop.key)),
            (
                "api ban",
                http.post(api(&format!("/users/{}/ban", shop.toggled)))
                    .bearer_auth(&shop.key)
                    .json(&json!({"reason": format!("traffic round {round}")})),
            ),
            ("api unban", http.post(api(&format!("/users/{}/unban", shop.toggled))).bearer_auth(&shop.key)),
            (
                "telegram webhook",
                http.post(format!("{base}/telegram/webhook"))
                    .header("X-Telegram-Bot-Api-Secret-Token", SECRET)
                    .json(&update),
            ),
        ];
        for (what, request) in requests {
            seen.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match request.send().await {
                Ok(res) if res.status() == 200 => match (what, res.text().await) {
                    ("feed", Ok(body)) if !device_links(&body).contains("vmess://") => {
                        Some(format!("no device link: {body}"))
                    }
                    (_, Ok(_)) => None,
                    (_, Err(e)) => Some(format!("body: {e}")),
                },
                Ok(res) => Some(format!("{}: {}", res.status(), res.text().await.unwrap_or_default())),
                Err(e) => Some(e.to_string()),
            };
            if let Some(f) = failure {
                seen.failures.lock().unwrap().push(format!("{what}: {f}"));
            }
        }
        seen.rounds.fetch_add(1, Ordering::Relaxed);
        // a steady trickle, not a flood: two cores run both instances, Postgres and this test
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A feed's device links (the body is base64, as subscription apps read it).
fn device_links(body: &str) -> String {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(body.trim()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits until the traffic has gone `rounds` more rounds.
async fn rounds_more(seen: &Traffic, rounds: u64) {
    let target = seen.rounds.load(Ordering::Relaxed) + rounds;
    let started = Instant::now();
    while seen.rounds.load(Ordering::Relaxed) < target {
        assert!(started.elapsed() < Duration::from_secs(120), "traffic stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Four customers (the first with an active subscription and its feed), written as the previous release's
/// schema has them.
async fn customers(pool: &PgPool) -> [i64; 4] {
    let user = |tg: i64| {
        sqlx::query_scalar::<_, i64>("INSERT INTO users (telegram_id) VALUES ($1) RETURNING id")
            .bind(tg)
            .fetch_one(pool)
    };
    let mut ids = [0; 4];
    for (i, id) in ids.iter_mut().enumerate() {
        *id = user(880_001 + i as i64).await.unwrap();
    }
    sqlx::query(
        "WITH p AS (SELECT id, seats, duration_days FROM plans WHERE location_code = 'de' ORDER BY id LIMIT 1),
              s AS (SELECT id FROM servers WHERE name = 'upgrade-de'),
              sub AS (INSERT INTO subscriptions (user_id, plan_id, location_code, server_id, is_trial, status, seats,
                                                 duration_days, token, starts_at, expires_at)
                      SELECT $1, p.id, 'de', s.id, TRUE, 'active', p.seats, p.duration_days, $2, now(),
                             now() + interval '30 days' FROM p, s RETURNING id, server_id)
         INSERT INTO clients (subscription_id, seat, server_id, uuid, email, node_state)
         SELECT sub.id, 1, sub.server_id, gen_random_uuid(), 'upgrade-1@vpnshop', 'present' FROM sub",
    )
    .bind(ids[0])
    .bind(FEED_TOKEN)
    .execute(pool)
    .await
    .unwrap();
    ids
}

/// Bans a customer through one instance and reads the ban through the other.
async fn ban_and_read(key: &str, through: &Instance, read_from: &Instance, user: i64, reason: &str) {
    let http = reqwest::Client::new();
    let res = http
        .post(format!("{}/api/v1/users/{user}/ban", through.base))
        .bearer_auth(key)
        .json(&json!({ "reason": reason }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let read: serde_json::Value = http
        .get(format!("{}/api/v1/users/{user}", read_from.base))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["ban_reason"], reason, "{read}");
}

#[sqlx::test(migrations = false)]
async fn the_previous_release_keeps_serving_while_this_one_migrates_and_serves_beside_it(pool: PgPool) {
    let Some(previous_bin) = previous_release() else { return };
    let previous = Release { name: "previous", dir: previous_bin.parent().unwrap().join("src"), bin: previous_bin };
    assert!(previous.dir.join("config/default.toml").is_file(), "its tree beside it: {}", previous.dir.display());
    let this = Release { name: "this", bin: PathBuf::from(env!("CARGO_BIN_EXE_vpnshop")), dir: manifest_dir() };
    let db = database_url(&pool);
    let tg = FakeTelegram::start().await;
    let logs = tempfile::tempdir().unwrap();

    // the previous release on a fresh database: it applies its migrations and seeds the catalogue
    let old = previous.serve(&db, &tg, logs.path()).await;
    let (code, out, err) = previous.run(&db, &["admin", "add", "owner", "--role", "owner"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let (code, out, err) =
        previous.run(&db, &["admin", "api-key", "create", "--scope", "write", "--admin", "owner"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let key = out.lines().last().unwrap().trim().to_owned();
    let (code, out, err) = previous
        .run(&db, &["server", "add", "--name", "upgrade-de", "--location", "de", "--host", "203.0.113.10"])
        .await;
    assert_eq!(code, Some(0), "{out}{err}");
    let [reader, toggled, banned_by_old, banned_by_new] = customers(&pool).await;
    let shop = Shop { key: key.clone(), reader, toggled };
    let before: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations ORDER BY version").fetch_all(&pool).await.unwrap();
    let pending: Vec<i64> = vpnshop::db::MIGRATOR.iter().map(|m| m.version).filter(|v| !before.contains(v)).collect();

    let stop = CancellationToken::new();
    let on_old = Arc::new(Traffic::default());
    let old_traffic = tokio::spawn(traffic(old.base.clone(), shop.clone(), on_old.clone(), stop.clone()));
    rounds_more(&on_old, 5).await;

    // this release checks and applies its migrations while the previous one serves
    let (code, out, err) = this.run(&db, &["migrate", "--check"]).await;
    assert_eq!(code, Some(0), "the new migrations are safe under load:\n{out}{err}");
    let (code, out, err) = this.run(&db, &["migrate"]).await;
    assert_eq!(code, Some(0), "{out}{err}");
    let applied = out.lines().filter(|l| l.starts_with("applied ")).count();
    assert_eq!(applied, pending.len(), "{out}");
    // (with no new migration yet this still runs both releases on one database; it says so)
    println!("migrations this release applied under the previous one's traffic: {applied} {pending:?}");
    rounds_more(&on_old, 5).await;

    // both serve at once, with traffic on both; what one writes the other reads
    let new = this.serve(&db, &tg, logs.path()).await;
    let on_new = Arc::new(Traffic::default());
    let new_traffic = tokio::spawn(traffic(new.base.clone(), shop.clone(), on_new.clone(), stop.clone()));
    ban_and_read(&key, &old, &new, banned_by_old, "banned through the previous release").await;
    ban_and_read(&key, &new, &old, banned_by_new, "banned through this release").await;
    rounds_more(&on_old, 10).await;
    rounds_more(&on_new, 10).await;

    if !pending.is_empty() {
        // the previous release (v0.12.0) refuses to start on a database with migrations it does not know; its
        // running instances are unaffected (docs/operations.md, "Upgrading without stopping sales")
        let (code, out, err) = previous.run(&db, &["migrate"]).await;
        assert_eq!(code, Some(1), "{out}{err}");
        assert!(err.contains("was previously applied but is missing"), "{err}");
    }

    stop.cancel();
    old_traffic.await.unwrap();
    new_traffic.await.unwrap();
    let report = |t: &Traffic| (t.rounds.load(Ordering::Relaxed), t.requests.load(Ordering::Relaxed));
    println!("previous release: {:?} (rounds, requests); this release: {:?}", report(&on_old), report(&on_new));
    let failed = on_old.failures.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} requests to the previous release failed: {failed:#?}", failed.len());
    let failed = on_new.failures.lock().unwrap().clone();
    assert!(failed.is_empty(), "{} requests to this release failed: {failed:#?}", failed.len());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM telegram_updates").fetch_one(&pool).await.unwrap();
    assert!(stored >= 30, "both instances took updates into the one inbox: {stored}");
    old.stop().await;
    new.stop().await;
}
