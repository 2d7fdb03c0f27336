//! Decisions racing each other across instances, the overdue sweep in two instances, and a crash between a
//! decision and the customer's message.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vpnshop::services::payments::review::{self, Reviewer, Verdict};

use super::*;
use crate::bot::bot_settings;
use crate::helpers::{TestApp, database_url, spawn_app_with};
use crate::support::{Failure, FakeTelegram};

/// A second instance of the shop on the same database (its own pool), the same Telegram and Redis.
async fn second_instance(shop: &BotShop, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let pool = PgPoolOptions::new().max_connections(10).connect(&database_url(&shop.app.state.pool)).await.unwrap();
    spawn_app_with(pool, |s| {
        bot_settings(s, &shop.tg);
        card_settings(s);
        customize(s);
    })
    .await
}

/// A customer with an order paid by card and its receipt under review; returns (customer, order, payment).
async fn under_review(shop: &BotShop, id: i64) -> (TgUser, i64, i64) {
    let u = customer(id);
    let (order, _) = order_by_card(shop, &u).await;
    let answer = send_receipt(shop, &u, &format!("file-{id}"), &format!("uniq-{id}"), jpeg(&id.to_string())).await;
    assert!(answer.contains("under review"), "{answer}");
    (u.clone(), order, payment_of(&shop.app.state.pool, order).await)
}

/// Waits until no job is queued or running except those due later than `slack` from now.
async fn settle(pool: &PgPool) {
    let start = Instant::now();
    loop {
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status = 'running' OR (status = 'queued' AND run_at < now() + interval '15 seconds')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if busy == 0 {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "jobs did not settle: {:#?}",
            crate::provisioning::jobs(pool).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Messages the customer has now whose text contains `needle`.
fn customer_messages(shop: &BotShop, u: &TgUser, needle: &str) -> usize {
    shop.tg.messages_to(u.id).iter().filter(|m| m.text.as_deref().is_some_and(|t| t.contains(needle))).count()
}

/// The decisions recorded for a payment, oldest first.
async fn decisions(pool: &PgPool, payment: i64) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT action FROM audit_log WHERE entity = 'payment' AND entity_id = $1 AND action <> 'payment.receipt' ORDER BY id",
    )
    .bind(payment.to_string())
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn fifty_concurrent_decisions_from_two_instances_make_one(pool: PgPool) {
    // five admins share the attempts (Telegram lets a bot send about one message a second into one chat)
    let admins: Vec<i64> = (0..5).map(|i| ADMIN + 10 + i).collect();
    let team = admins.clone();
    let settings = move |s: &mut Settings| {
        s.payments.card.auto_accept_notice_secs = 2;
        s.telegram.admin_ids.extend(team.iter().copied());
    };
    let shop = card_shop_with(pool, settings.clone()).await;
    let other = second_instance(&shop, settings).await;
    let pool = &shop.app.state.pool;
    let (u, order, payment) = under_review(&shop, 5101).await;
    // overdue, so the automatic acceptance competes too
    sqlx::query("UPDATE payments SET review_deadline = now() - interval '1 minute' WHERE id = $1")
        .bind(payment)
        .execute(pool)
        .await
        .unwrap();
    let mut review_copies = Vec::new();
    for id in &admins {
        wait_calls_to(&shop, "sendPhoto", *id, 1).await;
        review_copies.push((admin(*id), shop.tg.messages_to(*id).last().unwrap().message_id));
    }

    let post = |app: &TestApp, update: Value| {
        let (http, url) = (app.http.clone(), app.url("/telegram/webhook"));
        async move {
            let status = http
                .post(url)
                .header("x-telegram-bot-api-secret-token", crate::bot::SECRET)
                .json(&update)
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status, 200);
        }
    };
    let answered_before = shop.tg.calls_of("answerCallbackQuery").len();
    let mut attempts = Vec::new();
    for i in 0..50 {
        let app = if i % 2 == 0 { &shop.app } else { &other };
        let (who, message_id) = review_copies[i % review_copies.len()].clone();
        let attempt: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = match i % 5 {
            0 => Box::pin(post(app, command_update(next_id(), &who, &format!("/accept {payment}")))),
            1 => Box::pin(post(app, command_update(next_id(), &who, &format!("/reject {payment} no money arrived")))),
            2 => Box::pin(post(app, callback_update(next_id(), &who, message_id, &format!("ra:{payment}")))),
            3 => {
                Box::pin(post(app, callback_update(next_id(), &who, message_id, &format!("rx:{payment}:not_received"))))
            }
            _ => {
                let (pool, settings) = (app.state.pool.clone(), app.state.settings.clone());
                Box::pin(async move {
                    review::decide(&pool, &settings, payment, &Verdict::AutoAccept, &Reviewer::scheduler())
                        .await
                        .unwrap();
                })
            }
        };
        attempts.push(attempt);
    }
    futures::future::join_all(attempts).await;
    // every update handled, every job run
    let start = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar("SELECT count(*) FROM telegram_updates WHERE handled_at IS NULL")
            .fetch_one(pool)
            .await
            .unwrap();
        if open == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "updates still open");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await; // past the delayed notice of an automatic acceptance
    settle(pool).await;

    let status = payment_status(pool, payment).await;
    let made = decisions(pool, payment).await;
    let (subs, live_subs, place_jobs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM subscriptions WHERE order_id = $1),
                (SELECT count(*) FROM subscriptions WHERE order_id = $1 AND status <> 'revoked'),
                (SELECT count(*) FROM jobs WHERE kind = 'subscription.place')",
    )
    .bind(order)
    .fetch_one(pool)
    .await
    .unwrap();
    let told = customer_messages(&shop, &u, "✅") + customer_messages(&shop, &u, "❌");
    match status.as_str() {
        "accepted" | "auto_accepted" => {
            assert_eq!(made.len(), 1, "one decision: {made:?}");
            assert_eq!((subs, live_subs, place_jobs), (1, 1, 1), "one subscription, one provisioning job");
            assert_eq!(customer_messages(&shop, &u, "✅"), 1, "one customer message");
        }
        "rejected" => {
            // a human rejection stands; racing the sweep it may overrule an automatic acceptance, which then
            // never reached the customer
            assert!(made == ["payment.rejected"] || made == ["payment.auto_accepted", "payment.rejected"], "{made:?}");
            assert_eq!(live_subs, 0, "nothing granted stands");
            assert!(subs <= 1 && place_jobs <= 1);
            assert_eq!(customer_messages(&shop, &u, "✅"), 0, "never told it was accepted");
            assert_eq!(customer_messages(&shop, &u, "not accepted"), 1, "one customer message");
        }
        other => panic!("undecided: {other}"),
    }
    assert_eq!(told, 1, "one message about the decision: {:#?}", shop.tg.messages_to(u.id));
    // every loser was answered: 20 commands got a reply each, 20 button presses an answer
    let replies: usize = admins
        .iter()
        .map(|id| shop.tg.calls_of("sendMessage").iter().filter(|c| c.params["chat_id"].as_i64() == Some(*id)).count())
        .sum();
    assert!(replies >= 20, "every command answered ({replies})");
    let answered = shop.tg.calls_of("answerCallbackQuery").len() - answered_before;
    assert_eq!(answered, 20, "every button press answered");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_overdue_sweep_in_two_instances_accepts_each_once_and_never_above_the_ceiling(pool: PgPool) {
    let sweeping = |s: &mut Settings| {
        s.scheduler.enabled = true;
        s.scheduler.sweeps = HashMap::from([("auto_accept".to_owned(), "* * * * * *".to_owned())]);
        s.payments.card.auto_accept_notice_secs = 0;
        // the plan the walk buys costs more than 1 USD: USD orders are above the ceiling, IRR ones within it
        s.payments.card.auto_accept_max = HashMap::from([
            ("USD".to_owned(), rust_decimal::Decimal::ONE),
            ("IRR".to_owned(), rust_decimal::Decimal::from(1_000_000_000)),
        ]);
    };
    let shop = card_shop_with(pool, |s| {
        card_settings(s);
        s.scheduler.enabled = false;
    })
    .await;
    let db = PgPoolOptions::new().max_connections(5).connect(&database_url(&shop.app.state.pool)).await.unwrap();
    let pool = &db;
    let mut within = Vec::new();
    let mut above = Vec::new();
    for i in 0..6 {
        let lang = if i % 2 == 0 { "fa" } else { "en" };
        let u = user(5200 + i, lang);
        let (order, _) = order_by_card(&shop, &u).await;
        send_receipt(&shop, &u, &format!("f{i}"), &format!("u{i}"), jpeg(&format!("sweep{i}"))).await;
        let payment = payment_of(pool, order).await;
        if lang == "fa" { within.push((payment, order)) } else { above.push((payment, order)) }
    }
    sqlx::query("UPDATE payments SET review_deadline = now() - interval '1 minute'").execute(pool).await.unwrap();
    shop.app.stop().await.unwrap();
    let shop = BotShop { app: second_instance_on(pool, &shop.tg, sweeping).await, tg: shop.tg };
    let other = second_instance(&shop, sweeping).await;

    let start = Instant::now();
    for (payment, _) in &within {
        while payment_status(pool, *payment).await != "auto_accepted" {
            assert!(start.elapsed() < Duration::from_secs(30), "payment {payment} not auto-accepted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // a few more sweeps in both instances change nothing
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle(pool).await;
    for (payment, order) in &within {
        assert_eq!(decisions(pool, *payment).await, ["payment.auto_accepted"], "payment {payment} accepted once");
        let subs: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE order_id = $1")
            .bind(order)
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(subs, 1);
    }
    for (payment, _) in &above {
        assert_eq!(payment_status(pool, *payment).await, "under_review", "above the ceiling: never automatic");
        assert!(decisions(pool, *payment).await.is_empty());
        let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM job_keys WHERE key = $1")
            .bind(format!("alert:overdue-above-ceiling:{payment}"))
            .fetch_one(pool)
            .await
            .unwrap();
        assert_eq!(alerts, 1, "the admins are told once that it waits for them");
    }
    let notices: i64 = sqlx::query_scalar("SELECT count(*) FROM job_keys WHERE key LIKE 'payment.notice:%:accepted'")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(notices, within.len() as i64, "one customer notice per accepted payment");
    drop(other);
}

/// The app on an existing database with the bot on this fake Telegram.
async fn second_instance_on(pool: &PgPool, tg: &FakeTelegram, customize: impl FnOnce(&mut Settings)) -> TestApp {
    let pool = PgPoolOptions::new().max_connections(10).connect(&database_url(pool)).await.unwrap();
    spawn_app_with(pool, |s| {
        bot_settings(s, tg);
        card_settings(s);
        customize(s);
    })
    .await
}

/// `vpnshop serve` as a real process, receiving updates from the fake Telegram by long polling.
fn serve(db: &str, tg: &FakeTelegram, port: u16) -> Child {
    crate::process::vpnshop(db)
        .arg("serve")
        .env("VPNSHOP__HTTP__ADDR", format!("127.0.0.1:{port}"))
        .env("VPNSHOP__METRICS__ADDR", "127.0.0.1:0")
        .env("VPNSHOP__TELEGRAM__TOKEN", tg.token())
        .env("VPNSHOP__TELEGRAM__API_URL", tg.url().as_str())
        .env("VPNSHOP__PAYMENTS__CARD__NUMBER", crate::bot::CARD)
        .env("VPNSHOP__JOBS__POLL_INTERVAL_MS", "50")
        .env("REDIS_URL", crate::helpers::redis_url())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start vpnshop serve")
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_crash_between_the_decision_and_the_customer_message_still_delivers_it_once(pool: PgPool) {
    let shop = card_shop(pool).await;
    let (u, order, payment) = under_review(&shop, 5301).await;
    let db = database_url(&shop.app.state.pool);
    let BotShop { app, tg } = shop;
    app.stop().await.unwrap();

    let port = crate::support::free_port();
    let mut first = serve(&db, &tg, port);
    crate::support::wait_for_port(port, Duration::from_secs(20)).await.expect("serve listens");
    // the customer's message will be held up by Telegram (429, retry after 6 s): serve waits it out, and dies
    tg.fail_next("sendMessage", 1, Failure::RetryAfter(6));
    let accept = crate::process::vpnshop(&db).args(["payment", "accept", &payment.to_string()]).output().unwrap();
    assert!(accept.status.success(), "{}", String::from_utf8_lossy(&accept.stderr));
    tg.wait_for("sendMessage", 1, Duration::from_secs(20)).await;
    crate::support::kill_pids(&[first.id()]);
    let _ = first.wait();
    assert_eq!(
        tg.messages_to(u.id).iter().filter(|m| m.text.as_deref().is_some_and(|t| t.contains("accepted"))).count(),
        0,
        "not delivered before the crash"
    );

    // the same instance comes back: it takes back what it was doing and the message arrives, once
    let mut again = serve(&db, &tg, port);
    let start = Instant::now();
    let accepted = |tg: &FakeTelegram| {
        tg.messages_to(u.id).iter().filter(|m| m.text.as_deref().is_some_and(|t| t.contains("accepted"))).count()
    };
    while accepted(&tg) == 0 {
        assert!(start.elapsed() < Duration::from_secs(40), "the message never arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(accepted(&tg), 1, "delivered once");
    crate::support::kill_pids(&[again.id()]);
    let _ = again.wait();
    let pool = PgPoolOptions::new().max_connections(2).connect(&db).await.unwrap();
    let (status, subs): (String, i64) = sqlx::query_as(
        "SELECT (SELECT status FROM payments WHERE id = $1), (SELECT count(*) FROM subscriptions WHERE order_id = $2)",
    )
    .bind(payment)
    .bind(order)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), subs), ("accepted", 1));
}
