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

/// Sets a form control's value the way a person picking from a list would (selects included).
async fn choose(b: &Browser, css: &str, value: &str) {
    let js = format!(
        "const e = document.querySelector({css:?}); e.value = {value:?}; e.dispatchEvent(new Event('change')); return e.value"
    );
    assert_eq!(b.eval(&js).await, value, "{css} has no option {value}");
}

#[sqlx::test]
async fn an_operator_adds_a_node_approves_a_receipt_and_finds_the_customer(pool: PgPool) {
    if !crate::support::node_tools_present() {
        return;
    }
    let node = crate::support::TestNode::start().await;
    let key = node.key_path();
    let d = crate::dash::dash_with(pool.clone(), |s| s.provision.ssh_key_path = Some(key)).await;
    let Some(b) = Browser::start().await else { return };
    let base = d.app.url("").trim_end_matches('/').to_owned();
    let payment = crate::api::money::under_review(&pool, 7100, 1).await[0];
    let (order, location): (i64, String) = sqlx::query_as(
        "SELECT o.id, p.location_code FROM payments y JOIN orders o ON o.id = y.order_id JOIN plans p ON p.id = o.plan_id
         WHERE y.id = $1",
    )
    .bind(payment)
    .fetch_one(&pool)
    .await
    .unwrap();
    sign_in(&b, &base, "editor", &d.passwords["editor"].clone()).await;

    // a node, added through the form with the checks `vpnshop server add` makes
    b.goto(&format!("{base}/dash/nodes/new")).await;
    b.wait_for("form[action='/dash/nodes']").await;
    b.assert_no_serious_axe("add a node").await;
    let target = node.target();
    b.fill("#f-name", "browser-node").await;
    choose(&b, "#f-location", &location).await;
    b.fill("#f-public_host", "127.0.0.1").await;
    b.fill("#f-public_port", &node.proxy_port.to_string()).await;
    b.fill("#f-capacity", "50").await;
    b.fill("#f-host_key", &node.host_fingerprint).await;
    b.fill("#f-ssh_host", "127.0.0.1").await;
    b.fill("#f-ssh_port", &node.ssh_port.to_string()).await;
    b.fill("#f-ssh_user", &target.ssh_user).await;
    b.fill("#f-api_port", &node.api_port.to_string()).await;
    b.fill("#f-inbound_tag", &target.inbounds[0].tag).await;
    b.fill("#f-config_path", &target.config_path).await;
    // the node runs the isolated base (as setup.sh leaves it), and the shop is given the same: its first sync
    // has nothing to restart (the dashboard only takes `systemctl restart <unit>`, which this node has not)
    std::fs::write(node.config_path(), node.isolated_base_config()).unwrap();
    choose(&b, "#f-base_config", &node.isolated_base_config()).await;
    // (the restart command stays the default: the dashboard, like the API, takes only `systemctl restart <unit>`)
    b.screenshot("dash-node-add").await;
    b.click("form[action='/dash/nodes'] button[type=submit]").await;
    b.wait_for_text("main", "browser-node").await;
    let server: i64 =
        sqlx::query_scalar("SELECT id FROM servers WHERE name = 'browser-node'").fetch_one(&pool).await.unwrap();
    b.screenshot("dash-node-added").await;

    // the receipt, accepted from the queue: the customer's subscription goes live on that node
    b.goto(&format!("{base}/dash/review")).await;
    let accept = format!("form[action='/dash/review/{payment}/accept'] button");
    b.wait_for(&accept).await;
    b.assert_no_serious_axe("review queue").await;
    b.screenshot("dash-review").await;
    b.click(&accept).await;
    let sub = wait_for_subscription(&pool, order).await;
    crate::provisioning::wait_status(&pool, sub, vpnshop::domain::status::SubscriptionStatus::Active).await;
    let on: i64 = sqlx::query_scalar("SELECT server_id FROM subscriptions WHERE id = $1")
        .bind(sub)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(on, server);
    b.goto(&format!("{base}/dash/subscriptions/{sub}")).await;
    b.wait_for("h1").await;
    let text = b.text("main").await;
    assert!(text.to_lowercase().contains("active"), "the subscription page says active: {text}");
    b.assert_no_serious_axe("subscription").await;
    b.screenshot("dash-subscription-active").await;

    // the customer, found by username
    b.goto(&format!("{base}/dash/customers")).await;
    b.fill("input[name=q]", "@C7100").await;
    b.click("form[role=search] button").await;
    let user: i64 =
        sqlx::query_scalar("SELECT user_id FROM orders WHERE id = $1").bind(order).fetch_one(&pool).await.unwrap();
    b.wait_for(&format!("a[href='/dash/customers/{user}']")).await;
    b.assert_no_serious_axe("customers").await;
    b.screenshot("dash-customers-search").await;

    // the overview at phone width, in Persian
    b.set_viewport(360, 740).await;
    b.goto(&format!("{base}/dash/language?to=fa&back=%2Fdash")).await;
    b.wait_for("h1").await;
    assert_eq!(b.eval("return getComputedStyle(document.body).direction").await, "rtl");
    let overflow = b.eval("return document.documentElement.scrollWidth - window.innerWidth").await;
    assert!(overflow.as_i64().unwrap_or(1) <= 0, "the overview scrolls sideways at 360 px by {overflow}");
    b.assert_no_serious_axe("overview (fa, 360 px)").await;
    b.screenshot("dash-overview-fa-360").await;
    b.set_viewport(1280, 900).await;
    b.goto(&format!("{base}/dash/language?to=en&back=%2Fdash")).await;
    b.wait_for("h1").await;
    b.assert_no_serious_axe("overview").await;
    b.screenshot("dash-overview-en").await;
}

async fn wait_for_subscription(pool: &PgPool, order: i64) -> i64 {
    for _ in 0..200 {
        let sub: Option<i64> = sqlx::query_scalar("SELECT id FROM subscriptions WHERE order_id = $1")
            .bind(order)
            .fetch_optional(pool)
            .await
            .unwrap();
        if let Some(sub) = sub {
            return sub;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("accepting the receipt made no subscription for order {order}");
}
