//! The overview page (`/dash`): it renders for every role in every language, and its figures, charts and table
//! are the numbers of the data made here (money exact and in the reader's format, one series per currency).

use reqwest::StatusCode;
use sqlx::PgPool;
use vpnshop::services::servers;

use super::{Browser, dash};
use crate::api::money::{active_subscription, plan_id};
use crate::helpers::server_input;

/// A figure's card as the page writes it.
fn stat(value: &str, label: &str) -> String {
    format!(r#"<div class="value">{value}</div><div class="label">{label}</div>"#)
}

#[sqlx::test]
async fn the_overview_renders_for_every_role_in_every_language(pool: PgPool) {
    let d = dash(pool).await;
    let mut anon = Browser::default();
    let page = d.get(&mut anon, "/dash").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), Some("/dash/login?next=%2Fdash"));
    for who in ["owner", "editor", "viewer"] {
        let mut b = d.sign_in(who).await;
        for lang in ["en", "fa", "ru"] {
            b.set_cookie("vpnshop_lang", lang);
            let page = d.get(&mut b, "/dash").await;
            page.assert_ok();
            let body = &page.body;
            assert!(body.contains(&format!(r#"lang="{lang}""#)), "{who}/{lang}");
            assert_eq!(body.contains(r#"dir="rtl""#), lang == "fa", "{who}/{lang}");
            assert!(!body.contains(" style=") && !body.contains("<script>"), "{who}/{lang}: no inline style or script");
            // orders and new customers are charted even on an empty shop
            assert_eq!(body.matches(r#"<svg class="chart""#).count(), 2, "{who}/{lang}");
            assert!(body.contains(r#"role="img""#), "{who}/{lang}");
            assert!(
                !body.contains("dash-overview-") && !body.contains("dash-nodes-"),
                "{who}/{lang}: every key has a text"
            );
            assert!(body.len() < 100_000, "{who}/{lang}: {} bytes", body.len());
        }
    }
}

#[sqlx::test]
async fn the_overview_shows_the_money_orders_customers_conversion_reviews_and_nodes_of_the_data(pool: PgPool) {
    let d = dash(pool.clone()).await;
    let plan = plan_id(&pool).await;
    // customers 1 and 2 took a trial today; 1 then paid (USD), 3 paid in EUR and in IRR, 2 waits for a review
    sqlx::query(
        "INSERT INTO users (telegram_id, trial_used_at)
         VALUES (1, now() - interval '1 minute'), (2, now() - interval '1 minute'), (3, NULL)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let paid = [
        (1, "card", "accepted", 1250, "USD"),
        (3, "stripe", "succeeded", 550, "EUR"),
        (3, "zarinpal", "succeeded", 1_250_000, "IRR"),
    ];
    for (tg, method, status, amount, currency) in paid {
        sqlx::query(
            "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, paid_at)
                        SELECT id, $2, $3, $4, 'fulfilled', now() FROM users WHERE telegram_id = $1 RETURNING id)
             INSERT INTO payments (order_id, method, status, amount_minor, currency, decided_at) SELECT id, $5, $6, $3, $4, now() FROM o",
        )
        .bind(tg)
        .bind(plan)
        .bind(amount)
        .bind(currency)
        .bind(method)
        .bind(status)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "WITH o AS (INSERT INTO orders (user_id, plan_id, amount_minor, currency, status)
                    SELECT id, $1, 999, 'USD', 'awaiting_payment' FROM users WHERE telegram_id = 2 RETURNING id)
         INSERT INTO payments (order_id, method, status, amount_minor, currency) SELECT id, 'card', 'under_review', 999, 'USD' FROM o",
    )
    .bind(plan)
    .execute(&pool)
    .await
    .unwrap();
    // one active subscription (its node is up, with its 2 devices) and a second node that is down
    let (_, up) = active_subscription(&pool, 70_000, "active", None).await;
    let down = servers::add(&pool, &server_input("de-2", "de"), servers::Actor::CLI).await.unwrap().id;
    sqlx::query("UPDATE servers SET health = CASE WHEN id = $1 THEN 'ok' ELSE 'down' END, last_seen_at = now()")
        .bind(up)
        .execute(&pool)
        .await
        .unwrap();
    let customers: i64 = sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&pool).await.unwrap();
    assert_eq!(customers, 4, "three made here and the subscription's");

    let mut b = d.sign_in("viewer").await;
    let page = d.get(&mut b, "/dash").await;
    page.assert_ok();
    let body = &page.body;
    for (value, label) in [
        ("$12.50", "Revenue (USD)"),
        ("€5.50", "Revenue (EUR)"),
        ("125,000 Toman", "Revenue (IRR)"),
        ("3", "Orders paid"),
        ("4", "New customers"),
        ("1 of 2 (50%)", "Trials that turned into a paid order"),
        ("1", "Active subscriptions"),
        ("1 / 1", "Nodes up / down"),
    ] {
        assert!(body.contains(&stat(value, label)), "{label} = {value}:\n{body}");
    }
    assert!(
        body.contains(
            r#"<div class="value">1</div><div class="label"><a href="/dash/review">Payments waiting for review</a>"#
        ),
        "{body}"
    );
    // one revenue chart per currency, summarised for screen readers, plus orders and customers
    assert_eq!(body.matches(r#"<svg class="chart""#).count(), 5, "{body}");
    for summary in [
        "Money taken per day over the last 30 days: $12.50 in total, at most $12.50 on one day.",
        "Money taken per day over the last 30 days: €5.50 in total, at most €5.50 on one day.",
        "Orders paid per day over the last 30 days: 3 in total, at most 3 on one day.",
        "New customers per day over the last 30 days: 4 in total, at most 4 on one day.",
    ] {
        assert!(body.contains(&format!(r#"aria-label="{summary}""#)), "{summary}\n{body}");
        assert!(body.contains(&format!("<title>{summary}</title>")), "{summary}");
    }
    // the table beside the charts: today's row
    let today = chrono::Utc::now().date_naive().format("%Y-%m-%d").to_string();
    let row = format!(
        r#"<th scope="row">{today}</th><td class="num">$12.50</td><td class="num">€5.50</td><td class="num">125,000 Toman</td><td class="num">3</td><td class="num">4</td>"#
    );
    assert!(body.contains(&row), "{row}\n{body}");
    // the nodes with their health and load
    assert!(body.contains(&format!(r#"<a href="/dash/nodes/{up}">node-70000</a>"#)), "{body}");
    assert!(body.contains(&format!(r#"<a href="/dash/nodes/{down}">de-2</a>"#)), "{body}");
    assert!(
        body.contains(r#"<span class="badge ok">up</span>"#)
            && body.contains(r#"<span class="badge error">down</span>"#)
    );
    assert!(body.contains("2 of 100 clients (2%)"), "{body}");

    // in Persian: Persian digits, Toman, the Persian percent sign
    b.set_cookie("vpnshop_lang", "fa");
    let fa = d.get(&mut b, "/dash").await;
    fa.assert_ok();
    for text in ["۱۲٫۵۰ دلار", "۵٫۵۰ یورو", "۱۲۵٬۰۰۰ تومان", "۱ از ۲ (۵۰٪)"] {
        assert!(fa.body.contains(text), "{text}\n{}", fa.body);
    }
    b.set_cookie("vpnshop_lang", "ru");
    let ru = d.get(&mut b, "/dash").await;
    assert!(ru.body.contains("12,50\u{a0}$") && ru.body.contains("1 из 2 (50 %)"), "{}", ru.body);
}
