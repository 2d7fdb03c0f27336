//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve: database reachable and migrated,
//! Redis reachable when configured).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::services::health::{self, Check};

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let report = health::readiness(&state.pool, state.redis.clone(), Duration::from_secs(2)).await;
    let status = if report.ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let show = |c: &Check| match c {
        Check::Ok => "ok".to_owned(),
        Check::NotConfigured => "not_configured".to_owned(),
        Check::Failed(why) => why.clone(),
    };
    let body = json!({
        "status": if report.ready() { "ready" } else { "not_ready" },
        "checks": {
            "database": show(&report.database),
            "migrations": show(&report.migrations),
            "redis": show(&report.redis),
        }
    });
    (status, Json(body))
}
