//! Who is using the dashboard: `guard` (middleware on every page) finds the browser's session from its cookie,
//! picks the language, and refuses a change (any method but GET/HEAD) that lacks the CSRF token of that session
//! (or, before sign-in, of the sign-in form's own cookie) or that comes from another site. The extractors say
//! who may call a handler: `Viewer` (any signed-in admin) and `Editor` (owners and admins; viewers get 403).

use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use subtle::ConstantTimeEq;

use super::layout::{Ctx, PageError};
use crate::app::AppState;
use crate::domain::Language;
use crate::error::AppError;
use crate::http::api::extract::client_ip;
use crate::services::auth::dash::{self, DashSession};

/// The session cookie (HttpOnly, SameSite=Strict, Path=/dash).
pub const COOKIE: &str = "vpnshop_dash";
/// Before sign-in: the sign-in form's CSRF token, double-submitted as this cookie and a form field.
pub const PRE_COOKIE: &str = "vpnshop_pre";
/// The operator's language (not secret).
pub const LANG_COOKIE: &str = "vpnshop_lang";
/// The form field (or `X-CSRF-Token` header, for htmx) that carries the CSRF token.
pub const CSRF_FIELD: &str = "csrf";

tokio::task_local! {
    /// The request's context while its handler runs (error pages render with it).
    pub static CTX: Ctx;
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// A `Set-Cookie` value for the dashboard's path.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, http_only: bool, secure: bool) -> String {
    let mut c = format!("{name}={value}; Path={}; SameSite=Strict; Max-Age={max_age_secs}", super::BASE);
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

fn language(headers: &HeaderMap) -> Language {
    if let Some(lang) = cookie(headers, LANG_COOKIE).and_then(|v| v.parse().ok()) {
        return lang;
    }
    let accept = headers.get(header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let first = accept.split(',').next().map(|t| t.split(';').next().unwrap_or("").trim());
    Language::from_ietf_tag(first, Language::En)
}

/// Middleware: session, language and CSRF for every dashboard page.
pub async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let lang = language(&parts.headers);
    let secure = state.settings.public_base_url().scheme() == "https";
    let ip = client_ip(&parts, &state);
    let found = match cookie(&parts.headers, COOKIE) {
        Some(value) => dash::session(&state.pool, value).await,
        None => Ok(None),
    };
    let session = match found {
        Ok(s) => s,
        Err(e) => return PageError(e).render(&Ctx::anonymous(lang, parts.uri.path(), secure)),
    };
    let pre_token = cookie(&parts.headers, PRE_COOKIE).filter(|v| v.len() <= 64).map(str::to_owned);
    let ctx = Ctx::new(lang, &parts.uri, session, pre_token, ip, secure);
    let mut request = Request::from_parts(parts, body);
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        match check_csrf(&state, &ctx, request).await {
            Ok(checked) => request = checked,
            Err(response) => return response,
        }
    }
    request.extensions_mut().insert(ctx.clone());
    CTX.scope(ctx, next.run(request)).await
}

/// Refuses a change from another site, or without the expected token; gives the request back with its body read.
async fn check_csrf(state: &AppState, ctx: &Ctx, request: Request) -> Result<Request, Response> {
    let (parts, body) = request.into_parts();
    let refuse = |why: &str| {
        tracing::info!(path = %parts.uri.path(), why, "dashboard change refused (CSRF)");
        PageError(AppError::Forbidden).render_message(ctx, "dash-error-csrf")
    };
    let site = parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if site.is_some_and(|s| s != "same-origin" && s != "none") {
        return Err(refuse("cross-site"));
    }
    let bytes = match crate::http::limits::read_body(body, state.settings.http.max_body_bytes).await {
        Ok(b) => b,
        Err(problem) => return Err(problem.into_response()),
    };
    let sent = parts
        .headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| form_urlencoded::parse(&bytes).find(|(k, _)| k == CSRF_FIELD).map(|(_, v)| v.into_owned()));
    let expected = ctx.csrf.as_str();
    let ok =
        sent.as_deref().is_some_and(|s| !expected.is_empty() && bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if !ok {
        return Err(refuse(if sent.is_none() { "missing token" } else { "wrong token" }));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// Any signed-in admin (viewers included).
#[derive(Debug, Clone)]
pub struct Viewer {
    pub ctx: Ctx,
    pub session: DashSession,
}

impl Viewer {
    pub fn who(&self) -> crate::services::audit::Who {
        self.session.who(self.ctx.ip.clone())
    }
}

/// A signed-in admin who may change things (owner or admin).
#[derive(Debug, Clone)]
pub struct Editor(pub Viewer);

impl std::ops::Deref for Editor {
    type Target = Viewer;
    fn deref(&self) -> &Viewer {
        &self.0
    }
}

fn to_sign_in(parts: &Parts, path: &str) -> Response {
    if parts.headers.contains_key("hx-request") {
        return ([("hx-redirect", path.to_owned())], StatusCode::UNAUTHORIZED).into_response();
    }
    Redirect::to(path).into_response()
}

impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Self::Rejection> {
        let Some(ctx) = parts.extensions.get::<Ctx>().cloned() else {
            return Err(PageError(AppError::Unauthorized).into_response());
        };
        match ctx.session.clone() {
            Some(session) if session.active => Ok(Viewer { ctx, session }),
            Some(_) => Err(to_sign_in(parts, &format!("{}/login/code", super::BASE))),
            None => {
                let next = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or(super::BASE);
                let target = format!(
                    "{}/login?next={}",
                    super::BASE,
                    percent_encoding::utf8_percent_encode(next, percent_encoding::NON_ALPHANUMERIC)
                );
                Err(to_sign_in(parts, &target))
            }
        }
    }
}

impl FromRequestParts<AppState> for Editor {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let viewer = Viewer::from_request_parts(parts, state).await?;
        if !viewer.session.can_write() {
            return Err(PageError(AppError::Forbidden).render_message(&viewer.ctx, "dash-error-viewer"));
        }
        Ok(Editor(viewer))
    }
}
