//! Every dashboard page, for every role and language, over a shop with data in it: it renders (never a 500), in
//! the language and direction asked for, under 100 KB, with no inline script or style (the CSP would block them),
//! every input labelled; a viewer's pages offer no change (only their own sign-out and account forms).

use reqwest::StatusCode;
use sqlx::PgPool;

use super::{Browser, dash};
use crate::api::money::{active_subscription, under_review};

/// The pages anyone signed in may open, with the ids of the rows `seed` made.
fn pages(sub: i64, server: i64, user: i64, payment: i64, order: i64, plan: i64) -> Vec<String> {
    let mut p: Vec<String> = [
        "/dash",
        "/dash/review",
        "/dash/review/items",
        "/dash/customers",
        "/dash/customers?q=4242",
        "/dash/subscriptions",
        "/dash/subscriptions?status=active",
        "/dash/orders",
        "/dash/payments",
        "/dash/nodes",
        "/dash/plans",
        "/dash/broadcasts",
        "/dash/audit",
        "/dash/account",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    p.push(format!("/dash/subscriptions/{sub}"));
    p.push(format!("/dash/nodes/{server}"));
    p.push(format!("/dash/customers/{user}"));
    p.push(format!("/dash/plans/{plan}"));
    let _ = (payment, order);
    p
}

/// Whether `html` opens `<tag` with anything but `allowed` attributes present.
fn inline_script_or_style(html: &str) -> Option<String> {
    if html.contains(" style=") || html.contains("<style") {
        return Some("inline style".into());
    }
    for part in html.split("<script").skip(1) {
        let tag = part.split('>').next().unwrap_or("");
        if !tag.contains("src=") {
            return Some(format!("inline script <script{tag}>"));
        }
    }
    for handler in [" onclick=", " onload=", " onsubmit=", " onchange=", "javascript:"] {
        if html.contains(handler) {
            return Some(format!("inline handler {handler}"));
        }
    }
    None
}

/// Visible inputs without a label around them or an aria-label (a coarse check; axe does the real one in Chromium).
fn unlabelled_inputs(html: &str) -> Vec<String> {
    let re = regex::Regex::new(r"<(input|select|textarea)\b[^>]*>").unwrap();
    let id = regex::Regex::new(r#"\bid="([^"]+)""#).unwrap();
    let mut out = Vec::new();
    for m in re.find_iter(html) {
        let tag = m.as_str();
        if tag.contains(r#"type="hidden""#) || tag.contains("aria-label=") || tag.contains(r#"type="submit""#) {
            continue;
        }
        let before = &html[..m.start()];
        let open = before.rfind("<label").unwrap_or(0);
        let close = before.rfind("</label>").unwrap_or(0);
        let has_id_label = id.captures(tag).is_some_and(|c| html.contains(&format!(r#"for="{}""#, &c[1])));
        let inside_label = open > close && before.contains("<label");
        if !inside_label && !has_id_label {
            out.push(tag.to_owned());
        }
    }
    out
}

#[sqlx::test]
async fn every_page_renders_for_every_role_and_language_within_budget(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let (sub, server) = active_subscription(&pool, 4242, "active", Some(10 << 30)).await;
    let payment = under_review(&pool, 5000, 2).await[0];
    let user: i64 =
        sqlx::query_scalar("SELECT user_id FROM subscriptions WHERE id = $1").bind(sub).fetch_one(&pool).await.unwrap();
    let order: i64 =
        sqlx::query_scalar("SELECT order_id FROM payments WHERE id = $1").bind(payment).fetch_one(&pool).await.unwrap();
    let plan: i64 =
        sqlx::query_scalar("SELECT plan_id FROM orders WHERE id = $1").bind(order).fetch_one(&pool).await.unwrap();
    let pages = pages(sub, server, user, payment, order, plan);
    let forms = regex::Regex::new(r#"<form[^>]*method="post"[^>]*action="([^"]+)""#).unwrap();
    for who in ["owner", "editor", "viewer"] {
        let mut b: Browser = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            for path in &pages {
                let page = d.get(&mut b, path).await;
                let at = format!("{path} as {who} in {lang}");
                assert_eq!(page.status, StatusCode::OK, "{at}: {}", &page.body[..page.body.len().min(2000)]);
                assert!(page.body.len() < 100_000, "{at} is {} bytes", page.body.len());
                if let Some(bad) = inline_script_or_style(&page.body) {
                    panic!("{at} has {bad}");
                }
                let unlabelled = unlabelled_inputs(&page.body);
                assert!(unlabelled.is_empty(), "{at} has unlabelled inputs: {unlabelled:?}");
                if path.ends_with("/items") {
                    continue; // a fragment for htmx, not a page
                }
                let dir = if lang == "fa" { "rtl" } else { "ltr" };
                assert!(page.body.contains(&format!(r#"<html lang="{lang}" dir="{dir}">"#)), "{at}");
                assert!(page.body.contains("<h1>"), "{at} has a heading");
                if who == "viewer" {
                    let changes: Vec<String> = forms
                        .captures_iter(&page.body)
                        .map(|c| c[1].to_owned())
                        .filter(|a| a != "/dash/logout" && !a.starts_with("/dash/account"))
                        .collect();
                    assert!(changes.is_empty(), "{at} offers a viewer changes: {changes:?}");
                }
            }
        }
    }
}

#[sqlx::test]
async fn every_navigation_link_leads_to_a_page(pool: PgPool) {
    let d = dash(pool).await;
    let mut b = d.sign_in("owner").await;
    let page = d.get(&mut b, "/dash").await;
    page.assert_ok();
    let nav = page.body.split("<nav").nth(1).unwrap().split("</nav>").next().unwrap().to_owned();
    let links: Vec<String> =
        regex::Regex::new(r#"href="([^"]+)""#).unwrap().captures_iter(&nav).map(|c| c[1].to_owned()).collect();
    assert_eq!(links.len(), 10, "{links:?}");
    for link in links {
        d.get(&mut b, &link).await.assert_ok();
    }
}

#[sqlx::test]
async fn unknown_pages_and_ids_are_not_found_pages_not_errors(pool: PgPool) {
    let d = dash(pool).await;
    let mut b = d.sign_in("owner").await;
    for path in ["/dash/subscriptions/999999", "/dash/nodes/999999", "/dash/customers/999999", "/dash/plans/999999"] {
        let page = d.get(&mut b, path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.body.contains("<h1>"), "{path} is a page");
    }
    for path in ["/dash/subscriptions/abc", "/dash/nodes/-1x", "/dash/customers/1e9999"] {
        let page = d.get(&mut b, path).await;
        assert!(matches!(page.status.as_u16(), 404 | 422), "{path}: {}", page.status);
        assert!(page.body.contains("<h1>"), "{path} is a page");
    }
}
