//! What goes wrong says so, leaves no file that looks like a backup, and restores nothing: missing programs, a
//! directory that cannot be written, a truncated file, a lost or altered manifest, a backup from a newer schema.
//! And the scheduler's backup: one job an hour, whose handler writes a backup and prunes.

use std::sync::Arc;

use sqlx::PgPool;
use vpnshop::jobs::backup::{BackupJob, BackupSweep, KIND};
use vpnshop::jobs::scheduler::Sweep;
use vpnshop::jobs::worker::Worker;

use super::*;
use crate::api::money::customers;
use crate::helpers::test_settings;

fn fails_with(out: &Output, needle: &str) {
    assert_eq!(out.status.code(), Some(1), "{}", text(out));
    assert!(text(out).contains(needle), "expected {needle:?} in: {}", text(out));
    assert!(!text(out).contains("panicked"), "{}", text(out));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn backups_that_cannot_be_made_say_why_and_leave_no_file(pool: PgPool) {
    if !have_tools() {
        return;
    }
    let db = database_url(&pool);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    let missing_pg_dump = crate::process::vpnshop(&db)
        .env("VPNSHOP__BACKUP__PG_DUMP", "/nonexistent/pg_dump")
        .args(["backup", "--dir", d])
        .output()
        .unwrap();
    fails_with(&missing_pg_dump, "install postgresql-client");
    let missing_age = crate::process::vpnshop(&db)
        .env("VPNSHOP__BACKUP__AGE", "/nonexistent/age")
        .args(["backup", "--dir", d, "-r", "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"])
        .output()
        .unwrap();
    fails_with(&missing_age, "apt-get install age");
    fails_with(&run(&db, &["backup", "--dir", d, "-r", "not-a-recipient"]), "age failed");
    fails_with(&run(&db, &["backup", "--dir", d, "--recipients-file", "/nonexistent/r.txt"]), "/nonexistent/r.txt");
    assert!(files(dir.path()).is_empty(), "nothing left behind: {:?}", files(dir.path()));
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let below_a_file = file.join("backups");
    fails_with(&run(&db, &["backup", "--dir", below_a_file.to_str().unwrap()]), "cannot create the backup directory");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn broken_backups_restore_nothing(pool: PgPool) {
    if !have_tools() {
        return;
    }
    customers(&pool, 90_000, 50).await;
    let dir = tempfile::tempdir().unwrap();
    let path = backup(&database_url(&pool), dir.path(), &[]);
    let manifest = vpnshop::backup::names::manifest_beside(&path);
    let target = ScratchDb::new(&pool).await;
    let restore = |args: &[&str]| {
        let mut all = vec!["restore"];
        all.extend_from_slice(args);
        run(&target.url, &all)
    };

    let cut = dir.path().join("cut.dump");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() * 6 / 10]).unwrap();
    std::fs::copy(&manifest, dir.path().join("cut.manifest.json")).unwrap();
    fails_with(&restore(&[cut.to_str().unwrap()]), "is incomplete or corrupt");
    // even unchecked, pg_restore's one transaction leaves the database empty
    fails_with(&restore(&[cut.to_str().unwrap(), "--without-manifest"]), "nothing was restored");
    assert_eq!(table_count(&target.url).await, 0);

    fails_with(&restore(&["/nonexistent/vpnshop.dump"]), "cannot read /nonexistent/vpnshop.dump");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello").unwrap();
    fails_with(&restore(&[notes.to_str().unwrap()]), "is not a backup");
    let lone = dir.path().join("lone.dump");
    std::fs::copy(&path, &lone).unwrap();
    fails_with(&restore(&[lone.to_str().unwrap()]), "--without-manifest");
    fails_with(&restore(&[lone.to_str().unwrap(), "--manifest", notes.to_str().unwrap()]), "is not valid");

    // a backup of a newer schema than this binary knows is refused before anything is written
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let mut newer_m = m.clone();
    newer_m["migrations"].as_array_mut().unwrap().push(99_991_231_000_000i64.into());
    newer_m["vpnshop_version"] = "9.9.9".into();
    let newer_path = dir.path().join("newer.manifest.json");
    std::fs::write(&newer_path, serde_json::to_vec(&newer_m).unwrap()).unwrap();
    let newer = [path.to_str().unwrap(), "--manifest", newer_path.to_str().unwrap()];
    let out = restore(&newer);
    fails_with(&out, "99991231000000");
    assert!(
        text(&out).contains("with vpnshop 9.9.9 or newer") && text(&out).contains("--allow-newer"),
        "{}",
        text(&out)
    );
    assert_eq!(table_count(&target.url).await, 0);
    // unless the operator says so (rolling back an upgrade)
    let out = restore(&[&newer[..], &["--allow-newer"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("1 migrations this vpnshop does not know"), "{}", text(&out));

    // content that differs from the manifest is caught after the restore, naming the table
    for t in m["tables"].as_array_mut().unwrap() {
        if t["table"] == "public.users" {
            t["checksum"] = "0".repeat(32).into();
        }
    }
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = restore(&[path.to_str().unwrap(), "--force"]);
    fails_with(&out, "table public.users has its 50 rows but their content differs");
    assert!(text(&out).contains("do not run the shop on it"), "{}", text(&out));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_backup_sweep_enqueues_one_job_an_hour_whose_handler_backs_up_and_prunes(pool: PgPool) {
    if !have_tools() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // an old backup of last year and a file of the operator's
    for name in ["vpnshop-20250101T034500Z.dump", "vpnshop-20250101T034500Z.manifest.json", "README"] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    let mut settings = test_settings();
    settings.database.url = Some(database_url(&pool).into());
    settings.backup.dir = dir.path().to_owned();
    settings.backup.keep_daily = 1;
    settings.backup.keep_weekly = 0;
    let sweep = BackupSweep { pool: pool.clone(), jobs: settings.jobs.clone() };
    assert_eq!(sweep.run().await.unwrap(), 1);
    assert_eq!(sweep.run().await.unwrap(), 0, "another instance's sweep in the same hour adds nothing");

    let mut registry = vpnshop::jobs::Registry::new();
    registry.register(KIND, Arc::new(BackupJob { settings: settings.clone() }));
    let worker = Worker::new("backup-test/0", pool.clone(), Arc::new(registry), settings.jobs.clone());
    assert!(worker.run_once().await.unwrap());
    let status: String =
        sqlx::query_scalar("SELECT status FROM jobs WHERE kind = $1").bind(KIND).fetch_one(&pool).await.unwrap();
    assert_eq!(status, "done");
    let left = files(dir.path());
    assert_eq!(left.len(), 3, "{left:?}");
    assert_eq!(left[0], "README");
    assert!(left[1].ends_with(".dump") && left[2].ends_with(".manifest.json"), "{left:?}");
    assert!(!left.iter().any(|n| n.contains("2025")), "last year's backup was pruned: {left:?}");
}
