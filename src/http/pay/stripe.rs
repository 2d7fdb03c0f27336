//! `POST /pay/stripe/webhook`: Stripe's event deliveries. The `Stripe-Signature` header is checked (present,
//! well formed, signed within `stripe.webhook_tolerance_secs`) before the body is read; the body is read up to
//! `stripe.webhook_max_bytes` (413 beyond) and its signature verified on the raw bytes with any of the signing
//! secrets before it is parsed. A refused signature is 400 and nothing is recorded. A verified event is applied
//! once (`services::payments::stripe::apply`) and answered 200 — a duplicate, an event we do not act on, one
//! about no payment of ours included; 500 (Stripe retries) only when it could not be applied.
//!
//! The route is mounted outside the public routes' per-IP rate limit and body limit (see `http::router`):
//! Stripe delivers from a few addresses, with bodies beyond 16 KiB, and the signature protects it.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tracing::Instrument;

use super::super::Problem;
use super::super::limits::read_body;
use crate::app::AppState;
use crate::payments::stripe::webhook::{Signature, SignatureError, parse_event};
use crate::services::payments::stripe::apply;

pub const PATH: &str = "/pay/stripe/webhook";

pub fn router() -> Router<AppState> {
    Router::new().route(PATH, post(webhook))
}

async fn webhook(State(state): State<AppState>, request: Request) -> Response {
    let settings = &state.settings;
    let secrets = settings.stripe.signing_secrets();
    if !settings.stripe.enabled() || secrets.is_empty() {
        return Problem::new(StatusCode::NOT_FOUND, "Not Found", "Stripe is not configured").into_response();
    }
    let header = request.headers().get("stripe-signature").map(|v| v.to_str().unwrap_or_default().to_owned());
    let signature = header
        .ok_or(SignatureError::Missing)
        .and_then(|h| Signature::parse(&h))
        .and_then(|s| s.check_time(chrono::Utc::now().timestamp(), settings.stripe.webhook_tolerance_secs).map(|()| s));
    let signature = match signature {
        Ok(s) => s,
        Err(e) => return refused(&e),
    };
    let body = match read_body(request.into_body(), settings.stripe.webhook_max_bytes).await {
        Ok(body) => body,
        Err(problem) => {
            metrics::counter!("vpnshop_stripe_webhooks_total", "result" => "unread").increment(1);
            return problem.into_response();
        }
    };
    if let Err(e) = signature.verify(&body, &secrets) {
        return refused(&e);
    }
    let (event, payload) = match parse_event(&body).and_then(|e| Ok((e, serde_json::from_slice(&body)?))) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(error = %e, "a signed Stripe delivery we cannot read");
            metrics::counter!("vpnshop_stripe_webhooks_total", "result" => "unreadable").increment(1);
            return Problem::new(StatusCode::BAD_REQUEST, "Bad Request", "not a Stripe event we can read")
                .into_response();
        }
    };
    let span = tracing::info_span!("stripe.event", stripe.event = %event.id, stripe.kind = %event.kind);
    match apply(&state.pool, settings, &event, &payload).instrument(span.clone()).await {
        Ok(applied) => {
            span.in_scope(|| tracing::info!(result = applied.label(), "Stripe event"));
            metrics::counter!("vpnshop_stripe_webhooks_total", "result" => applied.label()).increment(1);
            (StatusCode::OK, axum::Json(serde_json::json!({ "received": true }))).into_response()
        }
        Err(e) => {
            span.in_scope(|| tracing::error!(error = %e, "a Stripe event could not be applied; Stripe will retry"));
            metrics::counter!("vpnshop_stripe_webhooks_total", "result" => "error").increment(1);
            Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error", "the event was not applied")
                .into_response()
        }
    }
}

fn refused(e: &SignatureError) -> Response {
    tracing::warn!(reason = e.reason(), "a Stripe webhook delivery refused: {e}");
    metrics::counter!("vpnshop_stripe_webhooks_total", "result" => e.reason()).increment(1);
    Problem::new(StatusCode::BAD_REQUEST, "Bad Request", e.to_string()).into_response()
}
