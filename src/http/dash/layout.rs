//! The page shell every dashboard page shares (head, navigation, language switch, sign-out, flash message), the
//! request context pages render with (`Ctx`: language, session, CSRF token), and error pages (`PageError`):
//! an `AppError` becomes a page with the reason in the operator's language and the right status, never a bare 500.

use axum::http::{StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::BASE;
use super::session::CTX;
use crate::domain::Language;
use crate::error::AppError;
use crate::i18n::{self, Arg};
use crate::services::auth::dash::DashSession;

/// What a page renders with: the operator's language, their session (if signed in), the CSRF token its forms
/// carry, and where the request came from.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub lang: Language,
    pub path: String,
    /// The `done` flash of a redirect after a change (a message key suffix).
    pub done: Option<String>,
    pub session: Option<DashSession>,
    pub csrf: String,
    pub ip: Option<String>,
    pub secure: bool,
}

/// A page handler's result.
pub type PageResult = Result<Response, PageError>;

/// A page: its title and body, rendered in the shell.
pub struct Page {
    pub title: String,
    pub body: Markup,
}

impl Ctx {
    pub fn new(
        lang: Language,
        uri: &Uri,
        session: Option<DashSession>,
        pre_token: Option<String>,
        ip: Option<String>,
        secure: bool,
    ) -> Ctx {
        let done = uri.query().and_then(|q| {
            form_urlencoded::parse(q.as_bytes())
                .find(|(k, _)| k == "done")
                .map(|(_, v)| v.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').take(40).collect())
        });
        let csrf = session.as_ref().map(|s| s.csrf_token.clone()).or(pre_token).unwrap_or_default();
        Ctx { lang, path: uri.path().to_owned(), done, session, csrf, ip, secure }
    }

    pub fn anonymous(lang: Language, path: &str, secure: bool) -> Ctx {
        Ctx { lang, path: path.to_owned(), done: None, session: None, csrf: String::new(), ip: None, secure }
    }

    /// The text of `key` in the operator's language.
    pub fn t(&self, key: &str) -> String {
        i18n::plain(self.lang, key, &[])
    }

    /// The text of `key` with variables.
    pub fn ta(&self, key: &str, args: &[(&'static str, Arg)]) -> String {
        i18n::plain(self.lang, key, args)
    }

    /// A whole number in the operator's digits.
    pub fn num(&self, n: i64) -> String {
        i18n::number(self.lang, n)
    }

    /// A moment, `2026-12-02 14:30 UTC`, in the operator's digits.
    pub fn when(&self, at: chrono::DateTime<chrono::Utc>) -> String {
        i18n::moment(self.lang, at)
    }

    /// A moment or a dash.
    pub fn when_opt(&self, at: Option<chrono::DateTime<chrono::Utc>>) -> String {
        at.map(|a| self.when(a)).unwrap_or_else(|| "—".to_owned())
    }

    /// Whether the signed-in admin may change things (viewers may not: their pages show no change buttons).
    pub fn can_write(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.active && s.can_write())
    }

    /// The hidden CSRF field every form carries.
    pub fn csrf_field(&self) -> Markup {
        html! { input type="hidden" name=(super::session::CSRF_FIELD) value=(self.csrf); }
    }

    /// A full page, 200.
    pub fn render(&self, page: Page) -> Response {
        self.render_status(StatusCode::OK, page)
    }

    /// A full page with this status.
    pub fn render_status(&self, status: StatusCode, page: Page) -> Response {
        (status, Html(shell(self, &page).into_string())).into_response()
    }

    /// A piece of a page for htmx to swap in.
    pub fn fragment(&self, markup: Markup) -> Response {
        Html(markup.into_string()).into_response()
    }

    /// Redirect after a change (303 See Other), with a `done` message key shown on the next page.
    pub fn done(&self, to: &str, done: &str) -> Response {
        let sep = if to.contains('?') { '&' } else { '?' };
        axum::response::Redirect::to(&format!("{to}{sep}done={done}")).into_response()
    }
}

const NAV: &[(&str, &str)] = &[
    ("", "dash-nav-overview"),
    ("/review", "dash-nav-review"),
    ("/customers", "dash-nav-customers"),
    ("/subscriptions", "dash-nav-subscriptions"),
    ("/orders", "dash-nav-orders"),
    ("/payments", "dash-nav-payments"),
    ("/nodes", "dash-nav-nodes"),
    ("/plans", "dash-nav-plans"),
    ("/broadcasts", "dash-nav-broadcasts"),
    ("/audit", "dash-nav-audit"),
];

fn shell(ctx: &Ctx, page: &Page) -> Markup {
    let dir = if ctx.lang.is_rtl() { "rtl" } else { "ltr" };
    let signed_in = ctx.session.as_ref().filter(|s| s.active);
    let hx_headers = format!(r#"{{"X-CSRF-Token":"{}"}}"#, ctx.csrf);
    html! {
        (DOCTYPE)
        html lang=(ctx.lang.as_str()) dir=(dir) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="htmx-config" content=r#"{"includeIndicatorStyles":false,"allowEval":false,"allowScriptTags":false,"selfRequestsOnly":true}"#;
                title { (page.title) " · vpnshop" }
                link rel="stylesheet" href=(super::assets::url("app.css"));
                script src=(super::assets::url("htmx.min.js")) defer {}
            }
            body hx-headers=(hx_headers) {
                a.skip href="#main" { (ctx.t("dash-skip")) }
                header.top {
                    a.brand href=(BASE) { "vpnshop" }
                    @if let Some(s) = signed_in {
                        nav aria-label=(ctx.t("dash-nav-label")) {
                            ul {
                                @for (path, key) in NAV {
                                    @let href = format!("{BASE}{path}");
                                    @let current = ctx.path == href || (!path.is_empty() && ctx.path.starts_with(&format!("{href}/")));
                                    li { a href=(href) aria-current=[current.then_some("page")] { (ctx.t(key)) } }
                                }
                            }
                        }
                        div.me {
                            a href=(format!("{BASE}/account")) { (s.username) " (" (ctx.t(&format!("dash-role-{}", s.role.as_str()))) ")" }
                            form method="post" action=(format!("{BASE}/logout")) {
                                (ctx.csrf_field())
                                button.link type="submit" { (ctx.t("dash-sign-out")) }
                            }
                        }
                    }
                    (languages(ctx))
                }
                main #main {
                    h1 { (page.title) }
                    @if let Some(done) = &ctx.done {
                        @let key = format!("dash-done-{done}");
                        @if i18n::has(&key) { p.flash.ok role="status" { (ctx.t(&key)) } }
                    }
                    (page.body)
                }
            }
        }
    }
}

fn languages(ctx: &Ctx) -> Markup {
    let back = percent_encoding::utf8_percent_encode(&ctx.path, percent_encoding::NON_ALPHANUMERIC).to_string();
    html! {
        ul.langs aria-label=(ctx.t("dash-language")) {
            @for (lang, name) in [(Language::En, "English"), (Language::Fa, "فارسی"), (Language::Ru, "Русский")] {
                li {
                    a href=(format!("{BASE}/language?to={}&back={back}", lang.as_str())) lang=(lang.as_str()) hreflang=(lang.as_str())
                        aria-current=[(lang == ctx.lang).then_some("true")] { (name) }
                }
            }
        }
    }
}

/// An error a page handler returns: rendered as a page in the operator's language with the matching status.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> PageError {
        PageError(e)
    }
}

impl From<sqlx::Error> for PageError {
    fn from(e: sqlx::Error) -> PageError {
        PageError(e.into())
    }
}

impl PageError {
    fn status(&self) -> StatusCode {
        match &self.0 {
            AppError::Invalid(_) | AppError::Field { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::Conflict(_) | AppError::IllegalTransition(_) => StatusCode::CONFLICT,
            AppError::Unauthorized => StatusCode::UNAUTHORIZED,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the operator reads: a heading key and the detail (safe to show).
    fn explain(&self, ctx: &Ctx) -> (String, String) {
        match &self.0 {
            AppError::Field { field, message } => (
                ctx.t("dash-error-input"),
                ctx.ta("dash-error-field", &[("field", field.as_str().into()), ("message", message.as_str().into())]),
            ),
            AppError::Invalid(m) | AppError::Conflict(m) => (ctx.t("dash-error-input"), m.clone()),
            AppError::IllegalTransition(t) => (ctx.t("dash-error-input"), t.to_string()),
            AppError::NotFound(what) => (ctx.t("dash-error-not-found"), (*what).to_owned()),
            AppError::Unauthorized => (ctx.t("dash-error-sign-in"), String::new()),
            AppError::Forbidden => (ctx.t("dash-error-forbidden"), String::new()),
            AppError::RateLimited { retry_after_secs } => (
                ctx.t("dash-error-slow-down"),
                ctx.ta("dash-error-retry", &[("secs", ctx.num(*retry_after_secs as i64).into())]),
            ),
            AppError::Unavailable(what) => (ctx.t("dash-error-unavailable"), what.clone()),
            AppError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "dashboard request failed");
                (ctx.t("dash-error-internal"), String::new())
            }
        }
    }

    /// The error as a full page in `ctx`.
    pub fn render(self, ctx: &Ctx) -> Response {
        let status = self.status();
        let (title, detail) = self.explain(ctx);
        error_page(ctx, status, title, detail)
    }

    /// The error as a full page whose detail is the text of `key`.
    pub fn render_message(self, ctx: &Ctx, key: &str) -> Response {
        let status = self.status();
        let (title, _) = self.explain(ctx);
        error_page(ctx, status, title, ctx.t(key))
    }
}

fn error_page(ctx: &Ctx, status: StatusCode, title: String, detail: String) -> Response {
    let back = if ctx.session.as_ref().is_some_and(|s| s.active) { BASE.to_owned() } else { format!("{BASE}/login") };
    let body = html! {
        div.flash.error role="alert" {
            @if !detail.is_empty() { p { (detail) } }
        }
        p { a href=(back) { (ctx.t("dash-error-back")) } }
    };
    ctx.render_status(status, Page { title, body })
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let ctx = CTX.try_with(Ctx::clone).unwrap_or_else(|_| Ctx::anonymous(Language::En, BASE, false));
        self.render(&ctx)
    }
}

/// Text marked as already-escaped HTML (only for markup we build ourselves, e.g. SVG).
pub fn trusted(html: String) -> PreEscaped<String> {
    PreEscaped(html)
}
