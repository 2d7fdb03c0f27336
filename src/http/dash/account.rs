//! The signed-in admin's own account: the second factor (enrol with a QR code, recovery codes, turn off) and their
//! open sessions (end one, or sign out everywhere). Viewers manage their own account too.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::{get, post};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{Page, PageResult, trusted};
use super::session::{COOKIE, Viewer, set_cookie};
use super::{BASE, Form};
use crate::app::AppState;
use crate::services::auth::{dash, totp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/dash/account", get(show))
        .route("/dash/account/totp/begin", post(begin))
        .route("/dash/account/totp/confirm", post(confirm))
        .route("/dash/account/totp/disable", post(disable))
        .route("/dash/account/totp/recovery", post(recovery))
        .route("/dash/account/sessions/{id}/revoke", post(revoke))
        .route("/dash/account/sign-out-everywhere", post(everywhere))
}

async fn show(State(state): State<AppState>, v: Viewer) -> PageResult {
    let ctx = &v.ctx;
    let enabled = totp::is_enabled(&state.pool, v.session.admin_id).await?;
    let remaining = if enabled { totp::remaining_recovery_codes(&state.pool, v.session.admin_id).await? } else { 0 };
    let sessions = dash::open_sessions(&state.pool, v.session.admin_id).await?;
    let body = html! {
        section aria-labelledby="totp" {
            h2 #totp { (ctx.t("dash-account-totp")) }
            @if enabled {
                p { span.badge.ok { (ctx.t("dash-account-totp-on")) } " " (ctx.ta("dash-account-recovery-left", &[("count", ctx.num(remaining).into())])) }
                div.actions {
                    form.inline method="post" action=(format!("{BASE}/account/totp/recovery")) {
                        (ctx.csrf_field())
                        button.secondary type="submit" { (ctx.t("dash-account-recovery-new")) }
                    }
                }
                form.stack method="post" action=(format!("{BASE}/account/totp/disable")) {
                    (ctx.csrf_field())
                    label { (ctx.t("dash-account-totp-off-code")) input name="code" autocomplete="one-time-code" required maxlength="32"; }
                    div { button.danger type="submit" { (ctx.t("dash-account-totp-off")) } }
                }
            } @else {
                p { (ctx.t("dash-account-totp-why")) }
                form method="post" action=(format!("{BASE}/account/totp/begin")) {
                    (ctx.csrf_field())
                    button type="submit" { (ctx.t("dash-account-totp-begin")) }
                }
            }
        }
        section aria-labelledby="sessions" {
            h2 #sessions { (ctx.t("dash-account-sessions")) }
            div.table-wrap { table {
                thead { tr { th { (ctx.t("dash-account-signed-in")) } th { (ctx.t("dash-account-last-seen")) } th { (ctx.t("dash-account-from")) } th { span.muted { (ctx.t("dash-actions")) } } } }
                tbody { @for s in &sessions { tr {
                    td { (ctx.when(s.created_at)) }
                    td { (ctx.when(s.last_seen_at)) }
                    td { (s.source_ip.as_deref().unwrap_or("—")) br; span.muted { (s.user_agent.as_deref().unwrap_or("")) } }
                    td {
                        @if s.id == v.session.id { span.badge { (ctx.t("dash-account-this-session")) } }
                        @else {
                            form.inline method="post" action=(format!("{BASE}/account/sessions/{}/revoke", s.id)) {
                                (ctx.csrf_field())
                                button.secondary type="submit" { (ctx.t("dash-account-end-session")) }
                            }
                        }
                    }
                } } }
            } }
            form method="post" action=(format!("{BASE}/account/sign-out-everywhere")) {
                (ctx.csrf_field())
                p { button.danger type="submit" { (ctx.t("dash-account-everywhere")) } }
            }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-account-title"), body }))
}

fn codes_list(codes: &[String]) -> Markup {
    html! { ul.mono { @for c in codes { li { (c) } } } }
}

async fn begin(State(state): State<AppState>, v: Viewer) -> PageResult {
    let ctx = &v.ctx;
    let label = format!("vpnshop:{}", v.session.username);
    let enrolment = totp::begin_enrolment(&state.pool, v.session.admin_id, &label).await?;
    let body = html! {
        p { (ctx.t("dash-account-totp-scan")) }
        div.qr role="img" aria-label=(ctx.t("dash-account-totp-qr")) { (trusted(enrolment.qr_svg.clone())) }
        p { (ctx.t("dash-account-totp-key")) " " code { (enrolment.secret_base32) } }
        form.stack method="post" action=(format!("{BASE}/account/totp/confirm")) {
            (ctx.csrf_field())
            label { (ctx.t("dash-login-code")) input name="code" autocomplete="one-time-code" inputmode="numeric" required maxlength="8"; }
            div { button type="submit" { (ctx.t("dash-account-totp-confirm")) } }
        }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-account-totp"), body }))
}

#[derive(Deserialize)]
struct Code {
    code: String,
}

async fn confirm(State(state): State<AppState>, v: Viewer, Form(f): Form<Code>) -> PageResult {
    let ctx = &v.ctx;
    let codes = totp::confirm_enrolment(&state.pool, &v.who(), v.session.admin_id, &f.code).await?;
    let body = html! {
        p.flash.ok role="status" { (ctx.t("dash-account-totp-enabled")) }
        p { (ctx.t("dash-account-recovery-save")) }
        (codes_list(&codes))
        p { a href=(format!("{BASE}/account")) { (ctx.t("dash-error-back")) } }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-account-recovery"), body }))
}

async fn disable(State(state): State<AppState>, v: Viewer, Form(f): Form<Code>) -> PageResult {
    // turning the second factor off takes a current code (or a recovery code), not just an open tab
    if !totp::verify(&state.pool, v.session.admin_id, &f.code).await? {
        return Err(crate::error::AppError::field("code", "the code is not right (or was already used)").into());
    }
    totp::disable(&state.pool, &v.who(), v.session.admin_id).await?;
    Ok(v.ctx.done(&format!("{BASE}/account"), "totp-off"))
}

async fn recovery(State(state): State<AppState>, v: Viewer) -> PageResult {
    let ctx = &v.ctx;
    let codes = totp::regenerate_recovery_codes(&state.pool, &v.who(), v.session.admin_id).await?;
    let body = html! {
        p { (ctx.t("dash-account-recovery-save")) }
        (codes_list(&codes))
        p { a href=(format!("{BASE}/account")) { (ctx.t("dash-error-back")) } }
    };
    Ok(ctx.render(Page { title: ctx.t("dash-account-recovery"), body }))
}

async fn revoke(State(state): State<AppState>, v: Viewer, Path(id): Path<i64>) -> PageResult {
    dash::revoke_session(&state.pool, &v.session, id, v.ctx.ip.clone()).await?;
    Ok(v.ctx.done(&format!("{BASE}/account"), "session-ended"))
}

async fn everywhere(State(state): State<AppState>, v: Viewer) -> PageResult {
    dash::sign_out_everywhere(&state.pool, &v.session, v.ctx.ip.clone()).await?;
    let clear = set_cookie(COOKIE, "", 0, true, v.ctx.secure);
    Ok(([(header::SET_COOKIE, clear)], Redirect::to(&format!("{BASE}/login"))).into_response())
}
