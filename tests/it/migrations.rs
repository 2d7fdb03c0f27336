//! The real binary and a database whose migrations differ from its own: `migrate --check` on pending ones,
//! `serve` refusing an unsafe one at start (and applying it when told to), a database a newer release migrated
//! further, an edited migration, and the migration lock being sqlx's own.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::helpers::database_url;
use crate::process::vpnshop;
use crate::support::free_port;

/// A shipped migration that rewrites `telegram_updates` (its column type changes): unsafe on a live inbox, and
/// harmless to apply again on a migrated database.
const INBOX_JSON: i64 = 20261125000005;
/// A shipped migration that only creates a table and its index.
const DASH_SESSIONS: i64 = 20261202000510;
/// A version no release has: "applied by the next release".
const FROM_THE_FUTURE: i64 = 20991231000000;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs the binary to its end (killed and failed after a minute).
async fn run(db: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = tokio::process::Command::from(vpnshop(db));
    cmd.args(args).envs(env.iter().copied()).kill_on_drop(true).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("vpnshop {args:?} did not finish"))
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    Run { code: out.status.code(), stdout: text(&out.stdout), stderr: text(&out.stderr) }
}

async fn forget(pool: &PgPool, version: i64) {
    sqlx::query("DELETE FROM _sqlx_migrations WHERE version = $1").bind(version).execute(pool).await.unwrap();
}

async fn applied(pool: &PgPool, version: i64) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = $1 AND success)")
        .bind(version)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// `serve` on free ports until `/readyz` answers; returns the child and the readiness body.
async fn serve_until_ready(db: &str, env: &[(&str, &str)]) -> (tokio::process::Child, serde_json::Value) {
    let http = free_port();
    let mut cmd = tokio::process::Command::from(vpnshop(db));
    cmd.arg("serve")
        .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{http}"))
        .env("VPNSHOP__METRICS__ADDR", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .kill_on_drop(true)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if let Ok(res) = reqwest::get(format!("http://127.0.0.1:{http}/readyz")).await {
            assert_eq!(res.status(), 200);
            return (child, res.json().await.unwrap());
        }
        assert!(child.try_wait().unwrap().is_none(), "serve exited before it was ready");
        assert!(started.elapsed() < Duration::from_secs(60), "serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn migrate_check_lists_pending_migrations_and_says_why_one_is_unsafe(pool: PgPool) {
    let db = database_url(&pool);
    let none = run(&db, &["migrate", "--check"], &[]).await;
    assert_eq!(none.code, Some(0), "{}{}", none.stdout, none.stderr);
    assert!(none.stdout.contains("no pending migrations"), "{}", none.stdout);

    // a live inbox, counted by the statistics the check names sizes from
    sqlx::query(
        "INSERT INTO telegram_updates (update_id, chat_id, payload) SELECT g, g, '{}' FROM generate_series(1, 500) g",
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE telegram_updates").execute(&pool).await.unwrap();
    forget(&pool, DASH_SESSIONS).await;
    let safe = run(&db, &["migrate", "--check"], &[]).await;
    assert_eq!(safe.code, Some(0), "{}{}", safe.stdout, safe.stderr);
    assert!(safe.stdout.contains(&format!("{DASH_SESSIONS} dash sessions: safe")), "{}", safe.stdout);

    forget(&pool, INBOX_JSON).await;
    let unsafe_ = run(&db, &["migrate", "--check"], &[]).await;
    assert_eq!(unsafe_.code, Some(1), "{}{}", unsafe_.stdout, unsafe_.stderr);
    let out = &unsafe_.stdout;
    assert!(out.contains("2 pending migration(s)"), "{out}");
    assert!(out.contains(&format!("{INBOX_JSON} inbox json: UNSAFE")), "{out}");
    assert!(out.contains("table rewrite") && out.contains("telegram_updates (~500 rows"), "{out}");
    assert!(unsafe_.stderr.contains("1 of the pending migrations are not safe"), "{}", unsafe_.stderr);
    assert!(!applied(&pool, INBOX_JSON).await, "--check applies nothing");

    let nowhere = format!("{}/vpnshop_no_such_database", db.rsplit_once('/').unwrap().0);
    let broken = run(&nowhere, &["migrate", "--check"], &[]).await;
    assert_eq!(broken.code, Some(2), "{}{}", broken.stdout, broken.stderr);
    assert!(broken.stderr.starts_with("error: cannot check the pending migrations"), "{}", broken.stderr);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn serve_refuses_an_unsafe_migration_at_start_unless_told_to_apply_it(pool: PgPool) {
    let db = database_url(&pool);
    forget(&pool, INBOX_JSON).await;
    let refused = run(&db, &["serve"], &[("VPNSHOP__HTTP__ADDR", "127.0.0.1:0")]).await;
    assert_eq!(refused.code, Some(1), "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains(&INBOX_JSON.to_string()) && refused.stderr.contains("vpnshop migrate --check"),
        "{}",
        refused.stderr
    );
    assert!(!applied(&pool, INBOX_JSON).await);

    let (mut child, ready) = serve_until_ready(&db, &[("VPNSHOP__DATABASE__MIGRATE_UNSAFE_ON_START", "true")]).await;
    assert_eq!(ready["checks"]["migrations"], "ok");
    assert!(applied(&pool, INBOX_JSON).await, "applied because the operator said so");
    child.kill().await.unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_database_migrated_by_a_newer_release_is_served_and_ready(pool: PgPool) {
    let db = database_url(&pool);
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES ($1, 'from the next release', TRUE, '\\x00', 0)",
    )
    .bind(FROM_THE_FUTURE)
    .execute(&pool)
    .await
    .unwrap();
    let (mut child, ready) = serve_until_ready(&db, &[]).await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["migrations"], "ok");
    child.kill().await.unwrap();

    let check = run(&db, &["migrate", "--check"], &[]).await;
    assert_eq!(check.code, Some(0), "{}{}", check.stdout, check.stderr);
    assert!(check.stdout.contains(&format!("migration(s) of a newer release ({FROM_THE_FUTURE})")), "{}", check.stdout);
    let migrate = run(&db, &["migrate"], &[]).await;
    assert_eq!(migrate.code, Some(0), "{}{}", migrate.stdout, migrate.stderr);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_edited_migration_stops_the_start_and_readiness_names_it(pool: PgPool) {
    let db = database_url(&pool);
    sqlx::query("UPDATE _sqlx_migrations SET checksum = '\\x00' WHERE version = $1")
        .bind(DASH_SESSIONS)
        .execute(&pool)
        .await
        .unwrap();
    let start = run(&db, &["serve"], &[("VPNSHOP__HTTP__ADDR", "127.0.0.1:0")]).await;
    assert_eq!(start.code, Some(1), "{}{}", start.stdout, start.stderr);
    assert!(
        start.stderr.contains(&format!("migration {DASH_SESSIONS} was applied with other content")),
        "{}",
        start.stderr
    );
    let readiness = vpnshop::services::health::readiness(&pool, None, Duration::from_secs(5)).await;
    assert_eq!(readiness.migrations, vpnshop::services::health::Check::Failed("changed".into()));
    assert!(!readiness.ready());
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_migration_lock_is_the_one_sqlx_takes(pool: PgPool) {
    // sqlx's own migrator (as releases before this one run it) holds its lock while it waits for the migrations
    // table, which another session has locked; the lock it holds must be the one this release polls for
    let mut blocker = pool.begin().await.unwrap();
    sqlx::query("LOCK TABLE _sqlx_migrations IN ACCESS EXCLUSIVE MODE").execute(&mut *blocker).await.unwrap();
    let options = (*pool.connect_options()).clone();
    let sqlx_run = tokio::spawn(async move {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect_with(&options).await.unwrap();
        vpnshop::db::MIGRATOR.run_direct(None, &mut conn, false).await
    });
    let started = Instant::now();
    let held: i64 = loop {
        let key: Option<i64> = sqlx::query_scalar(
            "SELECT (classid::bigint << 32) | objid::bigint FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database
                                                                      WHERE datname = current_database())",
        )
        .fetch_optional(&pool)
        .await
        .unwrap();
        if let Some(key) = key {
            break key;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "sqlx never took its lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let name: String = sqlx::query_scalar("SELECT current_database()").fetch_one(&pool).await.unwrap();
    assert_eq!(held, vpnshop::db::migrations::lock_key(&name));
    blocker.rollback().await.unwrap();
    sqlx_run.await.unwrap().unwrap();
}
