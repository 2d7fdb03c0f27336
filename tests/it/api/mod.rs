//! The admin REST API, driven over HTTP against the real app (Postgres, Redis) with admins and keys made here.

mod auth;
mod broadcasts;
mod contract;
pub mod money;
mod resources;
mod totp;

use reqwest::{Method, StatusCode};
use serde_json::Value;
use sqlx::PgPool;

use crate::helpers::{TestApp, spawn_app_with};
use vpnshop::config::Settings;
use vpnshop::services::auth::{self as auth_svc, Scope};
use vpnshop::services::users;

/// The app with an owner (`owner`, signed in), a viewer, and a write and a read key.
pub struct Api {
    pub app: TestApp,
    /// An owner's access token.
    pub owner: String,
    pub owner_password: String,
    pub write_key: String,
    pub read_key: String,
}

/// An answer: status and JSON body (Null when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Value,
    pub content_type: String,
}

pub async fn api(pool: PgPool) -> Api {
    api_with(pool, |_| {}).await
}

pub async fn api_with(pool: PgPool, customize: impl FnOnce(&mut Settings)) -> Api {
    let app = spawn_app_with(pool, |s| {
        // tests make many calls from one address
        s.security.api_rate_limit_per_second = 10_000.0;
        s.security.api_rate_limit_burst = 10_000;
        s.security.login_max_per_ip = 1_000;
        s.security.login_max_per_account = 1_000;
        // rate-limit windows of its own in the shared Redis
        s.redis.prefix = format!("t{}", uuid::Uuid::new_v4().simple());
        customize(s);
    })
    .await;
    let pool = &app.state.pool;
    users::add_admin(pool, "owner", None, "owner").await.unwrap();
    let owner_password = auth_svc::set_password(pool, "owner", None).await.unwrap();
    let write_key =
        auth_svc::create_key(pool, "tests (write)", Scope::Write, Some("owner"), &vpnshop::services::audit::Who::cli())
            .await
            .unwrap()
            .key;
    let read_key =
        auth_svc::create_key(pool, "tests (read)", Scope::Read, Some("owner"), &vpnshop::services::audit::Who::cli())
            .await
            .unwrap()
            .key;
    let mut api = Api { app, owner: String::new(), owner_password, write_key, read_key };
    let login = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({"username": "owner", "password": api.owner_password})),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{login:?}");
    api.owner = login.body["access_token"].as_str().unwrap().to_owned();
    api
}

impl Api {
    /// Calls `path` with `Authorization: Bearer <token>` (when given) and a JSON body (when given).
    pub async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let mut req = self.app.http.request(method, self.app.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let content_type = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer { status, body, content_type }
    }

    /// GET with the write key.
    pub async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, Some(&self.write_key.clone()), None).await
    }

    /// POST a JSON body with the write key.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(&self.write_key.clone()), Some(body)).await
    }

    /// PATCH a JSON body with the write key.
    pub async fn patch(&self, path: &str, body: Value) -> Answer {
        self.call(Method::PATCH, path, Some(&self.write_key.clone()), Some(body)).await
    }

    /// DELETE with the write key.
    pub async fn delete(&self, path: &str) -> Answer {
        self.call(Method::DELETE, path, Some(&self.write_key.clone()), None).await
    }

    /// Walks every page of a listing (`path` may carry a query already); every item in order.
    pub async fn walk(&self, path: &str, limit: u32) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..100_000 {
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let page = self.get(&url).await;
            assert_eq!(page.status, StatusCode::OK, "{url}: {page:?}");
            items.extend(page.body["items"].as_array().unwrap().iter().cloned());
            match page.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return items,
            }
        }
        panic!("{path} never ended");
    }

    /// Audit entries with this action.
    pub async fn audited(&self, action: &str) -> Vec<(String, Option<String>)> {
        sqlx::query_as("SELECT actor_kind, actor_id FROM audit_log WHERE action = $1 ORDER BY id")
            .bind(action)
            .fetch_all(&self.app.state.pool)
            .await
            .unwrap()
    }

    /// Counts rows of a table (for "nothing written").
    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(&self.app.state.pool)
            .await
            .unwrap()
    }
}

/// Asserts a problem answer: status, `application/problem+json`, and (when given) the field it names.
pub fn assert_problem(a: &Answer, status: u16, field: Option<&str>) {
    assert_eq!(a.status.as_u16(), status, "{a:?}");
    assert!(a.content_type.starts_with("application/problem+json"), "{a:?}");
    assert!(a.body["type"].as_str().is_some_and(|t| t.starts_with("https://")), "{a:?}");
    if let Some(field) = field {
        let names: Vec<&str> = a.body["invalid-params"]
            .as_array()
            .map(|v| v.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(names.contains(&field), "expected a problem naming `{field}`: {a:?}");
    }
}
