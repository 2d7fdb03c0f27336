//! `GET /pay/zarinpal/callback` and `GET /pay/return/{order}` (to be written).

use axum::Router;

use crate::app::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
}
