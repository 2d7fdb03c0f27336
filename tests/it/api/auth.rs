//! Who may call the admin API: tokens (signature, algorithm, audience, expiry), keys (scope, revocation),
//! roles, refresh rotation, sign-out, and throttled sign-in.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use super::{Api, api_with, assert_problem};
use vpnshop::services::auth::{self as auth_svc, AUDIENCE, ISSUER, Scope};
use vpnshop::services::users;

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

async fn app(pool: PgPool) -> Api {
    api_with(pool, |s| s.security.jwt_secret = Some(SECRET.to_owned().into())).await
}

fn claims(sub: i64, exp_in: i64, aud: &str) -> serde_json::Value {
    let now = chrono::Utc::now();
    json!({"iss": ISSUER, "aud": aud, "sub": sub.to_string(), "iat": now.timestamp(), "nbf": now.timestamp(),
           "exp": now.timestamp() + exp_in, "jti": "t", "iat_ms": now.timestamp_millis()})
}

fn sign(claims: &serde_json::Value, secret: &str, alg: Algorithm) -> String {
    jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn b64(v: serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

async fn owner_id(api: &Api) -> i64 {
    sqlx::query_scalar("SELECT id FROM admins WHERE username = 'owner'").fetch_one(&api.app.state.pool).await.unwrap()
}

async fn me(api: &Api, token: &str) -> StatusCode {
    api.call(Method::GET, "/api/v1/auth/me", Some(token), None).await.status
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn only_valid_tokens_and_keys_get_in(pool: PgPool) {
    let api = app(pool).await;
    let id = owner_id(&api).await;

    let none = api.call(Method::GET, "/api/v1/auth/me", None, None).await;
    assert_problem(&none, 401, None);
    assert_eq!(me(&api, &api.owner).await, StatusCode::OK, "a fresh access token");
    assert_eq!(me(&api, &api.read_key).await, StatusCode::OK, "a read key");

    let good = sign(&claims(id, 600, AUDIENCE), SECRET, Algorithm::HS256);
    assert_eq!(me(&api, &good).await, StatusCode::OK, "a token we signed ourselves is fine");
    let expired = sign(&claims(id, -600, AUDIENCE), SECRET, Algorithm::HS256);
    assert_eq!(me(&api, &expired).await, StatusCode::UNAUTHORIZED, "expired");
    let wrong_key = sign(&claims(id, 600, AUDIENCE), "another-secret-0123456789abcdef-0123", Algorithm::HS256);
    assert_eq!(me(&api, &wrong_key).await, StatusCode::UNAUTHORIZED, "wrong signature");
    let other_aud = sign(&claims(id, 600, "someone-else"), SECRET, Algorithm::HS256);
    assert_eq!(me(&api, &other_aud).await, StatusCode::UNAUTHORIZED, "another audience");
    let mut other_iss = claims(id, 600, AUDIENCE);
    other_iss["iss"] = "mallory".into();
    assert_eq!(me(&api, &sign(&other_iss, SECRET, Algorithm::HS256)).await, StatusCode::UNAUTHORIZED, "another issuer");
    let hs512 = sign(&claims(id, 600, AUDIENCE), SECRET, Algorithm::HS512);
    assert_eq!(me(&api, &hs512).await, StatusCode::UNAUTHORIZED, "alg is pinned to HS256");
    let alg_none = format!("{}.{}.", b64(json!({"alg": "none", "typ": "JWT"})), b64(claims(id, 600, AUDIENCE)));
    assert_eq!(me(&api, &alg_none).await, StatusCode::UNAUTHORIZED, "alg none");
    let no_exp = {
        let mut c = claims(id, 600, AUDIENCE);
        c.as_object_mut().unwrap().remove("exp");
        sign(&c, SECRET, Algorithm::HS256)
    };
    assert_eq!(me(&api, &no_exp).await, StatusCode::UNAUTHORIZED, "no expiry");
    let nobody = sign(&claims(id + 1000, 600, AUDIENCE), SECRET, Algorithm::HS256);
    assert_eq!(me(&api, &nobody).await, StatusCode::UNAUTHORIZED, "no such admin");
    for junk in ["", "x", "a.b.c", "vpnshop_", "vpnshop_deadbeef_nope", &"A".repeat(5000)] {
        let a = api.call(Method::GET, "/api/v1/auth/me", Some(junk), None).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{junk:.20}: {a:?}");
    }
    // a Basic header is not a bearer token
    let basic = api.app.http.get(api.app.url("/api/v1/auth/me")).basic_auth("owner", Some(&api.owner_password)).send();
    assert_eq!(basic.await.unwrap().status(), StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn read_keys_and_viewers_cannot_change_anything_and_revoked_keys_stop(pool: PgPool) {
    let api = app(pool).await;
    let before = api.count("api_keys").await;
    let refused = api
        .call(Method::POST, "/api/v1/api-keys", Some(&api.read_key), Some(json!({"name": "x", "scope": "write"})))
        .await;
    assert_problem(&refused, 403, None);
    assert_eq!(api.count("api_keys").await, before, "nothing written");

    users::add_admin(&api.app.state.pool, "watcher", None, "viewer").await.unwrap();
    let pw = auth_svc::set_password(&api.app.state.pool, "watcher", None).await.unwrap();
    let login =
        api.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "watcher", "password": pw}))).await;
    let viewer = login.body["access_token"].as_str().unwrap().to_owned();
    let who = api.call(Method::GET, "/api/v1/auth/me", Some(&viewer), None).await;
    assert_eq!(who.body["role"], "viewer");
    assert_eq!(who.body["can_write"], false);
    let refused =
        api.call(Method::POST, "/api/v1/api-keys", Some(&viewer), Some(json!({"name": "x", "scope": "read"}))).await;
    assert_problem(&refused, 403, None);

    // the owner makes a key (shown once), it works, then is revoked and stops at once
    let made = api
        .call(Method::POST, "/api/v1/api-keys", Some(&api.owner), Some(json!({"name": "ci", "scope": "write"})))
        .await;
    assert_eq!(made.status, StatusCode::CREATED, "{made:?}");
    let key = made.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("vpnshop_"));
    assert_eq!(me(&api, &key).await, StatusCode::OK);
    let listed = api.call(Method::GET, "/api/v1/api-keys", Some(&api.owner), None).await;
    assert!(!listed.body.to_string().contains(&key), "listings never show a key");
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT key_hash FROM api_keys").fetch_all(&api.app.state.pool).await.unwrap();
    assert!(stored.iter().all(|h| !key.contains(h.as_str()) && h.len() == 64), "only hashes are kept");
    let id = made.body["id"].as_i64().unwrap();
    let revoked = api.call(Method::DELETE, &format!("/api/v1/api-keys/{id}"), Some(&api.owner), None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{revoked:?}");
    assert_eq!(me(&api, &key).await, StatusCode::UNAUTHORIZED, "a revoked key");
    assert_eq!(api.audited("api_key.revoke").await, vec![("admin".to_owned(), Some(owner_id(&api).await.to_string()))]);

    // a viewer cannot be given a write key
    let pool = &api.app.state.pool;
    let cli = vpnshop::services::audit::Who::cli();
    let refused = auth_svc::create_key(pool, "ops", Scope::Write, Some("watcher"), &cli).await.unwrap_err();
    assert!(refused.to_string().contains("scope"), "{refused}");
    let watch_key = auth_svc::create_key(pool, "watch", Scope::Read, Some("watcher"), &cli).await.unwrap().key;
    assert_eq!(me(&api, &watch_key).await, StatusCode::OK);

    // an admin's write key does no more than the admin may do now
    users::add_admin(pool, "ops", None, "admin").await.unwrap();
    let ops = auth_svc::create_key(pool, "ops", Scope::Write, Some("ops"), &cli).await.unwrap().key;
    let api = &api;
    let ban = |key: String| async move {
        let body = json!({"reason": "test"});
        api.call(Method::POST, "/api/v1/users/999999/ban", Some(&key), Some(body)).await.status
    };
    assert_eq!(ban(ops.clone()).await, StatusCode::NOT_FOUND, "a writer gets as far as the missing customer");
    users::add_admin(pool, "ops", None, "viewer").await.unwrap();
    assert_eq!(ban(ops.clone()).await, StatusCode::FORBIDDEN, "demoted to viewer: the key only reads");

    // a removed admin's tokens and keys stop at once, and adding them again brings none back
    users::remove_admin(pool, "watcher").await.unwrap();
    users::remove_admin(pool, "ops").await.unwrap();
    assert_eq!(me(api, &viewer).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(api, &watch_key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(api, &ops).await, StatusCode::UNAUTHORIZED);
    users::add_admin(pool, "watcher", None, "viewer").await.unwrap();
    users::add_admin(pool, "ops", None, "admin").await.unwrap();
    assert_eq!(me(api, &viewer).await, StatusCode::UNAUTHORIZED, "old tokens stay dead");
    assert_eq!(me(api, &watch_key).await, StatusCode::UNAUTHORIZED, "old keys stay revoked");
    assert_eq!(me(api, &ops).await, StatusCode::UNAUTHORIZED);
    assert_eq!(api.audited("admin.remove").await.len(), 2);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session(pool: PgPool) {
    let api = app(pool).await;
    let login = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "owner", "password": api.owner_password})),
        )
        .await;
    let first = login.body["refresh_token"].as_str().unwrap().to_owned();
    let next = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_eq!(next.status, StatusCode::OK, "{next:?}");
    let second = next.body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(first, second);
    assert_eq!(me(&api, next.body["access_token"].as_str().unwrap()).await, StatusCode::OK);
    // the spent token again (a stolen copy): refused, and the whole family ends
    let replay = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": first}))).await;
    assert_problem(&replay, 401, None);
    let after = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": second}))).await;
    assert_problem(&after, 401, None);
    let junk = api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": "rt_nope"}))).await;
    assert_problem(&junk, 401, None);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn signing_out_everywhere_ends_every_token(pool: PgPool) {
    let api = app(pool).await;
    let other = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "owner", "password": api.owner_password})),
        )
        .await;
    let other_access = other.body["access_token"].as_str().unwrap().to_owned();
    let other_refresh = other.body["refresh_token"].as_str().unwrap().to_owned();
    let out = api.call(Method::POST, "/api/v1/auth/logout", Some(&api.owner), Some(json!({"everywhere": true}))).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{out:?}");
    assert_eq!(api.audited("auth.logout").await.len(), 1);
    assert_eq!(me(&api, &api.owner).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&api, &other_access).await, StatusCode::UNAUTHORIZED);
    let refreshed =
        api.call(Method::POST, "/api/v1/auth/refresh", None, Some(json!({"refresh_token": other_refresh}))).await;
    assert_eq!(refreshed.status, StatusCode::UNAUTHORIZED);
    // signing in again works
    let again = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "owner", "password": api.owner_password})),
        )
        .await;
    assert_eq!(me(&api, again.body["access_token"].as_str().unwrap()).await, StatusCode::OK);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn sign_in_brute_force_is_throttled_per_account_and_per_address(pool: PgPool) {
    let api = api_with(pool, |s| {
        s.security.jwt_secret = Some(SECRET.to_owned().into());
        s.security.login_max_per_account = 5;
        s.security.login_max_per_ip = 12;
    })
    .await;
    let login = |user: &str, pw: &str| {
        let body = json!({"username": user, "password": pw});
        api.call(Method::POST, "/api/v1/auth/login", None, Some(body))
    };
    // the harness signed in once already
    for i in 0..4 {
        let a = login("owner", &format!("wrong-{i}")).await;
        assert_problem(&a, 401, None);
    }
    let limited = login("owner", "wrong-again").await;
    assert_problem(&limited, 429, None);
    let right = login("owner", &api.owner_password).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS, "the account is throttled even for the right password");
    // spraying other accounts from the same address runs into the per-address limit
    let mut statuses = Vec::new();
    for i in 0..10 {
        statuses.push(login(&format!("user{i}"), "guess").await.status);
    }
    assert!(statuses.contains(&StatusCode::TOO_MANY_REQUESTS), "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::UNAUTHORIZED || *s == StatusCode::TOO_MANY_REQUESTS));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn unknown_accounts_and_wrong_passwords_look_the_same(pool: PgPool) {
    let api = app(pool).await;
    let wrong = api
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "owner", "password": "nope"})))
        .await;
    let unknown = api
        .call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "ghost", "password": "nope"})))
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body, unknown.body);
    let extra = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "owner", "password": "x", "admin": true})),
        )
        .await;
    assert_problem(&extra, 422, Some("admin"));
    let missing = api.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": "owner"}))).await;
    assert_problem(&missing, 422, Some("password"));
    let typed = api.call(Method::POST, "/api/v1/auth/login", None, Some(json!({"username": 5, "password": "x"}))).await;
    assert_problem(&typed, 422, Some("username"));
}
