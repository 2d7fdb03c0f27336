//! The payment gateways' routes: Stripe's webhook (`POST /pay/stripe/webhook`) and Zarinpal's callback
//! (`GET /pay/zarinpal/callback`), plus the page a customer lands on after paying when the bot's username is not
//! configured (`GET /pay/return/{order}`). They only verify and translate what the gateway says, then call
//! `services::payments::online::settle`.

use axum::Router;

use crate::app::AppState;

mod stripe;
mod zarinpal;

pub fn router() -> Router<AppState> {
    Router::new().merge(zarinpal::router())
}

/// Stripe's webhook, mounted beside the public routes (not behind their per-IP rate limit and body limit).
pub fn stripe_webhook() -> Router<AppState> {
    stripe::router()
}
