//! Static files embedded in the binary (the stylesheet, htmx), served with a content hash in their URL so they can
//! be cached for a year.

use std::sync::LazyLock;

use axum::Router;
use axum::extract::{Path, Query};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use sha2::{Digest, Sha256};

use crate::app::AppState;

struct Asset {
    name: &'static str,
    mime: &'static str,
    bytes: &'static [u8],
    version: String,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| {
    let files: [(&str, &str, &[u8]); 2] = [
        ("app.css", "text/css; charset=utf-8", include_bytes!("assets/app.css")),
        ("htmx.min.js", "text/javascript; charset=utf-8", include_bytes!("assets/htmx.min.js")),
    ];
    files
        .into_iter()
        .map(|(name, mime, bytes)| Asset { name, mime, bytes, version: hex::encode(&Sha256::digest(bytes)[..6]) })
        .collect()
});

/// The URL of an embedded file, with its content hash.
pub fn url(name: &str) -> String {
    let version = ASSETS.iter().find(|a| a.name == name).map(|a| a.version.as_str()).unwrap_or("0");
    format!("{}/static/{name}?v={version}", super::BASE)
}

#[derive(serde::Deserialize)]
struct Version {
    v: Option<String>,
}

async fn serve(Path(name): Path<String>, Query(q): Query<Version>) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // the current version is immutable; anything else may change under the same URL
    let cache = if q.v.as_deref() == Some(&asset.version) {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    (
        [
            (header::CONTENT_TYPE, asset.mime),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/dash/static/{name}", get(serve))
}
