//! The dashboard behind a load balancer without sticky sessions: the sign-in form from one instance is posted to
//! another (its CSRF token is double-submitted in a cookie, so no instance has to remember it), and the session
//! that opens is good on every instance (it lives in the database).

use reqwest::StatusCode;
use reqwest::redirect::Policy;
use sqlx::PgPool;

/// A `name=value` cookie pair from a response's `Set-Cookie` headers.
fn cookie(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {:?}", res.headers()))
        .to_owned()
}

/// Signs in through instance `first`'s form posted to `second`, then reads a page from each instance.
pub async fn sign_in_across(pool: &PgPool, first: u16, second: u16) {
    vpnshop::services::users::add_admin(pool, "operator", None, "owner").await.unwrap();
    let password = vpnshop::services::auth::set_password(pool, "operator", None).await.unwrap();
    let http = reqwest::Client::builder().redirect(Policy::none()).build().unwrap();
    let url = |port: u16, path: &str| format!("http://127.0.0.1:{port}{path}");

    let form = http.get(url(first, "/dash/login")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let pre = cookie(&form, "vpnshop_pre");
    let body = form.text().await.unwrap();
    let csrf = regex::Regex::new(r#"name="csrf" value="([^"]+)""#).unwrap().captures(&body).expect("a CSRF token")[1]
        .to_owned();
    let fields = [("username", "operator"), ("password", password.as_str()), ("csrf", csrf.as_str())];
    let signed = http.post(url(second, "/dash/login")).header("cookie", &pre).form(&fields).send().await.unwrap();
    assert_eq!(signed.status(), StatusCode::SEE_OTHER, "the other instance takes the first one's form");
    let session = cookie(&signed, "vpnshop_dash");
    for port in [first, second] {
        let page = http.get(url(port, "/dash/account")).header("cookie", &session).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "the session is good on every instance");
    }
}
