//! Who may use the admin API, and as what.
//!
//! - **Passwords**: argon2id, checked on the blocking pool; an unknown username costs the same work as a wrong
//!   password (`password.rs`).
//! - **Access tokens**: JWTs signed with HS256 and `security.jwt_secret`; `alg` is pinned (a token naming any
//!   other algorithm, `none` included, is refused), and issuer, audience, expiry and not-before are checked. The
//!   admin must still be enabled, and the token issued after their `tokens_valid_after` (sign out everywhere).
//! - **Refresh tokens**: random, stored as SHA-256, one use each: using one gives a new pair; using a retired
//!   one again (a stolen copy racing its owner) revokes the whole family.
//! - **API keys**: `vpnshop_<prefix>_<secret>`, random, stored as SHA-256, one scope (`read` or `write`),
//!   revocable, shown once.
//! - **Sign-in throttling**: per client IP and per account, in Redis when configured (every instance shares it).
//! - **Second factor**: optional TOTP per admin, with one-use recovery codes (`totp.rs`); sign-in then needs a code.

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use crate::config::SecuritySettings;
use crate::db;
use crate::error::{AppError, AppResult};
use crate::services::audit::Who;
use crate::services::ratelimit::RateLimiter;

pub mod dash;
mod keys;
mod password;
pub mod totp;

pub use keys::{NewKey, create_key, keys, revoke_key};
pub use password::{AdminRef, check_password, generate_password, has_password, hash_password, set_password};

pub const ISSUER: &str = "vpnshop";
pub const AUDIENCE: &str = "vpnshop-admin-api";
const KEY_PREFIX: &str = "vpnshop_";

crate::text_enum! {
    /// What an API key may do.
    pub enum Scope {
        /// Read every resource; change nothing.
        Read => "read",
        /// Read and change.
        Write => "write",
    }
}

crate::text_enum! {
    /// An admin account's role.
    pub enum Role {
        /// Everything, including other admins and API keys.
        Owner => "owner",
        /// Everything the shop runs on: payments, plans, servers, customers, broadcasts.
        Admin => "admin",
        /// Sees everything, changes nothing.
        Viewer => "viewer",
    }
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin { id: i64, username: String, role: Role },
    ApiKey { id: i64, prefix: String, scope: Scope, admin_id: Option<i64> },
}

impl Principal {
    /// Whether this caller may change things.
    pub fn can_write(&self) -> bool {
        match self {
            Principal::Admin { role, .. } => *role != Role::Viewer,
            Principal::ApiKey { scope, .. } => *scope == Scope::Write,
        }
    }

    /// For the audit log: `admin` or `api_key`.
    pub fn actor_kind(&self) -> &'static str {
        match self {
            Principal::Admin { .. } => "admin",
            Principal::ApiKey { .. } => "api_key",
        }
    }

    /// For the audit log: the admin's or the key's id.
    pub fn actor_id(&self) -> String {
        match self {
            Principal::Admin { id, .. } | Principal::ApiKey { id, .. } => id.to_string(),
        }
    }

    /// As people read it: `alice`, `key vpnshop_ab12cd34`.
    pub fn display(&self) -> String {
        match self {
            Principal::Admin { username, .. } => username.clone(),
            Principal::ApiKey { prefix, .. } => format!("key {KEY_PREFIX}{prefix}"),
        }
    }

    /// The admin account behind this caller, if any (a key may belong to one).
    pub fn admin_id(&self) -> Option<i64> {
        match self {
            Principal::Admin { id, .. } => Some(*id),
            Principal::ApiKey { admin_id, .. } => *admin_id,
        }
    }
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    settings: SecuritySettings,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
    /// Issued at, in milliseconds (finer than `iat`, for sign-out-everywhere in the same second).
    iat_ms: i64,
}

/// A signed-in admin's tokens.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds the access token is good for.
    pub expires_in: u64,
    /// Exchange at `POST /api/v1/auth/refresh` for a new pair; good once.
    pub refresh_token: String,
    pub refresh_expires_at: DateTime<Utc>,
}

impl Auth {
    /// From the settings; without a secret (never in production: the settings refuse it) a random one.
    pub fn new(settings: &SecuritySettings) -> Auth {
        let secret: Vec<u8> = match &settings.jwt_secret {
            Some(s) => s.expose_secret().as_bytes().to_vec(),
            // `app::run` warns that tokens then last until a restart
            None => rand::rng().random::<[u8; 32]>().to_vec(),
        };
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = 5;
        Auth {
            encoding: EncodingKey::from_secret(&secret),
            decoding: DecodingKey::from_secret(&secret),
            validation,
            settings: settings.clone(),
        }
    }

    pub fn settings(&self) -> &SecuritySettings {
        &self.settings
    }

    fn access_token(&self, admin_id: i64) -> AppResult<String> {
        let now = Utc::now();
        let claims = Claims {
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            sub: admin_id.to_string(),
            iat: now.timestamp(),
            nbf: now.timestamp(),
            exp: now.timestamp() + self.settings.access_token_secs as i64,
            jti: Uuid::new_v4().to_string(),
            iat_ms: now.timestamp_millis(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| AppError::Internal(anyhow::anyhow!("signing an access token: {e}")))
    }

    /// The admin id of a valid access token (signature, algorithm, issuer, audience, time).
    fn check_access_token(&self, token: &str) -> Option<(i64, i64)> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Some((data.claims.sub.parse().ok()?, data.claims.iat_ms))
    }
}

/// SHA-256 in hex: how refresh tokens and API keys are stored.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A random URL-safe token of `bytes` random bytes.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine;
    let mut buf = vec![0u8; bytes];
    rand::rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

/// What a sign-in with the right password came to.
#[derive(Debug, Clone)]
pub enum Login {
    Tokens(Tokens),
    /// The admin has two-factor sign-in on and no one-time code was given.
    SecondFactorRequired,
}

/// Signs an admin in: `check_password` (throttled per IP and per account), then, when the admin has TOTP on,
/// the one-time code `otp` (a TOTP code or a recovery code; missing: `Login::SecondFactorRequired`, said only
/// once the password checked out; wrong: `Unauthorized`, like a wrong password); a pair of tokens.
pub async fn login(
    pool: &PgPool,
    auth: &Auth,
    limiter: &RateLimiter,
    username: &str,
    password: &str,
    otp: Option<&str>,
    ip: Option<&str>,
) -> AppResult<Login> {
    let admin = check_password(pool, auth, limiter, username, password, ip).await?;
    let mut detail = serde_json::json!({});
    if admin.totp_enabled {
        let Some(code) = otp else { return Ok(Login::SecondFactorRequired) };
        let Some(factor) = totp::check_code(pool, admin.id, code).await? else {
            tracing::info!(admin_id = admin.id, ip = ip.unwrap_or("-"), "admin sign-in refused: wrong one-time code");
            return Err(AppError::Unauthorized);
        };
        detail = serde_json::json!({ "second_factor": factor });
    }
    let mut tx = pool.begin().await?;
    let tokens = issue(&mut tx, auth, admin.id, Uuid::new_v4(), ip).await?;
    let who =
        Who { kind: "admin", id: Some(admin.id.to_string()), name: admin.username.clone(), ip: ip.map(str::to_owned) };
    who.record(&mut tx, "auth.login", "admin", admin.id, detail).await?;
    tx.commit().await?;
    Ok(Login::Tokens(tokens))
}

async fn issue(
    tx: &mut sqlx::PgConnection,
    auth: &Auth,
    admin_id: i64,
    family: Uuid,
    ip: Option<&str>,
) -> AppResult<Tokens> {
    let refresh = format!("rt_{}", random_token(32));
    let refresh_expires_at = Utc::now() + chrono::Duration::days(i64::from(auth.settings().refresh_token_days));
    db::admin_sessions::insert(&mut *tx, admin_id, family, &digest(&refresh), refresh_expires_at, ip).await?;
    Ok(Tokens {
        access_token: auth.access_token(admin_id)?,
        token_type: "Bearer",
        expires_in: auth.settings().access_token_secs,
        refresh_token: refresh,
        refresh_expires_at,
    })
}

/// Exchanges a refresh token for a new pair (the old one is spent). A spent or revoked token is refused, and
/// a spent one used again revokes its family.
pub async fn refresh(pool: &PgPool, auth: &Auth, refresh_token: &str, ip: Option<&str>) -> AppResult<Tokens> {
    if refresh_token.len() > 200 {
        return Err(AppError::Unauthorized);
    }
    let mut tx = pool.begin().await?;
    let Some(session) = db::admin_sessions::lock_by_hash(&mut *tx, &digest(refresh_token)).await? else {
        return Err(AppError::Unauthorized);
    };
    if session.revoked_at.is_some() || session.expires_at <= Utc::now() {
        return Err(AppError::Unauthorized);
    }
    if session.used_at.is_some() {
        db::admin_sessions::revoke_family(&mut *tx, session.family).await?;
        tx.commit().await?;
        tracing::warn!(admin_id = session.admin_id, "a spent refresh token was used again: the session is revoked");
        return Err(AppError::Unauthorized);
    }
    if db::admins::active_by_id(&mut *tx, session.admin_id).await?.is_none() {
        return Err(AppError::Unauthorized);
    }
    db::admin_sessions::mark_used(&mut *tx, session.id).await?;
    let tokens = issue(&mut tx, auth, session.admin_id, session.family, ip).await?;
    tx.commit().await?;
    Ok(tokens)
}

/// Signs out: the refresh token's family is revoked; with `everywhere`, every session of the admin and every
/// access token issued so far.
pub async fn logout(
    pool: &PgPool,
    who: &Principal,
    ip: Option<String>,
    refresh_token: Option<&str>,
    everywhere: bool,
) -> AppResult<()> {
    let Principal::Admin { id, .. } = who else {
        return Err(AppError::invalid("API keys do not sign out; revoke the key instead"));
    };
    let mut tx = pool.begin().await?;
    if let Some(token) = refresh_token
        && let Some(session) = db::admin_sessions::lock_by_hash(&mut *tx, &digest(token)).await?
        && session.admin_id == *id
    {
        db::admin_sessions::revoke_family(&mut *tx, session.family).await?;
    }
    if everywhere {
        db::admin_sessions::revoke_admin(&mut *tx, *id).await?;
        db::admins::end_tokens(&mut *tx, *id).await?;
    }
    let detail = serde_json::json!({ "everywhere": everywhere });
    Who::of(who, ip).record(&mut tx, "auth.logout", "admin", id, detail).await?;
    tx.commit().await?;
    Ok(())
}

/// Who a bearer credential (an access token or an API key) belongs to; None when it is not valid now.
pub async fn authenticate(pool: &PgPool, auth: &Auth, bearer: &str) -> AppResult<Option<Principal>> {
    if bearer.len() > 4096 {
        return Ok(None);
    }
    if let Some(rest) = bearer.strip_prefix(KEY_PREFIX) {
        let Some((prefix, _)) = rest.split_once('_') else { return Ok(None) };
        let Some(key) = db::api_keys::active_by_hash(pool, &digest(bearer)).await? else { return Ok(None) };
        debug_assert_eq!(key.prefix, prefix);
        if key.last_used_at.is_none_or(|at| Utc::now() - at > chrono::Duration::seconds(60)) {
            db::api_keys::touch(pool, key.id).await?;
        }
        let mut scope = key.scope.parse().unwrap_or(Scope::Read);
        // a key never does more than the admin it belongs to may do now
        if let Some(admin_id) = key.admin_id {
            match db::admins::active_by_id(pool, admin_id).await? {
                None => return Ok(None),
                Some((admin, _)) if admin.role.parse::<Role>().unwrap_or(Role::Viewer) == Role::Viewer => {
                    scope = Scope::Read;
                }
                Some(_) => {}
            }
        }
        return Ok(Some(Principal::ApiKey { id: key.id, prefix: key.prefix, scope, admin_id: key.admin_id }));
    }
    let Some((admin_id, issued_ms)) = auth.check_access_token(bearer) else { return Ok(None) };
    let Some((admin, valid_after)) = db::admins::active_by_id(pool, admin_id).await? else { return Ok(None) };
    if issued_ms <= valid_after.timestamp_millis() {
        return Ok(None);
    }
    let role = admin.role.parse().unwrap_or(Role::Viewer);
    Ok(Some(Principal::Admin { id: admin.id, username: admin.username, role }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SecuritySettings {
        SecuritySettings {
            jwt_secret: Some("0123456789abcdef0123456789abcdef".to_owned().into()),
            access_token_secs: 60,
            refresh_token_days: 1,
            login_max_per_ip: 5,
            login_max_per_account: 5,
            login_window_secs: 60,
            api_rate_limit_per_second: 1.0,
            api_rate_limit_burst: 1,
        }
    }

    #[test]
    fn a_token_round_trips_and_a_tampered_one_does_not() {
        let auth = Auth::new(&settings());
        let token = auth.access_token(7).unwrap();
        assert_eq!(auth.check_access_token(&token).map(|t| t.0), Some(7));
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(auth.check_access_token(&tampered), None);
        let other = Auth::new(&SecuritySettings { jwt_secret: Some("x".repeat(32).into()), ..settings() });
        assert_eq!(other.check_access_token(&token), None, "another secret");
    }

    #[test]
    fn alg_none_and_other_audiences_are_refused() {
        use base64::Engine;
        let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let now = Utc::now().timestamp();
        let claims = serde_json::json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "1", "iat": now, "nbf": now,
            "exp": now + 60, "jti": "x", "iat_ms": now * 1000});
        let none = format!("{}.{}.", b64(serde_json::json!({"alg": "none", "typ": "JWT"})), b64(claims.clone()));
        let auth = Auth::new(&settings());
        assert_eq!(auth.check_access_token(&none), None);
        let mut other_aud = claims;
        other_aud["aud"] = "someone-else".into();
        let signed = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &other_aud, &auth.encoding).unwrap();
        assert_eq!(auth.check_access_token(&signed), None);
    }
}
