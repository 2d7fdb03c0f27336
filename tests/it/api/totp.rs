//! Two-factor sign-in (TOTP + recovery codes): enrolment, the API sign-in asking for `otp` only after a right
//! password, each code working once (also under concurrent use), recovery codes stored hashed, and turning it off.

use reqwest::{Method, StatusCode};
use serde_json::json;
use sqlx::PgPool;

use super::{Answer, Api, api, api_with, assert_problem};
use vpnshop::error::AppError;
use vpnshop::services::audit::Who;
use vpnshop::services::auth::{digest, totp};

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

/// The code an authenticator app with `secret` shows at `unix` seconds.
fn code_at(secret: &str, unix: u64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap().as_bytes().to_vec();
    totp_rs::Builder::new().with_secret(bytes).build().unwrap().generate(unix).to_string()
}

/// A six-digit code that matches none of the steps around now.
fn wrong_code(secret: &str) -> String {
    let now = unix_now();
    let near: Vec<String> = (0..5).map(|i| code_at(secret, now - 60 + i * 30)).collect();
    (0..10).map(|i| format!("00000{i}")).find(|c| !near.contains(c)).unwrap()
}

async fn owner_id(api: &Api) -> i64 {
    sqlx::query_scalar("SELECT id FROM admins WHERE username = 'owner'").fetch_one(&api.app.state.pool).await.unwrap()
}

async fn login(api: &Api, password: &str, otp: Option<&str>) -> Answer {
    let mut body = json!({"username": "owner", "password": password});
    if let Some(otp) = otp {
        body["otp"] = otp.into();
    }
    api.call(Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

/// Enrols the owner (confirmed with the current code); the secret and the recovery codes.
async fn enrol(api: &Api) -> (String, Vec<String>) {
    let pool = &api.app.state.pool;
    let id = owner_id(api).await;
    let enrolment = totp::begin_enrolment(pool, id, "vpnshop test").await.unwrap();
    let codes =
        totp::confirm_enrolment(pool, &Who::cli(), id, &code_at(&enrolment.secret_base32, unix_now())).await.unwrap();
    (enrolment.secret_base32, codes)
}

fn second_factor_required(a: &Answer) {
    assert_problem(a, 401, None);
    assert_eq!(a.body["title"], "Second Factor Required", "{a:?}");
    assert!(a.body["type"].as_str().unwrap().ends_with("/second-factor-required"), "{a:?}");
    assert!(a.body["detail"].as_str().unwrap().contains("one-time code"), "{a:?}");
}

fn plain_unauthorized(a: &Answer) {
    assert_problem(a, 401, None);
    assert_eq!(a.body["title"], "Unauthorized", "{a:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn enrolment_is_confirmed_by_a_code_from_the_app_and_hands_out_ten_hashed_recovery_codes(pool: PgPool) {
    let api = api(pool).await;
    let pool = &api.app.state.pool;
    let id = owner_id(&api).await;
    let enrolment = totp::begin_enrolment(pool, id, "vpnshop test").await.unwrap();
    assert_eq!(enrolment.secret_base32.len(), 32, "160 bits in base32");
    assert!(enrolment.otpauth_url.starts_with("otpauth://totp/vpnshop%20test:owner?"), "{}", enrolment.otpauth_url);
    assert!(enrolment.qr_svg.starts_with("<svg"));
    assert!(!totp::is_enabled(pool, id).await.unwrap(), "pending until confirmed");

    let wrong = totp::confirm_enrolment(pool, &Who::cli(), id, &wrong_code(&enrolment.secret_base32)).await;
    assert!(matches!(&wrong, Err(AppError::Field { field, .. }) if field == "code"), "{wrong:?}");
    let junk = totp::confirm_enrolment(pool, &Who::cli(), id, "12345x").await;
    assert!(matches!(&junk, Err(AppError::Field { field, .. }) if field == "code"), "{junk:?}");
    assert!(!totp::is_enabled(pool, id).await.unwrap(), "a wrong code leaves it off");
    assert_eq!(login(&api, &api.owner_password, None).await.status, StatusCode::OK, "password alone still works");

    let code = code_at(&enrolment.secret_base32, unix_now());
    let codes = totp::confirm_enrolment(pool, &Who::cli(), id, &code).await.unwrap();
    assert!(totp::is_enabled(pool, id).await.unwrap());
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 12 && c.matches('-').count() == 2), "{codes:?}");
    assert_eq!(totp::remaining_recovery_codes(pool, id).await.unwrap(), 10);
    assert_eq!(api.audited("auth.totp_enabled").await.len(), 1);

    let stored: Vec<String> =
        sqlx::query_scalar("SELECT code_hash FROM admin_recovery_codes WHERE admin_id = $1 ORDER BY id")
            .bind(id)
            .fetch_all(pool)
            .await
            .unwrap();
    assert_eq!(stored.len(), 10);
    for code in &codes {
        let bare = code.replace('-', "");
        assert!(stored.iter().all(|h| !h.contains(&bare) && !h.contains(code.as_str())), "no plaintext stored");
        assert!(stored.contains(&digest(&bare)), "stored as SHA-256");
    }
    let again = totp::begin_enrolment(pool, id, "vpnshop test").await;
    assert!(matches!(again, Err(AppError::Conflict(_))), "already on: {again:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn with_two_factor_on_sign_in_needs_a_code_after_the_password_and_each_code_works_once(pool: PgPool) {
    let api = api(pool).await;
    let (secret, recovery) = enrol(&api).await;

    second_factor_required(&login(&api, &api.owner_password, None).await);
    // a wrong password says nothing about a second factor, with or without a code
    plain_unauthorized(&login(&api, "wrong password", None).await);
    let next = code_at(&secret, unix_now() + 30);
    plain_unauthorized(&login(&api, "wrong password", Some(&next)).await);
    plain_unauthorized(&login(&api, &api.owner_password, Some(&wrong_code(&secret))).await);
    plain_unauthorized(&login(&api, &api.owner_password, Some("not a code")).await);
    plain_unauthorized(&login(&api, &api.owner_password, Some(&"1".repeat(5000))).await);

    // the step confirmed at enrolment is spent; the next one (within the allowed skew) works, once
    let signed_in = login(&api, &api.owner_password, Some(&format!(" {} {} ", &next[..3], &next[3..]))).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{signed_in:?}");
    let access = signed_in.body["access_token"].as_str().unwrap();
    assert_eq!(api.call(Method::GET, "/api/v1/auth/me", Some(access), None).await.status, StatusCode::OK);
    plain_unauthorized(&login(&api, &api.owner_password, Some(&next)).await);

    // a recovery code works once, in any case and without its dashes
    let upper = recovery[0].to_uppercase();
    assert_eq!(login(&api, &api.owner_password, Some(&upper)).await.status, StatusCode::OK);
    plain_unauthorized(&login(&api, &api.owner_password, Some(&recovery[0])).await);
    assert_eq!(login(&api, &api.owner_password, Some(&recovery[1].replace('-', ""))).await.status, StatusCode::OK);
    let id = owner_id(&api).await;
    assert_eq!(totp::remaining_recovery_codes(&api.app.state.pool, id).await.unwrap(), 8);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn one_code_used_twice_at_the_same_moment_lets_only_one_in(pool: PgPool) {
    let api = api(pool).await;
    let (secret, recovery) = enrol(&api).await;
    let (pool, id) = (&api.app.state.pool, owner_id(&api).await);
    let next = code_at(&secret, unix_now() + 30);
    let (a, b) = tokio::join!(totp::verify(pool, id, &next), totp::verify(pool, id, &next));
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|ok| **ok).count(), 1, "one TOTP code, one sign-in");
    let (a, b) = tokio::join!(totp::verify(pool, id, &recovery[2]), totp::verify(pool, id, &recovery[2]));
    assert_eq!([a.unwrap(), b.unwrap()].iter().filter(|ok| **ok).count(), 1, "one recovery code, one sign-in");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn wrong_codes_count_toward_the_sign_in_throttle(pool: PgPool) {
    let api = api_with(pool, |s| s.security.login_max_per_account = 4).await;
    let (secret, _) = enrol(&api).await;
    // the harness signed in once already
    for _ in 0..3 {
        plain_unauthorized(&login(&api, &api.owner_password, Some(&wrong_code(&secret))).await);
    }
    let right = login(&api, &api.owner_password, Some(&code_at(&secret, unix_now() + 30))).await;
    assert_problem(&right, 429, None);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn turning_two_factor_off_restores_password_only_sign_in_and_drops_the_codes(pool: PgPool) {
    let api = api(pool).await;
    let (_, old) = enrol(&api).await;
    let (pool, id) = (&api.app.state.pool, owner_id(&api).await);

    let fresh = totp::regenerate_recovery_codes(pool, &Who::cli(), id).await.unwrap();
    assert_eq!(fresh.len(), 10);
    assert!(!totp::verify(pool, id, &old[0]).await.unwrap(), "old codes stop working");
    assert!(totp::verify(pool, id, &fresh[0]).await.unwrap());
    assert_eq!(api.audited("auth.totp_recovery_codes").await.len(), 1);

    totp::disable(pool, &Who::cli(), id).await.unwrap();
    assert!(!totp::is_enabled(pool, id).await.unwrap());
    assert_eq!(api.audited("auth.totp_disabled").await.len(), 1);
    assert_eq!(api.count("admin_recovery_codes").await, 0);
    assert_eq!(login(&api, &api.owner_password, None).await.status, StatusCode::OK);
    assert!(!totp::verify(pool, id, &fresh[1]).await.unwrap(), "no second factor to pass when off");

    let twice = totp::disable(pool, &Who::cli(), id).await;
    assert!(matches!(twice, Err(AppError::Conflict(_))), "{twice:?}");
    let regen = totp::regenerate_recovery_codes(pool, &Who::cli(), id).await;
    assert!(matches!(regen, Err(AppError::Conflict(_))), "{regen:?}");
}
