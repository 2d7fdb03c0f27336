//! `POST /telegram/webhook`: Telegram's deliveries. The secret header is checked in constant time; the update
//! is stored durably before the 200; a full intake answers 503 so Telegram retries.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use secrecy::ExposeSecret;

use super::Problem;
use crate::app::AppState;
use crate::bot::intake::IntakeError;

pub fn router() -> Router<AppState> {
    Router::new().route("/telegram/webhook", post(webhook))
}

/// Compares without leaking where two secrets differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let (Some(tg), Some(secret)) = (&state.telegram, &state.settings.telegram.webhook_secret) else {
        return Problem::new(StatusCode::NOT_FOUND, "Not Found", "the bot does not use a webhook").into_response();
    };
    let given = headers.get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes()).unwrap_or_default();
    if !same(given, secret.expose_secret().as_bytes()) {
        metrics::counter!("vpnshop_telegram_webhook_rejected_total", "reason" => "secret").increment(1);
        return Problem::new(StatusCode::UNAUTHORIZED, "Unauthorized", "wrong or missing secret token").into_response();
    }
    match tg.intake.accept_raw(&body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(IntakeError::Invalid) => {
            metrics::counter!("vpnshop_telegram_webhook_rejected_total", "reason" => "malformed").increment(1);
            Problem::new(StatusCode::BAD_REQUEST, "Bad Request", "not a Telegram update (JSON with an update_id)")
                .into_response()
        }
        Err(e @ (IntakeError::Busy | IntakeError::Store)) => {
            let mut r =
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable", e.to_string()).into_response();
            r.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
            r
        }
    }
}
