//! The admin REST API under `/api/v1`: JSON in and out, errors as problem documents, every route but sign-in
//! behind an access token or an API key (`extract::Caller`), mutations behind a writer (`extract::Writer`), each
//! recorded in the audit log. The OpenAPI 3.1 document is generated from the same handlers the router serves
//! (`utoipa-axum`: a route exists only through `routes!`, which documents it), at `GET /api/v1/openapi.json`.
//!
//! Limits: a per-client-IP rate limit (`security.api_rate_limit_*`), sign-in throttled per IP and per account
//! (`security.login_*`, in Redis), and the server's body limit and request timeout.

use axum::Json;
use axum::Router;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

mod auth;
pub mod extract;
// resources: users, plans, servers, orders
mod orders;
mod plans;
mod servers;
mod users;
// money and customers: payments, subscriptions, audit, stats
mod audit;
mod payments;
mod stats;
mod subscriptions;
// broadcasts
mod broadcasts;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "vpnshop admin API",
        description = "Operate a vpnshop: customers, plans, servers, orders, payments, subscriptions, broadcasts, \
                       statistics and the audit log. Authenticate with `Authorization: Bearer <token>`: an access \
                       token from `POST /api/v1/auth/login`, or an API key (`vpnshop admin api-key create`). \
                       Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `type`.",
        license(name = "MIT")
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    components(schemas(crate::http::error::Problem, crate::http::error::InvalidParam))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// Every route with its documentation.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::list_keys, auth::create_key))
        .routes(routes!(auth::revoke_key))
        // resources: users, plans, servers, orders
        .routes(routes!(users::list_users))
        .routes(routes!(users::get_user))
        .routes(routes!(users::ban_user))
        .routes(routes!(users::unban_user))
        .routes(routes!(plans::list_plans, plans::create_plan))
        .routes(routes!(plans::get_plan, plans::patch_plan))
        .routes(routes!(plans::activate_plan))
        .routes(routes!(plans::deactivate_plan))
        .routes(routes!(plans::put_price, plans::delete_price))
        .routes(routes!(servers::list_servers, servers::create_server))
        .routes(routes!(servers::get_server, servers::patch_server, servers::delete_server))
        .routes(routes!(servers::put_inbounds))
        .routes(routes!(servers::enable_server))
        .routes(routes!(servers::disable_server))
        .routes(routes!(servers::test_server))
        .routes(routes!(orders::list_orders))
        .routes(routes!(orders::get_order))
        // money and customers: payments, subscriptions, audit, stats
        .routes(routes!(payments::list_payments))
        .routes(routes!(payments::get_payment))
        .routes(routes!(payments::accept_payment))
        .routes(routes!(payments::reject_payment))
        .routes(routes!(subscriptions::list_subscriptions))
        .routes(routes!(subscriptions::get_subscription))
        .routes(routes!(subscriptions::extend_subscription))
        .routes(routes!(subscriptions::add_subscription_data))
        .routes(routes!(subscriptions::revoke_subscription))
        .routes(routes!(subscriptions::reset_subscription_seat))
        .routes(routes!(subscriptions::rotate_subscription_url))
        .routes(routes!(audit::list_audit))
        .routes(routes!(stats::get_stats))
        // broadcasts
        .routes(routes!(broadcasts::list_broadcasts, broadcasts::create_broadcast))
        .routes(routes!(broadcasts::get_broadcast))
        .routes(routes!(broadcasts::pause_broadcast))
        .routes(routes!(broadcasts::resume_broadcast))
        .routes(routes!(broadcasts::cancel_broadcast))
        .routes(routes!(openapi_json))
}

/// The OpenAPI document of the routes `router` serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api().split_for_parts().1;
    // every response object needs a description: the status's reason phrase where a handler gave none
    for item in doc.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for op in ops.into_iter().flatten() {
            for (status, response) in op.responses.responses.iter_mut() {
                if let utoipa::openapi::RefOr::T(r) = response
                    && r.description.is_empty()
                {
                    let reason = status.parse::<u16>().ok().and_then(|s| axum::http::StatusCode::from_u16(s).ok());
                    r.description = reason.and_then(|s| s.canonical_reason()).unwrap_or("Response").to_owned();
                }
            }
        }
    }
    doc
}

/// The `/api/v1` routes.
pub fn router() -> Router<AppState> {
    api()
        .split_for_parts()
        .0
        .method_not_allowed_fallback(|| async {
            crate::http::Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "Method Not Allowed",
                "this route does not take that method (see /api/v1/openapi.json)",
            )
        })
        .layer(axum::middleware::map_response(no_store))
}

/// Answers carry tokens and customers' data: no cache keeps them.
async fn no_store(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    response
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", content_type = "application/json")))]
async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    static DOC: std::sync::LazyLock<utoipa::openapi::OpenApi> = std::sync::LazyLock::new(openapi);
    Json(DOC.clone())
}
