//! Sign-in (`/auth/login`, `/auth/refresh`, `/auth/logout`, `/auth/me`) and API keys (`/api-keys`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{Body, Caller, PathOf, Writer, client_ip};
use crate::app::AppState;
use crate::error::{AppError, AppResult};
use crate::http::Problem;
use crate::services::auth::{self, Login, NewKey, Principal, Scope, Tokens};

/// The caller's address, for handlers that have no `Caller` (sign-in).
pub struct Ip(pub Option<String>);

impl axum::extract::FromRequestParts<AppState> for Ip {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        Ok(Ip(client_ip(parts, state)))
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The one-time code of an admin with two-factor sign-in on: the 6 digits of the authenticator app, or one of
    /// the recovery codes (`xxxx-xxxx-xx`). Each works once. Leave it out otherwise.
    #[serde(default)]
    #[schema(example = "123456")]
    pub otp: Option<String>,
}

/// Sign in with an admin's username and password (and `otp`, for an admin with two-factor sign-in on): an
/// access token (a JWT, short-lived) and a refresh token. A right password without a needed `otp` is a 401
/// whose `type` ends in `second-factor-required`; a wrong `otp` is a 401 like a wrong password. Attempts are
/// limited per client address and per account (429 with `Retry-After`).
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", security(()), request_body = LoginRequest,
    responses((status = 200, body = Tokens), (status = 401, body = Problem,
                  description = "Wrong credentials, or (`second-factor-required`) a one-time code is needed"),
              (status = 422, body = Problem), (status = 429, body = Problem)))]
pub async fn login(State(state): State<AppState>, Ip(ip): Ip, Body(req): Body<LoginRequest>) -> AppResult<Response> {
    let (pool, limiter) = (&state.pool, &state.limiter);
    let otp = req.otp.as_deref();
    Ok(match auth::login(pool, &state.auth, limiter, &req.username, &req.password, otp, ip.as_deref()).await? {
        Login::Tokens(tokens) => Json(tokens).into_response(),
        Login::SecondFactorRequired => Problem::new(
            StatusCode::UNAUTHORIZED,
            "Second Factor Required",
            "this account also needs a one-time code: send `otp`, the 6-digit code of its authenticator app (or \
             one of its recovery codes)",
        )
        .into_response(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Exchange a refresh token for a new pair. Each refresh token works once; using one again ends that session.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", security(()), request_body = RefreshRequest,
    responses((status = 200, body = Tokens), (status = 401, body = Problem)))]
pub async fn refresh(
    State(state): State<AppState>,
    Ip(ip): Ip,
    Body(req): Body<RefreshRequest>,
) -> AppResult<Json<Tokens>> {
    Ok(Json(auth::refresh(&state.pool, &state.auth, &req.refresh_token, ip.as_deref()).await?))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// The session's refresh token, to end it.
    pub refresh_token: Option<String>,
    /// End every session of this admin and every access token issued so far.
    #[serde(default)]
    pub everywhere: bool,
}

/// Sign out (an admin's token only).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
    responses((status = 204, description = "Signed out"), (status = 401, body = Problem), (status = 422, body = Problem)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    Body(req): Body<LogoutRequest>,
) -> AppResult<StatusCode> {
    auth::logout(&state.pool, &caller.principal, caller.ip.clone(), req.refresh_token.as_deref(), req.everywhere)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who the caller is.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    /// `admin` or `api_key`
    pub kind: &'static str,
    pub id: i64,
    /// The admin's username, or the key's prefix.
    pub name: String,
    /// `owner`, `admin` or `viewer` (admins only).
    pub role: Option<String>,
    /// `read` or `write` (keys only).
    pub scope: Option<Scope>,
    pub can_write: bool,
}

/// The caller: an admin or an API key, and whether it may change things.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth",
    responses((status = 200, body = Me), (status = 401, body = Problem)))]
pub async fn me(caller: Caller) -> Json<Me> {
    let p = &caller.principal;
    let can_write = p.can_write();
    Json(match p {
        Principal::Admin { id, username, role } => Me {
            kind: "admin",
            id: *id,
            name: username.clone(),
            role: Some(role.as_str().to_owned()),
            scope: None,
            can_write,
        },
        Principal::ApiKey { id, prefix, scope, .. } => {
            Me { kind: "api_key", id: *id, name: prefix.clone(), role: None, scope: Some(*scope), can_write }
        }
    })
}

/// An API key as listed (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The key starts `vpnshop_<prefix>_`.
    pub prefix: String,
    pub scope: String,
    pub admin_id: Option<i64>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<crate::db::api_keys::ApiKeyRow> for ApiKey {
    fn from(r: crate::db::api_keys::ApiKeyRow) -> Self {
        ApiKey {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            scope: r.scope,
            admin_id: r.admin_id,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Only owners manage keys.
fn owner_only(caller: &Caller) -> AppResult<()> {
    match &caller.principal {
        Principal::Admin { role: auth::Role::Owner, .. } => Ok(()),
        _ => Err(AppError::Forbidden),
    }
}

/// Every API key (owners only).
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "auth",
    responses((status = 200, body = Vec<ApiKey>), (status = 401, body = Problem), (status = 403, body = Problem)))]
pub async fn list_keys(State(state): State<AppState>, caller: Caller) -> AppResult<Json<Vec<ApiKey>>> {
    owner_only(&caller)?;
    Ok(Json(auth::keys(&state.pool).await?.into_iter().map(ApiKey::from).collect()))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// What the key is for (1–100 characters).
    pub name: String,
    pub scope: Scope,
}

/// A new API key, shown in this answer only (owners only).
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "auth", request_body = CreateKey,
    responses((status = 201, body = NewKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 422, body = Problem)))]
pub async fn create_key(
    State(state): State<AppState>,
    Writer(caller): Writer,
    Body(req): Body<CreateKey>,
) -> AppResult<(StatusCode, Json<NewKey>)> {
    owner_only(&caller)?;
    let Principal::Admin { username, .. } = &caller.principal else { return Err(AppError::Forbidden) };
    let key = auth::create_key(&state.pool, &req.name, req.scope, Some(username), &caller.who()).await?;
    Ok((StatusCode::CREATED, Json(key)))
}

/// Revoke an API key (owners only): it stops working at once.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "auth", params(("id" = i64, Path, description = "The key's id")),
    responses((status = 200, body = ApiKey), (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Writer(caller): Writer,
    PathOf(id): PathOf<i64>,
) -> AppResult<Json<ApiKey>> {
    owner_only(&caller)?;
    let row = auth::revoke_key(&state.pool, &id.to_string(), &caller.who()).await?;
    Ok(Json(row.into()))
}
