//! Signing in to the dashboard: sessions in cookies, CSRF on every change, throttling, the second factor, signing
//! out (here and everywhere), security headers and the language switch.

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{Browser, dash, dash_with};

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn code_at(secret: &str, unix: u64) -> String {
    let bytes = totp_rs::Secret::try_from_base32(secret).unwrap().as_bytes().to_vec();
    totp_rs::Builder::new().with_secret(bytes).build().unwrap().generate(unix).to_string()
}

#[sqlx::test]
async fn signing_in_opens_the_dashboard_with_a_strict_cookie_and_signing_out_closes_it(pool: PgPool) {
    let d = dash(pool).await;
    let mut anon = Browser::default();
    let page = d.get(&mut anon, "/dash/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/dash/login?next=%2Fdash%2Faccount"));

    let mut b = Browser::default();
    d.get(&mut b, "/dash/login?next=%2Fdash%2Faccount").await.assert_ok();
    let password = d.passwords["owner"].clone();
    let page = d
        .post(&mut b, "/dash/login", &[("username", "owner"), ("password", &password), ("next", "/dash/account")])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), Some("/dash/account"));
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("vpnshop_dash="))
        .unwrap();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/dash"] {
        assert!(cookie.contains(attr), "{cookie} lacks {attr}");
    }
    assert!(!cookie.contains("Secure"), "plain-http test server: no Secure flag ({cookie})");
    let account = d.get(&mut b, "/dash/account").await;
    account.assert_ok();
    assert!(account.body.contains("owner"));

    let out = d.post(&mut b, "/dash/logout", &[]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(d.get(&mut b, "/dash/account").await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn the_session_cookie_is_secure_behind_https(pool: PgPool) {
    let d = dash_with(pool, |s| s.http.public_url = Some("https://shop.example/".parse().unwrap())).await;
    let mut b = Browser::default();
    d.get(&mut b, "/dash/login").await.assert_ok();
    let password = d.passwords["owner"].clone();
    let page = d.post(&mut b, "/dash/login", &[("username", "owner"), ("password", &password)]).await;
    let cookie = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("vpnshop_dash="))
        .unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
}

#[sqlx::test]
async fn sign_in_only_follows_next_inside_the_dashboard(pool: PgPool) {
    let d = dash(pool).await;
    let password = d.passwords["owner"].clone();
    for next in ["https://evil.example/", "//evil.example/dash", "/dash/../api", "/\\evil.example"] {
        let mut b = Browser::default();
        d.get(&mut b, "/dash/login").await.assert_ok();
        let page =
            d.post(&mut b, "/dash/login", &[("username", "owner"), ("password", &password), ("next", next)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        let to = page.location().unwrap();
        assert!(to == "/dash" || (to.starts_with("/dash/") && !to.contains("//")), "{next} led to {to}");
        assert!(!to.contains("evil"), "{next} led to {to}");
    }
}

#[sqlx::test]
async fn a_wrong_password_is_refused_and_sign_in_is_throttled_per_account(pool: PgPool) {
    let d = dash_with(pool, |s| s.security.login_max_per_account = 3).await;
    let mut b = Browser::default();
    d.get(&mut b, "/dash/login").await.assert_ok();
    for _ in 0..3 {
        let page = d.post(&mut b, "/dash/login", &[("username", "owner"), ("password", "wrong password")]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("Wrong username or password"));
    }
    let password = d.passwords["owner"].clone();
    let page = d.post(&mut b, "/dash/login", &[("username", "owner"), ("password", &password)]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS, "the right password waits out the window too");
    assert!(page.headers.contains_key("retry-after"));
    assert!(!b.cookies.iter().any(|(k, _)| k == "vpnshop_dash"));
    // another account is not held up by this one's window
    let mut other = Browser::default();
    d.get(&mut other, "/dash/login").await.assert_ok();
    let password = d.passwords["editor"].clone();
    let page = d.post(&mut other, "/dash/login", &[("username", "editor"), ("password", &password)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn sign_in_is_throttled_per_address(pool: PgPool) {
    let d = dash_with(pool, |s| s.security.login_max_per_ip = 4).await;
    let mut b = Browser::default();
    d.get(&mut b, "/dash/login").await.assert_ok();
    for who in ["a", "b", "c", "d"] {
        let page = d.post(&mut b, "/dash/login", &[("username", who), ("password", "x")]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    let password = d.passwords["owner"].clone();
    let page = d.post(&mut b, "/dash/login", &[("username", "owner"), ("password", &password)]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
}

#[sqlx::test]
async fn every_change_needs_this_sessions_csrf_token(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut b = d.sign_in("owner").await;
    let other = d.sign_in("editor").await;
    let path = "/dash/account/sign-out-everywhere";
    let missing = d.post_raw(&mut b, path, &[]).await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    assert!(missing.body.contains("expired"), "{}", missing.body);
    let forged = d.post_raw(&mut b, path, &[("csrf", "forged-token")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let borrowed = d.post_raw(&mut b, path, &[("csrf", &other.csrf)]).await;
    assert_eq!(borrowed.status, StatusCode::FORBIDDEN, "another session's token is not this one's");
    let empty = d.post_raw(&mut b, path, &[("csrf", "")]).await;
    assert_eq!(empty.status, StatusCode::FORBIDDEN);
    // the right token, but the request comes from another site
    let res = d
        .http
        .post(d.app.url(path))
        .header("cookie", format!("vpnshop_dash={}", b.cookies.iter().find(|(k, _)| k == "vpnshop_dash").unwrap().1))
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={}", b.csrf))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // nothing happened: still signed in
    d.get(&mut b, "/dash/account").await.assert_ok();
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.logout'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audit, 0);
    // the right token works
    let done = d.post(&mut b, path, &[]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn the_sign_in_form_needs_its_own_token_too(pool: PgPool) {
    let d = dash(pool).await;
    let password = d.passwords["owner"].clone();
    let mut b = Browser::default();
    // no form was loaded: no token cookie
    let page =
        d.post_raw(&mut b, "/dash/login", &[("username", "owner"), ("password", &password), ("csrf", "x")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    d.get(&mut b, "/dash/login").await.assert_ok();
    let page =
        d.post_raw(&mut b, "/dash/login", &[("username", "owner"), ("password", &password), ("csrf", "x")]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
}

#[sqlx::test]
async fn pages_carry_strict_security_headers_and_assets_are_cached(pool: PgPool) {
    let d = dash(pool).await;
    let mut b = d.sign_in("owner").await;
    let page = d.get(&mut b, "/dash/account").await;
    let h = |name: &str| page.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let csp = h("content-security-policy");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"), "{csp}");
    assert_eq!(h("referrer-policy"), "no-referrer");
    assert_eq!(h("x-frame-options"), "DENY");
    assert_eq!(h("cache-control"), "no-store");
    assert!(!page.body.contains("<script>") && !page.body.contains(" style="), "no inline script or style");
    let re = regex::Regex::new(r#"href="(/dash/static/app\.css\?v=[0-9a-f]+)""#).unwrap();
    let css = re.captures(&page.body).unwrap()[1].to_owned();
    let res = d.http.get(d.app.url(&css)).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    let js = regex::Regex::new(r#"src="(/dash/static/htmx\.min\.js\?v=[0-9a-f]+)""#).unwrap();
    let js = js.captures(&page.body).unwrap()[1].to_owned();
    assert_eq!(d.http.get(d.app.url(&js)).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(d.http.get(d.app.url("/dash/static/nope.js")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
}

#[sqlx::test]
async fn persian_pages_read_right_to_left_and_the_switch_stays_on_this_site(pool: PgPool) {
    let d = dash(pool).await;
    let mut b = d.sign_in("owner").await;
    let page = d.get(&mut b, "/dash/language?to=fa&back=%2Fdash%2Faccount").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/dash/account"));
    let page = d.get(&mut b, "/dash/account").await;
    page.assert_ok();
    assert!(page.body.contains(r#"<html lang="fa" dir="rtl">"#), "{}", &page.body[..300]);
    assert!(page.body.contains("حساب من"));
    let page = d.get(&mut b, "/dash/language?to=ru&back=https%3A%2F%2Fevil.example").await;
    assert_eq!(page.location(), Some("/dash"));
    let page = d.get(&mut b, "/dash/language?to=xx").await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    // before sign-in too, from the Accept-Language header
    let res = d.http.get(d.app.url("/dash/login")).header("accept-language", "ru-RU,ru;q=0.9").send().await.unwrap();
    assert!(res.text().await.unwrap().contains(r#"<html lang="ru" dir="ltr">"#));
}

#[sqlx::test]
async fn two_factor_enrolment_then_sign_in_needs_the_code(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut b = d.sign_in("owner").await;
    let page = d.post(&mut b, "/dash/account/totp/begin", &[]).await;
    page.assert_ok();
    assert!(page.body.contains("<svg"), "a QR code is shown");
    let secret = regex::Regex::new(r"<code>([A-Z2-7]+)</code>").unwrap().captures(&page.body).unwrap()[1].to_owned();
    let wrong = d.post(&mut b, "/dash/account/totp/confirm", &[("code", "000000x")]).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.body.contains("code"), "the field is named");
    let page = d.post(&mut b, "/dash/account/totp/confirm", &[("code", &code_at(&secret, unix_now()))]).await;
    page.assert_ok();
    let recovery: Vec<String> = regex::Regex::new(r"<li>([a-z0-9-]{8,})</li>")
        .unwrap()
        .captures_iter(&page.body)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(recovery.len(), 10, "{}", page.body);
    d.post(&mut b, "/dash/logout", &[]).await;

    // password alone is not enough now
    let mut b = Browser::default();
    d.get(&mut b, "/dash/login").await.assert_ok();
    let password = d.passwords["owner"].clone();
    let page = d.post(&mut b, "/dash/login", &[("username", "owner"), ("password", &password)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.location().unwrap().starts_with("/dash/login/code"));
    let halfway = d.get(&mut b, "/dash/account").await;
    assert_eq!(halfway.status, StatusCode::SEE_OTHER, "nothing opens before the code");
    assert_eq!(halfway.location(), Some("/dash/login/code"));
    let pending_cookie = b.cookies.iter().find(|(k, _)| k == "vpnshop_dash").unwrap().1.clone();
    d.get(&mut b, "/dash/login/code").await.assert_ok();
    let wrong = d.post(&mut b, "/dash/login/code", &[("code", "12345")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let page = d.post(&mut b, "/dash/login/code", &[("code", &recovery[0])]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    d.get(&mut b, "/dash/account").await.assert_ok();
    // the pre-code cookie was replaced and no longer opens anything
    let mut stale = Browser::default();
    stale.set_cookie("vpnshop_dash", &pending_cookie);
    assert_eq!(d.get(&mut stale, "/dash/account").await.status, StatusCode::SEE_OTHER);

    // a recovery code is good once
    let mut again = Browser::default();
    d.get(&mut again, "/dash/login").await.assert_ok();
    d.post(&mut again, "/dash/login", &[("username", "owner"), ("password", &password)]).await;
    d.get(&mut again, "/dash/login/code").await.assert_ok();
    let reused = d.post(&mut again, "/dash/login/code", &[("code", &recovery[0])]).await;
    assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
    let audit: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'auth.totp_enabled'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audit, 1);
}

#[sqlx::test]
async fn sign_out_everywhere_ends_every_browser_and_api_token(pool: PgPool) {
    let d = dash(pool).await;
    let mut one = d.sign_in("owner").await;
    let mut two = d.sign_in("owner").await;
    let mut editor = d.sign_in("editor").await;
    let password = d.passwords["owner"].clone();
    let login: serde_json::Value = d
        .http
        .post(d.app.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "owner", "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    let page = d.post(&mut one, "/dash/account/sign-out-everywhere", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(d.get(&mut one, "/dash/account").await.status, StatusCode::SEE_OTHER);
    assert_eq!(d.get(&mut two, "/dash/account").await.status, StatusCode::SEE_OTHER);
    let api = d.http.get(d.app.url("/api/v1/stats")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    d.get(&mut editor, "/dash/account").await.assert_ok();
}

#[sqlx::test]
async fn one_session_can_be_ended_from_another_and_a_removed_admin_is_signed_out(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let mut one = d.sign_in("owner").await;
    let mut two = d.sign_in("owner").await;
    let page = d.get(&mut one, "/dash/account").await;
    let ids: Vec<String> = regex::Regex::new(r#"/dash/account/sessions/(\d+)/revoke"#)
        .unwrap()
        .captures_iter(&page.body)
        .map(|c| c[1].to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "the other session, not this one: {ids:?}");
    let page = d.post(&mut one, &format!("/dash/account/sessions/{}/revoke", ids[0]), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(d.get(&mut two, "/dash/account").await.status, StatusCode::SEE_OTHER);
    d.get(&mut one, "/dash/account").await.assert_ok();
    // someone else's session is not ours to end
    let mut editor = d.sign_in("editor").await;
    let editor_id: i64 = sqlx::query_scalar(
        "SELECT s.id FROM dash_sessions s JOIN admins a ON a.id = s.admin_id WHERE a.username = 'editor'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let page = d.post(&mut one, &format!("/dash/account/sessions/{editor_id}/revoke"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    d.get(&mut editor, "/dash/account").await.assert_ok();
    // removing the admin ends their browser sessions
    vpnshop::services::users::remove_admin(&pool, "editor").await.unwrap();
    assert_eq!(d.get(&mut editor, "/dash/account").await.status, StatusCode::SEE_OTHER);
}

#[sqlx::test]
async fn only_a_hash_of_the_cookie_is_stored(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let b = d.sign_in("owner").await;
    let cookie = b.cookies.iter().find(|(k, _)| k == "vpnshop_dash").unwrap().1.clone();
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM dash_sessions").fetch_all(&pool).await.unwrap();
    assert!(!stored.is_empty());
    assert!(stored.iter().all(|h| h != &cookie && h.len() == 64));
}
