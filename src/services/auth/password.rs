//! Admin passwords: argon2id (the `argon2` crate's defaults: m = 19 MiB, t = 2, p = 1), hashed and checked on
//! the blocking pool; an unknown account costs the same work as a wrong password.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::Rng;
use sqlx::PgPool;

use super::{Auth, Role, random_token};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;
use crate::services::ratelimit::{Limited, RateLimiter};

/// An admin whose password checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRef {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// Sign-in also needs a one-time code (`totp::verify`) before the admin is in.
    pub totp_enabled: bool,
}

/// The first step of every sign-in (API and dashboard): throttled per client IP and per account (each attempt
/// counts, whatever happens next), then the password of an enabled admin. Issues nothing: the caller asks for
/// the second factor when `totp_enabled`, then signs the admin in. Unknown accounts and wrong passwords are
/// both `Unauthorized`, and cost the same work.
pub async fn check_password(
    pool: &PgPool,
    auth: &Auth,
    limiter: &RateLimiter,
    username: &str,
    password: &str,
    ip: Option<&str>,
) -> AppResult<AdminRef> {
    let s = auth.settings();
    let window = Duration::from_secs(s.login_window_secs.max(1));
    let limited = |l: Limited| AppError::RateLimited { retry_after_secs: l.retry_after.as_secs().max(1) };
    limiter.hit(&format!("login:ip:{}", ip.unwrap_or("-")), s.login_max_per_ip, window).await.map_err(limited)?;
    let account = username.trim().to_lowercase();
    limiter.hit(&format!("login:user:{account}"), s.login_max_per_account, window).await.map_err(limited)?;

    let found = if username.len() <= 64 { db::admins::credentials(pool, username).await? } else { None };
    let hash = found.as_ref().filter(|a| a.disabled_at.is_none()).and_then(|a| a.password_hash.clone());
    let ok = password.len() <= 1024 && verify_password(password.to_owned(), hash).await;
    let Some(admin) = found.filter(|_| ok) else {
        tracing::info!(username = %username.chars().take(64).collect::<String>(), ip = ip.unwrap_or("-"), "admin sign-in refused");
        return Err(AppError::Unauthorized);
    };
    let totp_enabled = db::admin_totp::state(pool, admin.id).await?.is_some_and(|t| t.enabled_at.is_some());
    Ok(AdminRef {
        id: admin.id,
        username: admin.username,
        role: admin.role.parse().unwrap_or(Role::Viewer),
        totp_enabled,
    })
}

/// A new random password for an admin (shown once).
pub fn generate_password() -> String {
    random_token(18)
}

/// Hashes a password with argon2id (on the blocking pool).
pub async fn hash_password(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::encode_b64(&rand::rng().random::<[u8; 16]>())
            .map_err(|e| anyhow::anyhow!("making a salt: {e}"))?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .map_err(|e| AppError::Internal(e.into()))?
    .map_err(AppError::Internal)
}

/// Whether `password` matches `hash` (on the blocking pool); a missing or malformed hash never matches, but
/// costs the same work.
pub(super) async fn verify_password(password: String, hash: Option<String>) -> bool {
    // a hash of a random password, so an unknown account takes as long as a wrong password
    static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let salt = SaltString::encode_b64(&rand::rng().random::<[u8; 16]>()).expect("16 bytes make a salt");
        Argon2::default()
            .hash_password(generate_password().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    });
    tokio::task::spawn_blocking(move || {
        let stored = hash.as_deref().unwrap_or(DUMMY.as_str());
        let Ok(parsed) = PasswordHash::new(stored).or_else(|_| PasswordHash::new(DUMMY.as_str())) else { return false };
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        ok && hash.is_some()
    })
    .await
    .unwrap_or(false)
}

fn check_password_rules(password: &str) -> AppResult<()> {
    let n = password.chars().count();
    if !(12..=256).contains(&n) {
        return Err(AppError::field("password", "a password is 12 to 256 characters"));
    }
    Ok(())
}

/// Whether an admin has a password (can sign in to the API).
pub async fn has_password(pool: &PgPool, username: &str) -> AppResult<bool> {
    Ok(db::admins::credentials(pool, username).await?.is_some_and(|a| a.password_hash.is_some()))
}

/// Gives an admin a password (a generated one when `password` is None) and ends their sessions; returns it.
pub async fn set_password(pool: &PgPool, username: &str, password: Option<String>) -> AppResult<String> {
    let password = match password {
        Some(p) => {
            check_password_rules(&p)?;
            p
        }
        None => generate_password(),
    };
    let admin = db::admins::credentials(pool, username).await?.ok_or(AppError::NotFound("admin"))?;
    let hash = hash_password(password.clone()).await?;
    let mut tx = pool.begin().await?;
    db::admins::set_password(&mut *tx, admin.id, &hash).await?;
    db::admin_sessions::revoke_admin(&mut *tx, admin.id).await?;
    Who::cli().record(&mut tx, "admin.password", "admin", admin.id, serde_json::json!({})).await?;
    tx.commit().await?;
    Ok(password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery".into(), Some(hash.clone())).await);
        assert!(!verify_password("wrong horse battery".into(), Some(hash)).await);
        assert!(!verify_password("anything".into(), None).await);
    }
}
