//! Dashboard sign-ins: a server-side session per browser behind an HttpOnly cookie (only its SHA-256 is stored),
//! with the CSRF token its forms carry. Password (argon2id, throttled per IP and account like the API's sign-in),
//! then the second factor when the admin enrolled one; the session only opens the dashboard once both are done,
//! under a new cookie. Sessions end when idle, at their age limit, on sign-out, and all at once on "sign out
//! everywhere", a password change or the admin's removal.

use chrono::Utc;
use sqlx::PgPool;

use super::{Auth, Role, digest, random_token};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;
use crate::services::ratelimit::RateLimiter;

/// A session ends after this long without a request (the dashboard's live parts keep an open tab signed in).
pub const IDLE_SECS: i64 = 12 * 3600;
/// ... and this long after sign-in whatever happens.
pub const MAX_AGE_DAYS: i64 = 7;
/// A sign-in that owes its second factor must finish within this long.
pub const SECOND_FACTOR_SECS: i64 = 300;

const ACTIVE: &str = "active";
const SECOND_FACTOR: &str = "second_factor";

/// The admin behind a dashboard request.
#[derive(Debug, Clone, PartialEq)]
pub struct DashSession {
    pub id: i64,
    pub admin_id: i64,
    pub username: String,
    pub role: Role,
    pub csrf_token: String,
    /// False while the second factor is still owed.
    pub active: bool,
}

impl DashSession {
    pub fn can_write(&self) -> bool {
        self.role != Role::Viewer
    }

    pub fn who(&self, ip: Option<String>) -> Who {
        Who { kind: "admin", id: Some(self.admin_id.to_string()), name: self.username.clone(), ip }
    }
}

/// A new sign-in: the cookie value (shown once) and whether the second factor is still owed.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub cookie: String,
    pub needs_second_factor: bool,
}

/// Where a request comes from, for throttling and the session list.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// Checks the password (throttled) and opens a session: active, or waiting for the second factor.
pub async fn sign_in(
    pool: &PgPool,
    auth: &Auth,
    limiter: &RateLimiter,
    username: &str,
    password: &str,
    origin: &Origin,
) -> AppResult<SignedIn> {
    let admin = super::check_password(pool, auth, limiter, username, password, origin.ip.as_deref()).await?;
    let cookie = format!("ds_{}", random_token(32));
    let (stage, expires) = if admin.totp_enabled {
        (SECOND_FACTOR, Utc::now() + chrono::Duration::seconds(SECOND_FACTOR_SECS))
    } else {
        (ACTIVE, Utc::now() + chrono::Duration::days(MAX_AGE_DAYS))
    };
    let agent = origin.user_agent.as_deref().map(|a| a.chars().take(200).collect::<String>());
    let mut tx = pool.begin().await?;
    db::dash_sessions::insert(
        &mut *tx,
        admin.id,
        &digest(&cookie),
        &random_token(24),
        stage,
        expires,
        origin.ip.as_deref(),
        agent.as_deref(),
    )
    .await?;
    if !admin.totp_enabled {
        let who = Who { kind: "admin", id: Some(admin.id.to_string()), name: admin.username, ip: origin.ip.clone() };
        who.record(&mut tx, "auth.dashboard_sign_in", "admin", admin.id, serde_json::json!({})).await?;
    }
    tx.commit().await?;
    Ok(SignedIn { cookie, needs_second_factor: admin.totp_enabled })
}

/// Finishes a sign-in that owes its second factor: a right code (or an unused recovery code) makes the session
/// active under a new cookie; a wrong one counts against the sign-in throttle.
pub async fn second_factor(
    pool: &PgPool,
    auth: &Auth,
    limiter: &RateLimiter,
    session: &DashSession,
    code: &str,
    origin: &Origin,
) -> AppResult<String> {
    if session.active {
        return Err(AppError::Conflict("this session is already signed in".into()));
    }
    throttle(auth, limiter, &session.username, origin.ip.as_deref()).await?;
    if !super::totp::verify(pool, session.admin_id, code).await? {
        return Err(AppError::field("code", "the code is not right (or was already used)"));
    }
    let cookie = format!("ds_{}", random_token(32));
    let mut tx = pool.begin().await?;
    let expires = Utc::now() + chrono::Duration::days(MAX_AGE_DAYS);
    if !db::dash_sessions::promote(&mut *tx, session.id, &digest(&cookie), expires).await? {
        return Err(AppError::Unauthorized);
    }
    session
        .who(origin.ip.clone())
        .record(
            &mut tx,
            "auth.dashboard_sign_in",
            "admin",
            session.admin_id,
            serde_json::json!({"second_factor": true}),
        )
        .await?;
    tx.commit().await?;
    Ok(cookie)
}

/// Counts a second-factor attempt against the same per-IP and per-account windows as passwords.
async fn throttle(auth: &Auth, limiter: &RateLimiter, username: &str, ip: Option<&str>) -> AppResult<()> {
    let s = auth.settings();
    let window = std::time::Duration::from_secs(s.login_window_secs.max(1));
    let limited = |l: crate::services::ratelimit::Limited| AppError::RateLimited {
        retry_after_secs: l.retry_after.as_secs().max(1),
    };
    limiter.hit(&format!("login:ip:{}", ip.unwrap_or("-")), s.login_max_per_ip, window).await.map_err(limited)?;
    let account = username.trim().to_lowercase();
    limiter.hit(&format!("login:user:{account}"), s.login_max_per_account, window).await.map_err(limited)?;
    Ok(())
}

/// The session of a cookie, if it is live (idle and age limits, admin enabled); seen now.
pub async fn session(pool: &PgPool, cookie: &str) -> AppResult<Option<DashSession>> {
    if cookie.len() > 100 || !cookie.starts_with("ds_") {
        return Ok(None);
    }
    let Some(row) = db::dash_sessions::live_by_hash(pool, &digest(cookie), IDLE_SECS).await? else {
        return Ok(None);
    };
    if Utc::now() - row.last_seen_at > chrono::Duration::seconds(60) {
        db::dash_sessions::touch(pool, row.id).await?;
    }
    Ok(Some(DashSession {
        id: row.id,
        admin_id: row.admin_id,
        username: row.username,
        role: row.role.parse().unwrap_or(Role::Viewer),
        csrf_token: row.csrf_token,
        active: row.stage == ACTIVE,
    }))
}

/// Signs this browser out.
pub async fn sign_out(pool: &PgPool, session: &DashSession, ip: Option<String>) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    db::dash_sessions::revoke(&mut *tx, session.id).await?;
    session.who(ip).record(&mut tx, "auth.logout", "admin", session.admin_id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(())
}

/// Signs the admin out of every browser and every API session, and voids their access tokens.
pub async fn sign_out_everywhere(pool: &PgPool, session: &DashSession, ip: Option<String>) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    db::dash_sessions::revoke_admin(&mut *tx, session.admin_id).await?;
    db::admin_sessions::revoke_admin(&mut *tx, session.admin_id).await?;
    db::admins::end_tokens(&mut *tx, session.admin_id).await?;
    let detail = serde_json::json!({ "everywhere": true });
    session.who(ip).record(&mut tx, "auth.logout", "admin", session.admin_id, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Ends one of the admin's other sessions.
pub async fn revoke_session(pool: &PgPool, session: &DashSession, id: i64, ip: Option<String>) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    if !db::dash_sessions::revoke_own(&mut *tx, session.admin_id, id).await? {
        return Err(AppError::NotFound("session"));
    }
    let detail = serde_json::json!({ "session": id });
    session.who(ip).record(&mut tx, "auth.session_revoked", "admin", session.admin_id, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// The admin's open sessions, newest first.
pub async fn open_sessions(pool: &PgPool, admin_id: i64) -> AppResult<Vec<db::dash_sessions::SessionInfo>> {
    Ok(db::dash_sessions::open_for_admin(pool, admin_id).await?)
}
