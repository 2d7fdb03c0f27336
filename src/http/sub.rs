//! `GET /sub/{token}`: the subscription feed for v2rayN / v2rayNG / Hiddify / Streisand. It reads the database
//! within the public share of the pool ([`PublicDb`]).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::limits::PublicDb;
use crate::app::AppState;
use crate::error::AppError;
use crate::services::access;

pub fn router() -> Router<AppState> {
    Router::new().route("/sub/{token}", get(feed))
}

async fn feed(State(state): State<AppState>, Path(token): Path<String>, _db: PublicDb) -> Result<Response, AppError> {
    let feed = access::feed(&state.pool, &token, &state.settings.provision).await?;
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let values = [
        ("subscription-userinfo", feed.userinfo),
        ("profile-update-interval", feed.update_interval_hours.to_string()),
        ("profile-title", feed.title),
    ];
    for (name, value) in values {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    Ok((headers, feed.body).into_response())
}
