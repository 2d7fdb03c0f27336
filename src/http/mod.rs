//! The public HTTP server: the router (health probes, the subscription feed, the Telegram webhook, JSON problems
//! for everything else) with its limits, and `serve`, which runs it on the public listener. Errors leave as
//! JSON problems.
//!
//! Limits, outermost first: the listener's connection cap and time limits (`serve`); a request timeout (408) on
//! every route; a body limit on every route (`http.max_body_bytes`; the webhook reads at most
//! `telegram.max_update_bytes`, after checking its secret; Stripe's, `stripe.webhook_max_bytes` after checking its
//! signature header); a per-client-IP rate limit on the feed and unknown paths (not on health probes, nor on the
//! webhooks, which their secret or signature, and the bounded intake queue, protect); and
//! the feed's share of the database pool (`PublicDb`).

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use tower::ServiceBuilder;
use tower::util::MapResponseLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::app::AppState;

pub mod api;
pub mod client_ip;
pub mod dash;
pub mod error;
mod health;
mod limits;
mod pay;
pub mod serve;
mod sub;
mod telegram;

pub use error::Problem;
pub use serve::{Limits, serve};

/// The whole public router with its middleware.
pub fn router(state: AppState) -> Router {
    let http = &state.settings.http;
    let timeout = Duration::from_secs(http.request_timeout_secs);
    // Telegram's deliveries are the hot path: metrics and a timeout only, no per-request span, id or body
    // wrapper (each update gets its own span when it is handled; the handler limits its own body read).
    let hot = telegram::router()
        .with_state(state.clone())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(MapResponseLayer::new(limits::timeout_problem))
        .layer(axum::middleware::from_fn(crate::metrics::track_http));
    // Stripe's webhook: signed, from Stripe's few addresses, bodies beyond http.max_body_bytes (it reads at most
    // stripe.webhook_max_bytes, after checking the signature header)
    let stripe = pay::stripe_webhook()
        .with_state(state.clone())
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout))
        .layer(MapResponseLayer::new(limits::timeout_problem))
        .layer(axum::middleware::from_fn(crate::metrics::track_http));
    let api = limits::rate_limited_at(
        api::router(),
        &state.settings.http,
        state.settings.security.api_rate_limit_per_second,
        state.settings.security.api_rate_limit_burst,
    );
    // the dashboard: per-IP limited like the API (its pages poll a little), sessions and CSRF inside
    let dash = limits::rate_limited_at(
        dash::router(&state),
        &state.settings.http,
        state.settings.security.api_rate_limit_per_second,
        state.settings.security.api_rate_limit_burst,
    );
    let public = Router::new()
        .merge(sub::router())
        .merge(pay::router())
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "Not Found", "no such route") });
    Router::new()
        .merge(health::router())
        .merge(limits::rate_limited(public, http))
        .merge(api)
        .merge(dash)
        .layer(axum::middleware::from_fn_with_state(http.max_body_bytes, limits::limit_body))
        .with_state(state.clone())
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
                    let route = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
                    let request_id = request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("-");
                    tracing::info_span!(
                        "http",
                        otel.name = format!("{} {}", request.method(), route.as_deref().unwrap_or("unmatched")),
                        otel.kind = "server",
                        http.method = %request.method(),
                        http.route = route.as_deref().unwrap_or("unmatched"),
                        request.id = %request_id,
                    )
                }))
                .layer(PropagateRequestIdLayer::x_request_id())
                .layer(MapResponseLayer::new(limits::timeout_problem))
                .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, timeout)),
        )
        .merge(hot)
        .merge(stripe)
}
