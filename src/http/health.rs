//! `GET /healthz` (the process answers) and `GET /readyz` (it can serve: database reachable and migrated,
//! Redis reachable when configured). Probes are exempt from the per-IP rate limits (a load balancer probing
//! through the same address as a flood must not see this instance as down); instead `/readyz` runs at most one
//! check at a time and reuses a result for a second, so a flood of probes costs the database next to nothing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::app::AppState;
use crate::services::health::{self, Check, Readiness};

/// How long one readiness check answers for.
const REUSE: Duration = Duration::from_secs(1);

/// The last check and when it finished; locked while a check runs, so concurrent probes wait for it.
type LastCheck = Arc<Mutex<Option<(Instant, Readiness)>>>;

pub fn router() -> Router<AppState> {
    let last: LastCheck = Arc::default();
    Router::new().route("/healthz", get(healthz)).route(
        "/readyz",
        get(move |State(state): State<AppState>| {
            let last = last.clone();
            async move { readyz(state, last).await }
        }),
    )
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

async fn readiness(state: &AppState, last: &LastCheck) -> Readiness {
    let mut last = last.lock().await;
    match &*last {
        Some((at, report)) if at.elapsed() < REUSE => report.clone(),
        _ => {
            let report = health::readiness(&state.pool, state.redis.clone(), Duration::from_secs(2)).await;
            *last = Some((Instant::now(), report.clone()));
            report
        }
    }
}

async fn readyz(state: AppState, last: LastCheck) -> (StatusCode, Json<Value>) {
    let report = readiness(&state, &last).await;
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
