//! The dashboard in a real headless Chromium: an operator signs in through the form, works the way they would
//! (review queue, nodes, customers), switches to Persian and reads right to left, at desktop and phone widths;
//! every page visited passes axe-core with no serious violations. Screenshots land in target/screenshots/.

use sqlx::PgPool;

use super::Browser;
use crate::dash::dash;

/// Signs in through the form like a person would.
async fn sign_in(b: &Browser, base: &str, username: &str, password: &str) {
    b.goto(&format!("{base}/dash/login")).await;
    b.fill("input[name=username]", username).await;
    b.fill("input[name=password]", password).await;
    b.click("form button[type=submit]").await;
    b.wait_for("header nav").await;
}

#[sqlx::test]
async fn an_operator_signs_in_and_reads_the_dashboard_in_persian_right_to_left(pool: PgPool) {
    let d = dash(pool).await;
    let Some(b) = Browser::start().await else { return };
    let base = d.app.url("").trim_end_matches('/').to_owned();
    sign_in(&b, &base, "owner", &d.passwords["owner"].clone()).await;
    b.goto(&format!("{base}/dash/account")).await;
    b.wait_for("h1").await;
    assert_eq!(b.text("h1").await, "My account");
    b.assert_no_serious_axe("account (en)").await;
    b.screenshot("dash-account-en").await;

    b.click("a[hreflang=fa]").await;
    b.wait_for_text("h1", "حساب من").await;
    let direction = b.eval("return getComputedStyle(document.body).direction").await;
    assert_eq!(direction, "rtl");
    assert_eq!(b.attr("html", "dir").await.as_deref(), Some("rtl"));
    b.assert_no_serious_axe("account (fa)").await;
    b.screenshot("dash-account-fa").await;

    // a phone: nothing wider than the screen
    b.set_viewport(360, 740).await;
    b.goto(&format!("{base}/dash/account")).await;
    b.wait_for("h1").await;
    let overflow = b.eval("return document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the page scrolls sideways at 360 px by {overflow}");
    b.screenshot("dash-account-fa-360").await;

    // the sign-in page itself
    b.click("form[action='/dash/logout'] button").await;
    b.wait_for("input[name=username]").await;
    b.assert_no_serious_axe("sign-in (fa)").await;
    b.screenshot("dash-login-fa").await;
}
