//! The restore drill: a shop's database full of customers, orders, payments, subscriptions, nodes, admins, jobs
//! and Telegram updates is backed up and restored into a new database, and every table and sequence is the same.

use sha2::{Digest, Sha256};
use sqlx::PgPool;
use vpnshop::services::queue::JobSpec;

use super::*;
use crate::api::money::{active_subscription, customers, under_review};
use crate::helpers::test_settings;

/// Rows in most tables, with the values that print in tricky ways: Persian and emoji text, NULLs, JSON with odd
/// spacing (kept byte for byte by `json`), timestamps, arrays.
async fn fill(pool: &PgPool) {
    let db = database_url(pool);
    let catalog = vpnshop::services::catalog::Catalog::load(&crate::helpers::manifest_dir().join("config/plans.toml"));
    vpnshop::services::catalog::seed_if_empty(pool, &catalog.unwrap()).await.unwrap();
    let users = customers(pool, 50_000, 20).await;
    sqlx::query("UPDATE users SET username = 'مشتری_😀', language = 'fa' WHERE id = $1")
        .bind(users[0])
        .execute(pool)
        .await
        .unwrap();
    under_review(pool, 60_000, 5).await;
    let (sub, _) = active_subscription(pool, 70_000, "active", Some(10 << 30)).await;
    active_subscription(pool, 70_001, "expired", None).await;
    sqlx::query(
        "INSERT INTO traffic (client_id, last_raw_up, last_raw_down, up_bytes, down_bytes)
         SELECT id, 7, 9, 1234567, 7654321 FROM clients WHERE subscription_id = $1",
    )
    .bind(sub)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO telegram_updates (update_id, chat_id, payload, handled_at)
         SELECT g, 50000 + g, ('{\"update_id\":  ' || g || ', \"text\": \"سلام\" }')::json,
                CASE WHEN g % 2 = 0 THEN now() END
           FROM generate_series(1, 30) g",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO webhook_events (provider, event_id, kind, payload)
         VALUES ('stripe', 'evt_1', 'checkout.session.completed', '{\"amount\": 1.50, \"tags\": [1, null]}')",
    )
    .execute(pool)
    .await
    .unwrap();
    let jobs = test_settings().jobs;
    JobSpec::new("notify.user", serde_json::json!({"user": users[1], "text": "hi"}))
        .once("k1")
        .enqueue(pool, &jobs)
        .await
        .unwrap();
    JobSpec::new("jobs.cleanup", serde_json::json!({})).enqueue(pool, &jobs).await.unwrap();
    let out = run(&db, &["admin", "add", "ada", "--role", "owner", "--telegram-id", "4242"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = run(&db, &["admin", "api-key", "create", "--scope", "write", "--admin", "ada"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_backup_restores_into_a_new_database_with_every_table_equal(pool: PgPool) {
    if !have_tools() {
        return;
    }
    fill(&pool).await;
    let source = fingerprint(&pool).await;
    let filled = source.iter().filter(|(name, (rows, _))| !name.starts_with("sequence") && *rows > 0).count();
    assert!(filled >= 18, "the drill covers most tables: {filled} of {} have rows", source.len());
    assert!(source.contains_key("public._sqlx_migrations"));

    let dir = tempfile::tempdir().unwrap();
    let out = run(&database_url(&pool), &["backup", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let path = PathBuf::from(stdout.lines().next().unwrap());
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(vpnshop::backup::names::BackupName::parse(&name).is_some_and(|b| !b.encrypted), "{name}");
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"PGDMP"), "a pg_dump custom archive");
    assert!(stdout.contains(&format!("size: {} bytes", bytes.len())), "{stdout}");
    assert!(stdout.contains(&format!("sha256: {}", hex::encode(Sha256::digest(&bytes)))), "{stdout}");
    let manifest = name.replace(".dump", ".manifest.json");
    assert_eq!(files(dir.path()), vec![name.clone(), manifest.clone()], "no partial file is left");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "owner only");
    }
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(&manifest)).unwrap()).unwrap();
    assert_eq!(m["tables"].as_array().unwrap().len(), source.keys().filter(|k| !k.starts_with("sequence")).count());
    assert_eq!(m["migrations"].as_array().unwrap().len(), vpnshop::db::MIGRATOR.iter().count());
    assert_eq!(m["vpnshop_version"], env!("CARGO_PKG_VERSION"));

    let target = ScratchDb::new(&pool).await;
    let out = run(&target.url, &["restore", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("verified:"), "{}", text(&out));
    let restored = target.pool().await;
    let copy = fingerprint(&restored).await;
    for (table, digest) in &source {
        assert_eq!(copy.get(table), Some(digest), "{table} differs after the restore");
    }
    assert_eq!(copy.len(), source.len(), "no table more or less");
    restored.close().await;
    let out = run(&target.url, &["migrate"]);
    assert!(out.status.success(), "the shop runs on the restored database: {}", text(&out));

    // the restored database is not empty any more: a second restore is refused and changes nothing
    let out = run(&target.url, &["restore", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not empty") && text(&out).contains("--force"), "{}", text(&out));
    // --force replaces it, in one transaction, and checks it again
    let restored = target.pool().await;
    sqlx::query("DELETE FROM traffic").execute(&restored).await.unwrap();
    sqlx::query("UPDATE users SET username = 'changed'").execute(&restored).await.unwrap();
    let out = run(&target.url, &["restore", "--force", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "refused while a session is connected: {}", text(&out));
    assert!(text(&out).contains("other sessions are connected"), "{}", text(&out));
    restored.close().await;
    let out = run(&target.url, &["restore", "--force", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("replaced") && text(&out).contains("verified:"), "{}", text(&out));
    let restored = target.pool().await;
    assert_eq!(fingerprint(&restored).await, copy, "the same content again");
    restored.close().await;
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_encrypted_backup_never_holds_plaintext_and_restores_only_with_its_identity(pool: PgPool) {
    if !have_tools() {
        return;
    }
    customers(&pool, 80_000, 5).await;
    let source = fingerprint(&pool).await;
    let keys = tempfile::tempdir().unwrap();
    let (identity, recipient) = age_key(keys.path(), "shop.key");
    let (stranger, _) = age_key(keys.path(), "stranger.key");
    let recipients = keys.path().join("recipients.txt");
    std::fs::write(&recipients, format!("# the shop's backup key\n{recipient}\n")).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = backup(&database_url(&pool), dir.path(), &["--recipients-file", recipients.to_str().unwrap()]);
    let name = path.file_name().unwrap().to_str().unwrap().to_owned();
    assert!(name.ends_with(".dump.age"), "{name}");
    assert_eq!(files(dir.path()), vec![name.clone(), name.replace(".dump.age", ".manifest.json.age")]);
    for file in files(dir.path()) {
        let bytes = std::fs::read(dir.path().join(&file)).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1"), "{file} is encrypted");
        assert!(!bytes.windows(5).any(|w| w == b"PGDMP") && !bytes.windows(7).any(|w| w == b"\"tables"), "{file}");
    }

    let target = ScratchDb::new(&pool).await;
    let file = path.to_str().unwrap();
    let out = run(&target.url, &["restore", file]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is encrypted: pass --identity"), "{}", text(&out));
    let out = run(&target.url, &["restore", file, "--identity", stranger.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("cannot decrypt") && text(&out).contains("no identity matched"), "{}", text(&out));
    assert_eq!(table_count(&target.url).await, 0, "a wrong key restores nothing");

    let out = run(&target.url, &["restore", file, "-i", identity.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let restored = target.pool().await;
    assert_eq!(fingerprint(&restored).await, source);
    restored.close().await;
}
