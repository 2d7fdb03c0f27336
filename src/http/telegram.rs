//! `POST /telegram/webhook`: Telegram's deliveries. The secret header is checked (in constant time) before any
//! of the body is read, and the body is read only up to `telegram.max_update_bytes` (413 beyond, declared or
//! not); the update is stored durably before the 200; a full intake answers 503 so Telegram retries. A delivery
//! with the right secret gets a `telegram.webhook` span: the update is stored with its trace, which the inbox
//! continues when it handles the update.

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;
use tracing::Instrument;

use super::Problem;
use super::limits::read_body;
use crate::app::AppState;
use crate::bot::intake::IntakeError;

pub fn router() -> Router<AppState> {
    Router::new().route("/telegram/webhook", post(webhook))
}

async fn webhook(State(state): State<AppState>, request: Request) -> Response {
    let (Some(tg), Some(secret)) = (&state.telegram, &state.settings.telegram.webhook_secret) else {
        return Problem::new(StatusCode::NOT_FOUND, "Not Found", "the bot does not use a webhook").into_response();
    };
    let given = request.headers().get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes()).unwrap_or_default();
    if !bool::from(given.ct_eq(secret.expose_secret().as_bytes())) {
        metrics::counter!("vpnshop_telegram_webhook_rejected_total", "reason" => "secret").increment(1);
        return Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "wrong or missing secret token").into_response();
    }
    let span = tracing::info_span!(
        "telegram.webhook",
        otel.name = "POST /telegram/webhook",
        otel.kind = "server",
        http.route = "/telegram/webhook",
        http.response.status_code = tracing::field::Empty,
    );
    let response = deliver(tg, &state, request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

/// Reads the body and hands the update to the intake.
async fn deliver(tg: &crate::bot::Telegram, state: &AppState, request: Request) -> Response {
    let body = match read_body(request.into_body(), state.settings.telegram.max_update_bytes).await {
        Ok(body) => body,
        Err(problem) => {
            let reason = if problem.status == StatusCode::PAYLOAD_TOO_LARGE.as_u16() { "too_large" } else { "unread" };
            metrics::counter!("vpnshop_telegram_webhook_rejected_total", "reason" => reason).increment(1);
            return problem.into_response();
        }
    };
    match tg.intake.accept_raw(&body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(IntakeError::Invalid) => {
            metrics::counter!("vpnshop_telegram_webhook_rejected_total", "reason" => "malformed").increment(1);
            Problem::new(StatusCode::BAD_REQUEST, "Bad Request", "not a Telegram update (JSON with an update_id)")
                .into_response()
        }
        Err(e @ (IntakeError::Busy | IntakeError::Store)) => {
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", e.to_string())
                .retry_after(1)
                .into_response()
        }
    }
}
