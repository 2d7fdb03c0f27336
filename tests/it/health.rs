//! `/healthz`, `/readyz`, request ids, problems for unknown routes, and Prometheus metrics on their own port.

use std::collections::HashMap;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vpnshop::app::{self, AppState, Listeners};
use vpnshop::config::Settings;

use crate::helpers::{manifest_dir, redis_url, spawn_app, spawn_app_with};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn healthz_answers_while_the_process_lives(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ok");
    app.stop().await.expect("a clean stop");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn readyz_is_ready_with_a_migrated_database_and_redis(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.redis.url = Some(redis_url().into())).await;
    assert!(app.state.redis.is_some());
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn readyz_without_redis_configured_is_ready(pool: PgPool) {
    let app = spawn_app(pool).await;
    let body: serde_json::Value = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "not_configured");
    assert_eq!(body["status"], "ready");
}

/// Runs the app without start-up preparation (which would need the database).
async fn spawn_unprepared(settings: Settings, pool: Option<PgPool>) -> (String, CancellationToken) {
    let listeners = Listeners::bind(&settings).await.unwrap();
    let url = format!("http://{}", listeners.http_addr());
    let state = match pool {
        Some(pool) => AppState::with_pool(settings, pool).unwrap(),
        None => AppState::build(settings).unwrap(),
    };
    let cancel = CancellationToken::new();
    tokio::spawn(app::run(state, listeners, cancel.clone()));
    (url, cancel)
}

fn settings_with_database(url: &str) -> Settings {
    let env =
        HashMap::from([("VPNSHOP_ENV".to_owned(), "test".to_owned()), ("DATABASE_URL".to_owned(), url.to_owned())]);
    let mut s = Settings::load_from(&manifest_dir().join("config"), env).unwrap();
    s.database.acquire_timeout_secs = 1;
    s
}

#[tokio::test]
async fn readyz_fails_when_the_database_is_unreachable() {
    // nothing listens on port 1
    let (url, cancel) = spawn_unprepared(settings_with_database("postgres://postgres@127.0.0.1:1/none"), None).await;
    let res = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "not_ready");
    assert_eq!(body["checks"]["database"], "unreachable");
    // the process itself is alive
    assert_eq!(reqwest::get(format!("{url}/healthz")).await.unwrap().status(), 200);
    cancel.cancel();
}

#[sqlx::test(migrations = false)]
async fn readyz_fails_when_migrations_are_pending(pool: PgPool) {
    let mut settings = settings_with_database("postgres://unused@127.0.0.1/unused");
    settings.database.migrate_on_start = false;
    let (url, cancel) = spawn_unprepared(settings, Some(pool)).await;
    let res = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["database"], "ok");
    assert_eq!(body["checks"]["migrations"], "pending");
    cancel.cancel();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn readyz_fails_when_configured_redis_is_unreachable(pool: PgPool) {
    let app = spawn_app_with(pool, |s| s.redis.url = Some("redis://127.0.0.1:1".to_owned().into())).await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["checks"]["redis"], "unreachable");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn every_response_carries_a_request_id(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    let generated = res.headers().get("x-request-id").expect("generated id").to_str().unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    let res = app.http.get(app.url("/healthz")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123", "a caller's id is kept");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn unknown_routes_are_json_problems(pool: PgPool) {
    let app = spawn_app(pool).await;
    let res = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "Not Found");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn metrics_live_on_their_own_listener_and_pass_promtool(pool: PgPool) {
    let app = spawn_app(pool).await;
    app.http.get(app.url("/healthz")).send().await.unwrap();
    let public = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(public.status(), 404, "metrics are not on the public listener");
    let metrics_addr = app.metrics_addr.expect("metrics listener");
    let text = app.http.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("vpnshop_http_requests_total{") && l.contains("route=\"/healthz\"")),
        "{text}"
    );
    crate::helpers::promtool_check(&text);
}
