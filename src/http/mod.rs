//! The public HTTP server: health, and (in later modules) the Telegram webhook, payment webhooks, the
//! subscription feed, the admin API and the dashboard. Errors leave as JSON problems.

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub mod error;
mod health;
mod sub;
mod telegram;

pub use error::Problem;

/// The whole public router with its middleware.
pub fn router(state: AppState) -> Router {
    let timeout = Duration::from_secs(state.settings.http.request_timeout_secs);
    // Telegram's deliveries are the hot path: metrics only, no per-request span, id or timer (each update gets
    // its own span when it is handled; the intake bounds its own waiting).
    let hot = telegram::router().with_state(state.clone()).layer(axum::middleware::from_fn(crate::metrics::track_http));
    Router::new()
        .merge(health::router())
        .merge(sub::router())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "Not Found", "no such route") })
        .with_state(state)
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
                    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!(
                        "http",
                        http.method = %request.method(),
                        http.route = route.as_deref().unwrap_or("unmatched"),
                        request.id = %request_id,
                    )
                }))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout)),
        )
        .merge(hot)
}
