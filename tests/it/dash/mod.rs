//! The admin dashboard, driven over HTTP like a browser without JavaScript (cookies, forms with their CSRF token,
//! redirects read by hand) against the real app (Postgres, Redis), with an owner, an admin and a viewer.

mod audit;
mod auth;
mod broadcasts;
mod customers;
mod nodes;
mod orders;
mod overview;
mod pages;
mod plans;
mod review;
mod subscriptions;

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use sqlx::PgPool;

use crate::helpers::{TestApp, spawn_app_with};
use vpnshop::config::Settings;
use vpnshop::services::auth as auth_svc;
use vpnshop::services::users;

/// The app with three admins (`owner`, `editor` with role admin, `viewer`), each with a password.
pub struct Dash {
    pub app: TestApp,
    pub http: reqwest::Client,
    pub passwords: std::collections::HashMap<&'static str, String>,
}

/// A browser's cookie jar for one signed-in (or not) admin.
#[derive(Debug, Clone, Default)]
pub struct Browser {
    /// `name=value` pairs sent as the Cookie header.
    pub cookies: Vec<(String, String)>,
    /// The CSRF token from the last page read.
    pub csrf: String,
}

/// A response read whole.
#[derive(Debug)]
pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    /// The CSRF token embedded in the page's forms.
    pub fn csrf(&self) -> Option<String> {
        let re = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap();
        re.captures(&self.body).map(|c| c[1].to_owned())
    }

    #[track_caller]
    pub fn assert_ok(&self) -> &Page {
        assert_eq!(self.status, StatusCode::OK, "{}", &self.body[..self.body.len().min(3000)]);
        self
    }
}

pub async fn dash(pool: PgPool) -> Dash {
    dash_with(pool, |_| {}).await
}

pub async fn dash_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> Dash {
    let app = spawn_app_with(pool, |s| {
        s.security.api_rate_limit_per_second = 10_000.0;
        s.security.api_rate_limit_burst = 10_000;
        s.security.login_max_per_ip = 1_000;
        s.security.login_max_per_account = 1_000;
        s.redis.prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        customize(s);
    })
    .await;
    let pool = &app.state.pool;
    let mut passwords = std::collections::HashMap::new();
    for (name, role) in [("owner", "owner"), ("editor", "admin"), ("viewer", "viewer")] {
        users::add_admin(pool, name, None, role).await.unwrap();
        passwords.insert(name, auth_svc::set_password(pool, name, None).await.unwrap());
    }
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    Dash { app, http, passwords }
}

impl Browser {
    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Keeps what `Set-Cookie` says (a Max-Age of 0 removes the cookie).
    fn take_cookies(&mut self, headers: &reqwest::header::HeaderMap) {
        for value in headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()) {
            let pair = value.split(';').next().unwrap_or("");
            let Some((name, val)) = pair.split_once('=') else { continue };
            self.cookies.retain(|(k, _)| k != name);
            if !value.contains("Max-Age=0") {
                self.cookies.push((name.to_owned(), val.to_owned()));
            }
        }
    }

    pub fn set_cookie(&mut self, name: &str, value: &str) {
        self.cookies.retain(|(k, _)| k != name);
        self.cookies.push((name.to_owned(), value.to_owned()));
    }
}

impl Dash {
    /// GET `path` as `browser` (cookies updated, CSRF token remembered).
    pub async fn get(&self, browser: &mut Browser, path: &str) -> Page {
        let res =
            self.http.get(self.app.url(path)).header("cookie", browser.cookie_header()).send().await.expect("request");
        self.read(browser, res).await
    }

    /// POST a form with the browser's CSRF token.
    pub async fn post(&self, browser: &mut Browser, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = browser.csrf.clone();
        let mut fields: Vec<(&str, &str)> = form.to_vec();
        fields.push(("csrf", &csrf));
        self.post_raw(browser, path, &fields).await
    }

    /// POST exactly these fields (no CSRF token added).
    pub async fn post_raw(&self, browser: &mut Browser, path: &str, form: &[(&str, &str)]) -> Page {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let res = self
            .http
            .post(self.app.url(path))
            .header("cookie", browser.cookie_header())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("request");
        self.read(browser, res).await
    }

    async fn read(&self, browser: &mut Browser, res: reqwest::Response) -> Page {
        let status = res.status();
        let headers = res.headers().clone();
        browser.take_cookies(&headers);
        let body = res.text().await.unwrap_or_default();
        let page = Page { status, headers, body };
        if let Some(csrf) = page.csrf() {
            browser.csrf = csrf;
        }
        page
    }

    /// A browser signed in as `who` (no second factor).
    pub async fn sign_in(&self, who: &'static str) -> Browser {
        let mut b = Browser::default();
        self.get(&mut b, "/dash/login").await.assert_ok();
        let password = self.passwords[who].clone();
        let page = self.post(&mut b, "/dash/login", &[("username", who), ("password", &password)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "sign-in as {who}: {}", page.body);
        self.get(&mut b, "/dash/account").await.assert_ok();
        b
    }
}
