//! Subscription changes an operator or a customer asks for: revoking one that never started, and replacing a
//! leaked feed URL (the old one answers 404) — through the service and through `vpnshop subscription`.

use sqlx::PgPool;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::services::servers::Actor;
use vpnshop::services::subscriptions::{self, NewSubscription};

use crate::helpers::{database_url, spawn_app};

/// A customer with a paid order for the de 30-day plan and the pending subscription it bought (no node yet).
async fn pending_subscription(pool: &PgPool, jobs: &vpnshop::config::JobSettings) -> i64 {
    let user: i64 =
        sqlx::query_scalar("INSERT INTO users (telegram_id) VALUES (901) RETURNING id").fetch_one(pool).await.unwrap();
    let (plan, cap): (i64, Option<i64>) =
        sqlx::query_as("SELECT id, data_cap_bytes FROM plans WHERE code = 'de-30d-1dev-50gb'")
            .fetch_one(pool)
            .await
            .unwrap();
    let order: i64 = sqlx::query_scalar(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, paid_at)
         VALUES ($1, $2, 299, 'USD', 'paid', now()) RETURNING id",
    )
    .bind(user)
    .bind(plan)
    .fetch_one(pool)
    .await
    .unwrap();
    let new = NewSubscription {
        user_id: user,
        order_id: Some(order),
        plan_id: plan,
        location_code: "de".into(),
        is_trial: false,
        seats: 1,
        duration_days: 30,
        data_cap_bytes: cap,
    };
    let mut tx = pool.begin().await.unwrap();
    let id = subscriptions::create(&mut tx, &new, jobs).await.unwrap();
    tx.commit().await.unwrap();
    id
}

async fn token_of(pool: &PgPool, sub: i64) -> String {
    sqlx::query_scalar("SELECT token FROM subscriptions WHERE id = $1").bind(sub).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_subscription_that_never_started_can_be_revoked(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let jobs = &app.state.settings.jobs;
    let sub = pending_subscription(&pool, jobs).await;
    assert!(subscriptions::end(&pool, sub, SubscriptionStatus::Revoked, "refunded", jobs).await.unwrap());
    let (status, reason): (String, Option<String>) =
        sqlx::query_as("SELECT status, end_reason FROM subscriptions WHERE id = $1")
            .bind(sub)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!((status.as_str(), reason.as_deref()), ("revoked", Some("refunded")));
    let told: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'notify.user' AND payload->>'event' = 'subscription_revoked'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(told, 1, "the customer is told");
    assert!(!subscriptions::end(&pool, sub, SubscriptionStatus::Revoked, "again", jobs).await.unwrap(), "once");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_leaked_feed_url_is_replaced_and_the_old_one_answers_404(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let sub = pending_subscription(&pool, &app.state.settings.jobs).await;
    let feed = |token: String| app.http.get(app.url(&format!("/sub/{token}"))).send();
    let old = token_of(&pool, sub).await;
    assert_eq!(feed(old.clone()).await.unwrap().status(), 200);

    let new = subscriptions::rotate_feed(&pool, sub, Actor::CLI).await.unwrap();
    assert_ne!(new, old);
    assert_eq!(feed(old).await.unwrap().status(), 404, "the leaked URL is dead");
    assert_eq!(feed(new.clone()).await.unwrap().status(), 200);
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log WHERE action = 'subscription.rotate_feed'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(audited, 1);

    // the operator's command does the same and prints the new URL
    let out = crate::process::vpnshop(&database_url(&pool))
        .args(["subscription", "rotate-url", &sub.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let printed = String::from_utf8_lossy(&out.stdout);
    let newest = token_of(&pool, sub).await;
    assert!(printed.contains(&format!("/sub/{newest}")), "{printed}");
    assert_eq!(feed(new).await.unwrap().status(), 404);
    assert_eq!(feed(newest).await.unwrap().status(), 200);
    let missing =
        crate::process::vpnshop(&database_url(&pool)).args(["subscription", "rotate-url", "999999"]).output().unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("subscription not found"));
}
