//! Reply benchmarks (item 13) — not tests: `#[ignore]`d, they assert correctness only (every customer answered,
//! no 429). Run with `scripts/bench replies` (release build); results go to stdout and `$VPNSHOP_BENCH_OUT/intake.md`.
//!
//! Both drive the whole app (`spawn_app_with`, webhook mode) against the fake Bot API:
//! - `bench_replies_sequential`: 200 customers one after another, each sending `/start` once the previous one got
//!   its answer: paced at 15 a second (below Telegram's 30, the bot is never idle for long), then back to back
//!   (as fast as the loop goes, which is the overall limit); latency = the webhook POST written → the fake
//!   receiving that customer's `sendMessage`;
//! - `bench_replies_sustained`: 600 customers send `/start` at once to a fake that enforces Telegram's limits
//!   (a new message to a chat within 1 s of the previous one, or any message beyond 30 in the last second, is
//!   answered 429); rate = replies per second between the first and the last reply, and the most replies the fake
//!   saw in any one second. Once with the limits kept in the process, once shared through Redis.

use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::{app_pool, machine, ms, report};
use crate::bot::bot_settings;
use crate::helpers::{TestApp, multi_thread, redis_url, spawn_app_with};
use crate::support::{FakeTelegram, TgUser, command_update};

const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

async fn post(app: &TestApp, update: &serde_json::Value) {
    let status = app
        .http
        .post(app.url("/telegram/webhook"))
        .header(SECRET_HEADER, crate::bot::SECRET)
        .json(update)
        .send()
        .await
        .expect("webhook POST")
        .status();
    assert_eq!(status, 200, "the webhook took the update");
}

async fn start(connect: &PgConnectOptions, tg: &FakeTelegram, redis: bool) -> TestApp {
    let app = spawn_app_with(app_pool(connect).await, |s| {
        bot_settings(s, tg);
        s.jobs.poll_interval_ms = 500;
        if redis {
            s.redis.url = Some(redis_url().into());
        }
    })
    .await;
    tg.wait_for("setWebhook", 1, Duration::from_secs(10)).await;
    app
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// `CUSTOMERS` customers one after another (ids from `first`), each writing when the previous one got its answer
/// and, when `pace` is given, no sooner than that after the previous one wrote. Returns the latencies, sorted, and
/// the customers per second.
async fn one_after_another(
    app: &TestApp,
    tg: &FakeTelegram,
    first: i64,
    pace: Option<Duration>,
) -> (Vec<Duration>, f64) {
    const CUSTOMERS: i64 = 200;
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut next_at = Instant::now();
    for i in first..first + CUSTOMERS {
        tokio::time::sleep_until(next_at.into()).await;
        let user = TgUser::new(2_000_000 + i, "Seq");
        let update = command_update(1_000 + i as u32, &user, "/start");
        let posted = Instant::now();
        next_at = posted + pace.unwrap_or_default();
        post(app, &update).await;
        let deadline = posted + Duration::from_secs(10);
        let answered = loop {
            let calls = tg.calls_of("sendMessage");
            if let Some(call) = calls.iter().rev().find(|c| c.params["chat_id"] == user.id) {
                break call.at;
            }
            assert!(Instant::now() < deadline, "customer {i} was not answered");
            tokio::time::sleep(Duration::from_micros(500)).await;
        };
        latencies.push(answered.duration_since(posted));
    }
    latencies.sort();
    (latencies, CUSTOMERS as f64 / started.elapsed().as_secs_f64())
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench replies"]
async fn bench_replies_sequential(_: PgPoolOptions, connect: PgConnectOptions) {
    multi_thread(async move {
        let tg = FakeTelegram::start().await;
        let app = start(&connect, &tg, false).await;
        let mut lines = vec![
            format!("#### Replies to 200 customers one after another (whole app, release); {}", machine()),
            String::new(),
            "| customers | customers/s | p50 ms | p90 ms | p99 ms | max ms |".to_owned(),
            "|---|---:|---:|---:|---:|---:|".to_owned(),
        ];
        let runs = [
            ("one every 66 ms at most (15/s, below the limit)", Some(Duration::from_micros(66_667))),
            ("each as soon as the previous one is answered", None),
        ];
        for (run, (label, pace)) in runs.into_iter().enumerate() {
            let (latencies, rate) = one_after_another(&app, &tg, run as i64 * 1_000, pace).await;
            lines.push(format!(
                "| {label} | {rate:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                ms(percentile(&latencies, 0.5)),
                ms(percentile(&latencies, 0.9)),
                ms(percentile(&latencies, 0.99)),
                ms(latencies[latencies.len() - 1]),
            ));
        }
        app.stop().await.expect("app stops");
        report(&lines.join("\n"));
    });
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench replies"]
async fn bench_replies_sustained(_: PgPoolOptions, connect: PgConnectOptions) {
    multi_thread(async move {
        const CUSTOMERS: i64 = 600;
        let mut lines = vec![
            format!(
                "#### {CUSTOMERS} customers write at once; the fake answers 429 beyond Telegram's limits; {}",
                machine()
            ),
            String::new(),
            "| limits kept | replies | 429s | replies/s (first → last) | most in any 1 s | last reply after s |"
                .to_owned(),
            "|---|---:|---:|---:|---:|---:|".to_owned(),
        ];
        for (run, (label, redis)) in [("in the process", false), ("in Redis (shared)", true)].into_iter().enumerate() {
            let tg = FakeTelegram::start().await;
            let app = start(&connect, &tg, redis).await;
            tg.enforce_limits();
            // the runs share one database: new update ids and customers each time
            let first = 5_000 + run as i64 * CUSTOMERS;
            let updates: Vec<_> = (first..first + CUSTOMERS)
                .map(|i| command_update(i as u32, &TgUser::new(3_000_000 + i, "Crowd"), "/start"))
                .collect();
            let started = Instant::now();
            futures::future::join_all(updates.iter().map(|u| post(&app, u))).await;
            let sent = tg.wait_for("sendMessage", CUSTOMERS as usize, Duration::from_secs(120)).await;
            let ok: Vec<Instant> = {
                let mut seen = std::collections::HashSet::new();
                // the calls the fake accepted: one per chat (a refused one would be followed by its retry)
                sent.iter().rev().filter(|c| seen.insert(c.params["chat_id"].to_string())).map(|c| c.at).collect()
            };
            let mut at = ok.clone();
            at.sort();
            let span = at[at.len() - 1].duration_since(at[0]);
            let most = at
                .iter()
                .enumerate()
                .map(|(i, t)| at[i..].iter().take_while(|u| u.duration_since(*t) < Duration::from_secs(1)).count())
                .max()
                .unwrap_or(0);
            let refused = tg.rate_limited();
            let rate = (at.len() - 1) as f64 / span.as_secs_f64();
            lines.push(format!(
                "| {label} | {} | {refused} | {rate:.1} | {most} | {:.1} |",
                at.len(),
                at[at.len() - 1].duration_since(started).as_secs_f64()
            ));
            app.stop().await.expect("app stops");
            assert_eq!(refused, 0, "{label}: the bot kept Telegram's limits itself");
        }
        report(&lines.join("\n"));
    });
}
