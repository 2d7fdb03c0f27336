//! Signing in and out of the dashboard: username and password, then the one-time code when the admin enrolled a
//! second factor; the language switch (also before sign-in).

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::html;
use serde::Deserialize;

use super::layout::{Ctx, Page, PageError, PageResult};
use super::session::{COOKIE, LANG_COOKIE, PRE_COOKIE, set_cookie};
use super::{BASE, Form};
use crate::app::AppState;
use crate::domain::Language;
use crate::error::AppError;
use crate::services::auth::dash::{self, Origin};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/login", get(form).post(sign_in))
        .route("/dash/login/code", get(code_form).post(second_factor))
        .route("/dash/logout", axum::routing::post(sign_out))
        .route("/dash/language", get(language))
}

/// Only our own dashboard paths are followed after sign-in (never another site).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if (n == BASE || n.starts_with("/dash/") || n.starts_with("/dash?"))
                && !n.contains("//")
                && !n.contains('\\')
                && !n.starts_with("/dash/login") =>
        {
            n.to_owned()
        }
        _ => BASE.to_owned(),
    }
}

fn origin(ctx: &Ctx, headers: &HeaderMap) -> Origin {
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Origin { ip: ctx.ip.clone(), user_agent }
}

#[derive(Deserialize)]
struct Next {
    next: Option<String>,
}

fn login_page(ctx: &Ctx, status: StatusCode, next: &str, username: &str, error: Option<String>) -> Response {
    let mut ctx = ctx.clone();
    let mut fresh = None;
    if ctx.csrf.is_empty() {
        let token = crate::services::auth::random_token(24);
        ctx.csrf = token.clone();
        fresh = Some(token);
    }
    let body = html! {
        div.login.card {
            @if let Some(e) = &error { p.flash.error role="alert" { (e) } }
            form.stack method="post" action=(format!("{BASE}/login")) {
                (ctx.csrf_field())
                input type="hidden" name="next" value=(next);
                label { (ctx.t("dash-login-username")) input name="username" autocomplete="username" required value=(username) maxlength="64"; }
                label { (ctx.t("dash-login-password")) input type="password" name="password" autocomplete="current-password" required maxlength="1024"; }
                button type="submit" { (ctx.t("dash-login-submit")) }
            }
        }
    };
    let mut response = ctx.render_status(status, Page { title: ctx.t("dash-login-title"), body });
    if let Some(token) = fresh
        && let Ok(v) = set_cookie(PRE_COOKIE, &token, 3600, true, ctx.secure).parse()
    {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

async fn form(ctx: axum::Extension<Ctx>, Query(q): Query<Next>) -> Response {
    if ctx.session.as_ref().is_some_and(|s| s.active) {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    login_page(&ctx, StatusCode::OK, &safe_next(q.next.as_deref()), "", None)
}

#[derive(Deserialize)]
struct Credentials {
    username: String,
    password: String,
    next: Option<String>,
}

async fn sign_in(
    State(state): State<AppState>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<Credentials>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let origin = origin(&ctx, &headers);
    match dash::sign_in(&state.pool, &state.auth, &state.limiter, &f.username, &f.password, &origin).await {
        Ok(signed) => {
            let (to, max_age) = if signed.needs_second_factor {
                (format!("{BASE}/login/code?next={}", percent(&next)), dash::SECOND_FACTOR_SECS)
            } else {
                (next, dash::MAX_AGE_DAYS * 86400)
            };
            let cookie = set_cookie(COOKIE, &signed.cookie, max_age, true, ctx.secure);
            ([(header::SET_COOKIE, cookie)], Redirect::to(&to)).into_response()
        }
        Err(AppError::Unauthorized) => {
            login_page(&ctx, StatusCode::UNAUTHORIZED, &next, &f.username, Some(ctx.t("dash-login-wrong")))
        }
        Err(AppError::RateLimited { retry_after_secs }) => {
            let message = ctx.ta("dash-error-retry", &[("secs", ctx.num(retry_after_secs as i64).into())]);
            let mut r = login_page(&ctx, StatusCode::TOO_MANY_REQUESTS, &next, &f.username, Some(message));
            r.headers_mut().insert(header::RETRY_AFTER, retry_after_secs.into());
            r
        }
        Err(e) => PageError(e).render(&ctx),
    }
}

fn percent(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn code_page(ctx: &Ctx, status: StatusCode, next: &str, error: Option<String>) -> Response {
    let body = html! {
        div.login.card {
            @if let Some(e) = &error { p.flash.error role="alert" { (e) } }
            p { (ctx.t("dash-login-code-help")) }
            form.stack method="post" action=(format!("{BASE}/login/code")) {
                (ctx.csrf_field())
                input type="hidden" name="next" value=(next);
                label { (ctx.t("dash-login-code")) input name="code" autocomplete="one-time-code" inputmode="text" required maxlength="32"; }
                button type="submit" { (ctx.t("dash-login-submit")) }
            }
        }
    };
    ctx.render_status(status, Page { title: ctx.t("dash-login-code-title"), body })
}

async fn code_form(axum::Extension(ctx): axum::Extension<Ctx>, Query(q): Query<Next>) -> Response {
    match &ctx.session {
        Some(s) if s.active => Redirect::to(BASE).into_response(),
        Some(_) => code_page(&ctx, StatusCode::OK, &safe_next(q.next.as_deref()), None),
        None => Redirect::to(&format!("{BASE}/login")).into_response(),
    }
}

#[derive(Deserialize)]
struct Code {
    code: String,
    next: Option<String>,
}

async fn second_factor(
    State(state): State<AppState>,
    axum::Extension(ctx): axum::Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<Code>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    let Some(session) = ctx.session.clone().filter(|s| !s.active) else {
        return Redirect::to(&format!("{BASE}/login")).into_response();
    };
    let origin = origin(&ctx, &headers);
    match dash::second_factor(&state.pool, &state.auth, &state.limiter, &session, &f.code, &origin).await {
        Ok(cookie) => {
            let cookie = set_cookie(COOKIE, &cookie, dash::MAX_AGE_DAYS * 86400, true, ctx.secure);
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(AppError::Field { .. }) => {
            code_page(&ctx, StatusCode::UNAUTHORIZED, &next, Some(ctx.t("dash-login-code-wrong")))
        }
        Err(e) => PageError(e).render(&ctx),
    }
}

async fn sign_out(State(state): State<AppState>, axum::Extension(ctx): axum::Extension<Ctx>) -> PageResult {
    if let Some(session) = &ctx.session {
        dash::sign_out(&state.pool, session, ctx.ip.clone()).await?;
    }
    let clear = set_cookie(COOKIE, "", 0, true, ctx.secure);
    Ok(([(header::SET_COOKIE, clear)], Redirect::to(&format!("{BASE}/login"))).into_response())
}

#[derive(Deserialize)]
struct Switch {
    to: String,
    back: Option<String>,
}

/// Switches the dashboard's language (a cookie, for a year) and goes back to the page it was asked from.
async fn language(axum::Extension(ctx): axum::Extension<Ctx>, Query(q): Query<Switch>) -> Response {
    let Ok(lang) = q.to.parse::<Language>() else {
        return PageError(AppError::field("to", "pick en, fa or ru")).render(&ctx);
    };
    // back to where the switch was asked from (the sign-in page included), never to another site
    let back = match q.back.as_deref() {
        Some(login) if login == "/dash/login" || login == "/dash/login/code" => login.to_owned(),
        other => safe_next(other),
    };
    let cookie = set_cookie(LANG_COOKIE, lang.as_str(), 365 * 86400, false, ctx.secure);
    ([(header::SET_COOKIE, cookie)], Redirect::to(&back)).into_response()
}
