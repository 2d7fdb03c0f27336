//! The admin dashboard: server-rendered pages (maud) on the same services as the admin API, plain forms that work
//! without JavaScript and a little htmx (embedded, no CDN) for live parts.
//!
//! Every request passes `session::guard`: it finds the browser's session (an HttpOnly cookie, stored server side)
//! and refuses any change (POST) without the form's CSRF token or from another site. Responses carry strict
//! security headers (a CSP without inline script, no framing, no referrer) and are never cached, static assets
//! aside. Pages are in the operator's language (en/fa/ru, Persian right to left).

use axum::Router;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

use crate::app::AppState;

mod account;
mod assets;
mod audit;
mod broadcasts;
mod customers;
mod form;
mod layout;
mod login;
mod nodes;
mod orders;
mod overview;
mod plans;
mod review;
pub mod session;
mod subscriptions;
mod svg;

pub use form::Form;
pub use layout::{Ctx, Page, PageError, PageResult};
pub use session::{Editor, Viewer};

/// Where the dashboard lives.
pub const BASE: &str = "/dash";

/// The dashboard's routes with their middleware (session + CSRF guard, security headers).
pub fn router(state: &AppState) -> Router<AppState> {
    let pages = Router::new()
        .merge(login::router())
        .merge(account::router())
        // dashboard pages: one `.merge(<module>::router())` per line below this anchor
        .merge(review::router())
        .merge(customers::router())
        .merge(plans::router())
        .merge(broadcasts::router())
        .merge(audit::router())
        .merge(subscriptions::router())
        .merge(orders::router())
        .merge(overview::router())
        .merge(nodes::router());
    pages
        .layer(axum::middleware::from_fn_with_state(state.clone(), session::guard))
        .layer(axum::middleware::map_response(security_headers))
        .merge(assets::router())
        // pages and htmx are text: gzip makes them a third of their size on a slow phone link
        .layer(tower_http::compression::CompressionLayer::new())
}

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, HeaderName::from_static("cross-origin-opener-policy"), "same-origin");
    set(h, HeaderName::from_static("permissions-policy"), "camera=(), microphone=(), geolocation=()");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    response
}
