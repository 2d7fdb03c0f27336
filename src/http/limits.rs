//! What the public routes may cost us: request bodies (413 before any of an over-long body is read), requests
//! per client IP (429), and connections of the database pool ([`PublicDb`], 503 when the public share is
//! taken); and the 408 of the request timeout as a problem like every other error.

use std::error::Error as StdError;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::sync::OwnedSemaphorePermit;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::{GovernorError, GovernorLayer};

use super::Problem;
use super::client_ip::ClientIp;
use crate::app::AppState;
use crate::config::HttpSettings;

fn too_large(limit: usize) -> Problem {
    Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", format!("the body may be at most {limit} bytes"))
}

/// Whether the body declares (`Content-Length`) more than `limit` bytes.
fn declares_more_than(body: &Body, limit: usize) -> bool {
    body.size_hint().lower() > u64::try_from(limit).unwrap_or(u64::MAX)
}

/// Middleware (state: the limit): a body declared longer than the limit is answered 413 at once, unread; one
/// that grows past it while a handler reads it fails that read.
pub async fn limit_body(State(limit): State<usize>, request: Request, next: Next) -> Response {
    if declares_more_than(request.body(), limit) {
        return too_large(limit).into_response();
    }
    next.run(request.map(|body| Body::new(Limited::new(body, limit)))).await
}

/// Reads a whole body of at most `limit` bytes: 413 when it declares or grows past that (never buffering more
/// than the limit), 400 when the client's body breaks off.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, Problem> {
    if declares_more_than(&body, limit) {
        return Err(too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if over_limit(e.as_ref()) => Err(too_large(limit)),
        Err(_) => Err(Problem::new(StatusCode::BAD_REQUEST, "Bad Request", "the request body could not be read")),
    }
}

/// Whether a body error is (or wraps) a length limit being hit.
fn over_limit(mut e: &(dyn StdError + 'static)) -> bool {
    loop {
        if e.is::<LengthLimitError>() {
            return true;
        }
        match e.source() {
            Some(inner) => e = inner,
            None => return false,
        }
    }
}

/// The request timeout's bare 408 (tower-http's `TimeoutLayer`) as a problem; other responses pass untouched.
pub fn timeout_problem(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT && !response.headers().contains_key(header::CONTENT_TYPE) {
        return Problem::new(StatusCode::REQUEST_TIMEOUT, "Request Timeout", "the request took too long")
            .into_response();
    }
    response
}

/// Puts `router` behind a per-client-IP limit (`http.rate_limit_per_second`, burst `http.rate_limit_burst`;
/// the client as `ClientIp` resolves it). Over it: 429 with `Retry-After`.
pub fn rate_limited(router: Router<AppState>, http: &HttpSettings) -> Router<AppState> {
    rate_limited_at(router, http, http.rate_limit_per_second, http.rate_limit_burst)
}

/// `router` behind its own per-client-IP limit of `per_second` (sustained) and `burst`.
pub fn rate_limited_at(router: Router<AppState>, http: &HttpSettings, per_second: f64, burst: u32) -> Router<AppState> {
    let period = Duration::from_secs_f64(1.0 / per_second.max(1e-6)).max(Duration::from_nanos(1));
    let mut builder = GovernorConfigBuilder::default();
    builder.period(period).burst_size(burst.max(1));
    let Some(config) = builder.key_extractor(ClientIp::new(&http.trusted_proxies)).finish() else {
        tracing::error!("the per-IP rate limit is not configured (http.rate_limit_*); public routes are unlimited");
        return router;
    };
    forget_idle_clients(Arc::downgrade(config.limiter()), |limiter| {
        limiter.retain_recent();
        limiter.shrink_to_fit();
    });
    router.layer(GovernorLayer::new(config).error_handler(|e| match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            Problem::new(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", "too many requests from your address")
                .retry_after(wait_time.max(1))
                .into_response()
        }
        other => {
            tracing::error!(error = %other, "rate limiter cannot tell the client (router not served by http::serve?)");
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "something went wrong on our side")
                .into_response()
        }
    }))
}

/// The limiter keeps a cell per client address it has seen; every minute those whose quota is whole again are
/// dropped, so a scan from many addresses does not grow memory for good. Ends with the limiter (the router).
fn forget_idle_clients<L: Send + Sync + 'static>(limiter: Weak<L>, forget: impl Fn(&L) + Send + 'static) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    runtime.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        tick.tick().await;
        loop {
            tick.tick().await;
            match limiter.upgrade() {
                Some(limiter) => forget(&limiter),
                None => return,
            }
        }
    });
}

/// Leave to use the database on a public route: one of `database.public_connections` permits, held until the
/// handler is done. Public handlers use one connection at a time, so together they never hold more than that
/// share of the pool; a flood waits at most `database.public_wait_ms` for a permit and is then answered 503,
/// instead of queueing on the pool the bot's intake and the job workers need.
pub struct PublicDb(#[allow(dead_code)] OwnedSemaphorePermit);

impl FromRequestParts<AppState> for PublicDb {
    type Rejection = Problem;

    async fn from_request_parts(_parts: &mut Parts, state: &AppState) -> Result<PublicDb, Problem> {
        let wait = Duration::from_millis(state.settings.database.public_wait_ms);
        match tokio::time::timeout(wait, state.public_db.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(PublicDb(permit)),
            Ok(Err(_)) | Err(_) => {
                Err(Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", "busy; try again shortly")
                    .retry_after(1))
            }
        }
    }
}
