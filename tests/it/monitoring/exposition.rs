//! The real binary's /metrics: the business gauges after a card payment goes from review to acceptance, and
//! every metric the alerts and the dashboard name, after some activity.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::PgPool;
use vpnshop::services::audit::Who;
use vpnshop::services::auth::{Scope, create_key};

use super::{Samples, Shop, rules::dashboard_queries};
use crate::api::money::{active_subscription, under_review};
use crate::helpers::{database_url, manifest_dir, promtool_check, server_input};
use crate::support::{FakeTelegram, TgUser, command_update};

const REVENUE_USD_CARD: &str = r#"vpnshop_revenue_minor_units_total{currency="USD",method="card"}"#;

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_business_gauges_follow_a_card_payment_from_review_to_acceptance(pool: PgPool) {
    let shop = Shop::start(&database_url(&pool), &[]).await;
    // a customer served on node-41000 (never reached: no SSH key here), and a 5.00 USD receipt waiting 5 minutes
    active_subscription(&pool, 41_000, "active", None).await;
    let payment = under_review(&pool, 42_000, 1).await[0];
    sqlx::query("UPDATE payments SET submitted_at = now() - interval '5 minutes' WHERE id = $1")
        .bind(payment)
        .execute(&pool)
        .await
        .unwrap();

    let before = shop.scrape_until("the review waiting", |s| s.get("vpnshop_reviews_waiting") == Some(1.0)).await;
    let age = before.get("vpnshop_review_oldest_age_seconds").unwrap();
    assert!((300.0..600.0).contains(&age), "waiting since 5 minutes: {age}");
    for (series, value) in [
        (r#"vpnshop_open_orders{status="awaiting_payment"}"#, 1.0),
        (r#"vpnshop_subscriptions{status="active"}"#, 1.0),
        (r#"vpnshop_subscriptions{status="pending"}"#, 0.0),
        (r#"vpnshop_node_up{node="node-41000"}"#, 0.0),
        (REVENUE_USD_CARD, 0.0),
        (r#"vpnshop_orders_fulfilled_total{kind="new"}"#, 0.0),
        ("vpnshop_trials_granted_total", 0.0),
    ] {
        assert_eq!(before.get(series), Some(value), "{series}:\n{}", before.text);
    }

    let key = create_key(&pool, "monitoring test", Scope::Write, None, &Who::cli()).await.unwrap().key;
    let accepted = reqwest::Client::new()
        .post(format!("{}/api/v1/payments/{payment}/accept", shop.http))
        .bearer_auth(&key)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);

    let after = shop.scrape_until("the review decided", |s| s.get("vpnshop_reviews_waiting") == Some(0.0)).await;
    for (series, value) in [
        ("vpnshop_review_oldest_age_seconds", 0.0),
        (REVENUE_USD_CARD, 500.0),
        (r#"vpnshop_revenue_reversed_minor_units_total{currency="USD",method="card"}"#, 0.0),
        (r#"vpnshop_open_orders{status="awaiting_payment"}"#, 0.0),
        // the new subscription waits for its node; the other one still serves
        (r#"vpnshop_subscriptions{status="pending"}"#, 1.0),
        (r#"vpnshop_subscriptions{status="active"}"#, 1.0),
        (r#"vpnshop_orders_fulfilled_total{kind="new"}"#, 1.0),
    ] {
        assert_eq!(after.get(series), Some(value), "{series}:\n{}", after.text);
    }
    promtool_check(&after.text);
}

/// The metric names an expression or rule file mentions.
fn names_in(text: &str) -> BTreeSet<String> {
    let name = regex::Regex::new(r"\bvpnshop_[a-z0-9_]+").unwrap();
    name.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn every_metric_the_alerts_and_the_dashboard_name_is_exported(pool: PgPool) {
    let rules = std::fs::read_to_string(manifest_dir().join("deploy/prometheus/alerts.yml")).unwrap();
    let mut wanted = names_in(&rules);
    wanted.extend(dashboard_queries().iter().flat_map(|q| names_in(q)));
    assert!(wanted.len() >= 30, "{wanted:?}");

    // a node to sync at start (it fails: no SSH key here), a dead job, the bot in webhook mode
    let catalog = vpnshop::services::catalog::Catalog::load(&manifest_dir().join("config/plans.toml")).unwrap();
    vpnshop::services::catalog::seed_if_empty(&pool, &catalog).await.unwrap();
    vpnshop::services::servers::add(&pool, &server_input("de-9", "de"), vpnshop::services::servers::Actor::CLI)
        .await
        .unwrap();
    // as a node sync records a TLS inbound's certificate (tests/it/provisioning/certificates.rs reads a real one)
    sqlx::query("UPDATE servers SET tls_not_after = now() + interval '30 days', tls_checked_at = now()")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("INSERT INTO jobs (kind, status, attempts) VALUES ('jobs.cleanup', 'dead', 10)")
        .execute(&pool)
        .await
        .unwrap();
    let tg = FakeTelegram::start().await;
    let api_url = tg.url().to_string();
    let shop = Shop::start(
        &database_url(&pool),
        &[
            ("TELEGRAM_BOT_TOKEN", tg.token()),
            ("VPNSHOP__TELEGRAM__API_URL", &api_url),
            ("VPNSHOP__TELEGRAM__PUBLIC_URL", "https://shop.example/"),
            ("VPNSHOP__TELEGRAM__WEBHOOK_SECRET", crate::bot::SECRET),
            ("VPNSHOP__SCHEDULER__ENABLED", "true"),
        ],
    )
    .await;
    let http = reqwest::Client::new();
    let start = command_update(1, &TgUser::new(51_000, "Ada"), "/start");
    let delivered = http
        .post(format!("{}/telegram/webhook", shop.http))
        .header("x-telegram-bot-api-secret-token", crate::bot::SECRET)
        .json(&start)
        .send()
        .await
        .unwrap();
    assert_eq!(delivered.status(), 200);
    assert_eq!(http.get(format!("{}/sub/no-such-token-at-all", shop.http)).send().await.unwrap().status(), 404);

    let started = Instant::now();
    let samples = loop {
        let samples = Samples::parse(&shop.scrape().await);
        let exported = samples.names();
        let missing: Vec<&String> = wanted.difference(&exported).collect();
        if missing.is_empty() {
            break samples;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "named in alerts.yml or the dashboard but never exported: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    promtool_check(&samples.text);
}
