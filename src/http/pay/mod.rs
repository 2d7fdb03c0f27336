//! The payment gateways' routes: Stripe's webhook (`POST /pay/stripe/webhook`) and Zarinpal's callback
//! (`GET /pay/zarinpal/callback`), plus the page a customer lands on after paying when the bot's username is not
//! configured (`GET /pay/return/{order}`). They only verify and translate what the gateway says, then call
//! `services::payments::online::settle`.

use axum::Router;

use crate::app::AppState;

mod stripe;
mod zarinpal;

pub fn router() -> Router<AppState> {
    Router::new().merge(stripe::router()).merge(zarinpal::router())
}
