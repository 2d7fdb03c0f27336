//! `vpnshop backup` and `vpnshop restore` on real PostgreSQL with the real `pg_dump`, `pg_restore` and `age`:
//! the restore drill (a filled database backed up and restored into a new one, every table compared by the test
//! itself), encryption, refusals that leave the target untouched, and the scheduler's backup job.

mod drill;
mod errors;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sqlx::{Connection, PgPool};

use crate::helpers::{database_url, tools_required};

/// Whether every program the backups need is here; `false` (skip, and say why) unless the run requires them.
pub fn have_tools() -> bool {
    let missing: Vec<&str> = ["pg_dump", "pg_restore", "age", "age-keygen"]
        .into_iter()
        .filter(|t| Command::new(t).arg("--version").output().is_err())
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        !tools_required(),
        "VPNSHOP_REQUIRE_TOOLS=1 but {missing:?} missing (apt-get install postgresql-client age; scripts/dev test does)"
    );
    eprintln!("skipping: {missing:?} not installed (scripts/dev test installs postgresql-client and age)");
    false
}

pub fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Runs the real binary on `db` and returns its output.
pub fn run(db: &str, args: &[&str]) -> Output {
    crate::process::vpnshop(db).env_remove("RUST_LOG").args(args).output().expect("run vpnshop")
}

/// `vpnshop backup --dir DIR …`, which must succeed; the backup's path.
pub fn backup(db: &str, dir: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["backup", "--dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = run(db, &args);
    assert!(out.status.success(), "backup failed: {}", text(&out));
    PathBuf::from(String::from_utf8_lossy(&out.stdout).lines().next().expect("the path on the first line"))
}

/// An empty database of its own on the test server, dropped at the end of the test.
pub struct ScratchDb {
    pub url: String,
    name: String,
    server: String,
}

impl ScratchDb {
    pub async fn new(beside: &PgPool) -> ScratchDb {
        let url = database_url(beside);
        let server = url.rsplit_once('/').unwrap().0.to_owned();
        let name = format!("vpnshop_restore_{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres")).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&mut admin).await.unwrap();
        ScratchDb { url: format!("{server}/{name}"), name, server }
    }

    pub async fn pool(&self) -> PgPool {
        PgPool::connect(&self.url).await.unwrap()
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // a runtime of its own: drop may run on a test's runtime, which cannot be blocked on
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async move {
                if let Ok(mut admin) = sqlx::PgConnection::connect(&format!("{server}/postgres")).await {
                    let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await;
                }
            })
        })
        .join();
    }
}

/// What a database holds, computed here independently of the shop's manifest: per table (every base table in
/// information_schema, so new tables are covered on their own) the row count and the MD5 of its rows' text
/// sorted; per sequence its position.
pub async fn fingerprint(pool: &PgPool) -> BTreeMap<String, (i64, String)> {
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SET LOCAL TimeZone = 'UTC'").execute(&mut *tx).await.unwrap();
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_schema, table_name FROM information_schema.tables
          WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for (schema, table) in tables {
        let sql = format!(
            "SELECT count(*), md5(coalesce(string_agg(whole_row::text, E'\\n' ORDER BY whole_row::text), ''))
               FROM \"{schema}\".\"{table}\" whole_row"
        );
        let digest: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *tx).await.unwrap();
        out.insert(format!("{schema}.{table}"), digest);
    }
    let sequences: Vec<(String, String)> =
        sqlx::query_as("SELECT sequence_schema, sequence_name FROM information_schema.sequences")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    for (schema, seq) in sequences {
        let sql = format!("SELECT last_value, is_called::text FROM \"{schema}\".\"{seq}\"");
        let at: (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *tx).await.unwrap();
        out.insert(format!("sequence {schema}.{seq}"), at);
    }
    out
}

/// How many tables a database has outside PostgreSQL's own schemas.
pub async fn table_count(url: &str) -> i64 {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let _ = conn.close().await;
    n
}

/// The files in a directory, sorted.
pub fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    names
}

/// A new age key pair: the identity file and its recipient.
pub fn age_key(dir: &Path, name: &str) -> (PathBuf, String) {
    let identity = dir.join(name);
    let out = Command::new("age-keygen").arg("-o").arg(&identity).output().expect("age-keygen");
    assert!(out.status.success(), "age-keygen: {}", text(&out));
    let public = Command::new("age-keygen").arg("-y").arg(&identity).output().expect("age-keygen -y");
    (identity, String::from_utf8(public.stdout).unwrap().trim().to_owned())
}
