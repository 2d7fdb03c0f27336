//! Registering nodes: validation with clear reasons, unique names, known locations, and removal that keeps
//! history.

use sqlx::PgPool;
use vpnshop::error::AppError;
use vpnshop::services::catalog::{self, Catalog};
use vpnshop::services::servers::{self, Actor, ServerInput};

use crate::helpers::manifest_dir;

fn input(name: &str) -> ServerInput {
    ServerInput { public_host: "de1.example.com".into(), ..crate::helpers::server_input(name, "de") }
}

async fn seeded(pool: &PgPool) {
    catalog::seed(pool, &Catalog::load(&manifest_dir().join("config/plans.toml")).unwrap()).await.unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_server_is_added_listed_and_audited(pool: PgPool) {
    seeded(&pool).await;
    let server = servers::add(&pool, &input("de-1"), Actor::CLI).await.unwrap();
    assert_eq!(server.ssh_host, "de1.example.com", "ssh host defaults to the public host");
    assert_eq!(server.config_path, "/etc/v2ray/config.json");
    let all = servers::list(&pool).await.unwrap();
    assert_eq!(all.len(), 1);
    let audited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'server.add' AND entity_id = $1")
            .bind(server.id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(audited, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn bad_server_input_is_refused_with_the_reason(pool: PgPool) {
    seeded(&pool).await;
    let cases: Vec<(ServerInput, &str)> = vec![
        (ServerInput { location: "mars".into(), ..input("x") }, "unknown location \"mars\" (known: de, nl, fi, us"),
        (ServerInput { name: "Bad Name".into(), ..input("x") }, "server name"),
        (ServerInput { public_host: "not a host".into(), ..input("x") }, "public host"),
        (ServerInput { host_key: Some("MD5:00".into()), ..input("x") }, "SHA256:"),
        (ServerInput { capacity: 0, ..input("x") }, "capacity"),
        (ServerInput { public_port: 0, ..input("x") }, "public port"),
        (ServerInput { config_path: Some("relative.json".into()), ..input("x") }, "absolute"),
    ];
    for (bad, reason) in cases {
        match servers::add(&pool, &bad, Actor::CLI).await {
            Err(e @ (AppError::Invalid(_) | AppError::Field { .. })) => {
                let msg = e.to_string();
                assert!(msg.contains(reason), "{msg:?} should mention {reason:?}")
            }
            other => panic!("expected Invalid for {reason}, got {other:?}"),
        }
    }
    assert!(servers::list(&pool).await.unwrap().is_empty(), "nothing half-written");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn server_names_are_unique(pool: PgPool) {
    seeded(&pool).await;
    servers::add(&pool, &input("de-1"), Actor::CLI).await.unwrap();
    match servers::add(&pool, &input("de-1"), Actor::CLI).await {
        Err(AppError::Conflict(msg)) => assert!(msg.contains("already exists"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_server_with_history_is_disabled_not_removed(pool: PgPool) {
    seeded(&pool).await;
    let server = servers::add(&pool, &input("de-1"), Actor::CLI).await.unwrap();
    servers::add(&pool, &input("de-2"), Actor::CLI).await.unwrap();
    servers::remove(&pool, "de-2", Actor::CLI).await.unwrap();
    let user: i64 =
        sqlx::query_scalar("INSERT INTO users (telegram_id) VALUES (5) RETURNING id").fetch_one(&pool).await.unwrap();
    sqlx::query(
        "INSERT INTO subscriptions (user_id, plan_id, location_code, server_id, is_trial, seats, duration_days, token)
         SELECT $1, id, 'de', $2, TRUE, 1, 1, md5(random()::text) FROM plans LIMIT 1",
    )
    .bind(user)
    .bind(server.id)
    .execute(&pool)
    .await
    .unwrap();
    match servers::remove(&pool, "de-1", Actor::CLI).await {
        Err(AppError::Conflict(msg)) => assert!(msg.contains("server disable de-1"), "{msg}"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    servers::set_enabled(&pool, "de-1", false, Actor::CLI).await.unwrap();
    let list = servers::list(&pool).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(!list[0].enabled);
    assert!(matches!(servers::remove(&pool, "nope", Actor::CLI).await, Err(AppError::NotFound("server"))));
}
