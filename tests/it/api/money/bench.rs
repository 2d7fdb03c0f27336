//! The payments listing at scale — a benchmark, not a test (`#[ignore]`d). 100,000 customers and 1,000,000
//! payments (one order each, spread over a year) made with `INSERT … SELECT generate_series`, then latencies
//! of `GET /api/v1/payments` filtered by status and a date range: the first page, every page of a 200-page walk
//! along the cursors, and one deep page (after following 2,000 cursors, 100,000 rows in) asked again and again;
//! the same for a customer's payments and for no filter. Each figure is over 200 requests made one after another
//! through HTTP (the real app, loopback) and, for the first page, through the service alone. Prints the plan of
//! the list query (`EXPLAIN (ANALYZE, BUFFERS)`) and fails when it reads `payments` with a Seq Scan.
//!
//! Run: `cargo test --release --test it -- --ignored --nocapture api::money::bench`; the table is appended to
//! `$VPNSHOP_BENCH_OUT/api.md` when that is set. Results: docs/benchmarks.md.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use vpnshop::db::payments::{PaymentFilter, explain_list};
use vpnshop::domain::page::{Cursor, Order, PageRequest};
use vpnshop::domain::status::PaymentStatus;
use vpnshop::services::payments::admin;

use crate::api::api;
use crate::helpers::bench_report;

const CUSTOMERS: i64 = 100_000;
const PAYMENTS: i64 = 1_000_000;
const SAMPLES: usize = 200;
const PAGE: i64 = 50;

fn env_i64(name: &str, default: i64) -> i64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn generate(pool: &PgPool, customers: i64, payments: i64) -> Duration {
    let start = Instant::now();
    sqlx::query(
        "INSERT INTO users (telegram_id, username, created_at)
         SELECT g, 'c' || g, now() - random() * interval '400 days' FROM generate_series(1, $1) g",
    )
    .bind(customers)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orders (user_id, plan_id, amount_minor, currency, status, created_at)
         SELECT u.first + g % $2, p.id, 500 + g % 1000, 'USD', 'fulfilled', now() - (g % 365) * interval '1 day'
           FROM generate_series(1, $1) g,
                (SELECT min(id) AS first FROM users) u,
                (SELECT id FROM plans WHERE NOT is_trial ORDER BY id LIMIT 1) p",
    )
    .bind(payments)
    .bind(customers)
    .execute(pool)
    .await
    .unwrap();
    // card: 60% accepted, 20% rejected, 20% auto-accepted; stripe and zarinpal: 80% succeeded, 20% failed;
    // created at a random moment of the last year
    sqlx::query(
        "INSERT INTO payments (order_id, method, status, amount_minor, currency, created_at, decided_at)
         SELECT id, m.method,
                CASE WHEN m.method = 'card' THEN (ARRAY['accepted','accepted','accepted','rejected','auto_accepted'])[1 + id % 5]
                     ELSE (ARRAY['succeeded','succeeded','succeeded','succeeded','failed'])[1 + id % 5] END,
                amount_minor, 'USD', t, t + interval '5 minutes'
           FROM (SELECT id, amount_minor, (ARRAY['card','stripe','zarinpal'])[1 + id % 3] AS method,
                        now() - random() * interval '365 days' AS t
                   FROM orders) m",
    )
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE users, orders, payments").execute(pool).await.unwrap();
    start.elapsed()
}

fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |p: f64| {
        let i = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99), samples.last().unwrap().as_secs_f64() * 1000.0)
}

/// Follows `pages` cursors through the service; the cursor of the page after them.
async fn cursor_after(pool: &PgPool, filter: &PaymentFilter, pages: usize) -> Option<Cursor> {
    let mut after = None;
    for _ in 0..pages {
        let (_, next) = admin::list(pool, filter, &PageRequest::new(PAGE, after, Order::Desc)).await.unwrap();
        after = Some(next?);
    }
    after
}

fn query(filter: &PaymentFilter, cursor: Option<Cursor>) -> String {
    let mut q = format!("/api/v1/payments?limit={PAGE}");
    if let Some(s) = filter.status {
        q.push_str(&format!("&status={s}"));
    }
    if let Some(u) = filter.user_id {
        q.push_str(&format!("&user_id={u}"));
    }
    let t =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true).replace('+', "%2B");
    if let Some(f) = filter.created_from {
        q.push_str(&format!("&created_from={}", t(f)));
    }
    if let Some(to) = filter.created_to {
        q.push_str(&format!("&created_to={}", t(to)));
    }
    if let Some(c) = cursor {
        q.push_str(&format!("&cursor={}", c.encode()));
    }
    q
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_payments_listing(pool: PgPool) {
    let (customers, payments) =
        (env_i64("VPNSHOP_BENCH_CUSTOMERS", CUSTOMERS), env_i64("VPNSHOP_BENCH_PAYMENTS", PAYMENTS));
    let api = api(pool.clone()).await;
    let generated = generate(&pool, customers, payments).await;
    println!("generated {customers} customers and {payments} payments in {:.1} s", generated.as_secs_f64());

    let now = chrono::Utc::now();
    let status_range = PaymentFilter {
        status: Some(PaymentStatus::Accepted),
        created_from: Some(now - chrono::Duration::days(300)),
        created_to: Some(now - chrono::Duration::days(10)),
        ..Default::default()
    };
    let busiest: i64 = sqlx::query_scalar("SELECT user_id FROM orders GROUP BY user_id ORDER BY count(*) DESC LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let of_customer = PaymentFilter { user_id: Some(busiest), ..Default::default() };
    let unfiltered = PaymentFilter::default();

    let mut rows = Vec::new();
    let mut timed = |label: String, samples: Vec<Duration>| {
        let (p50, p99, max) = percentiles(samples);
        println!("{label}: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
        rows.push(format!("| {label} | {p50:.2} | {p99:.2} | {max:.2} |"));
        p99
    };
    let http = |path: String| {
        let api = &api;
        async move {
            let start = Instant::now();
            let answer = api.get(&path).await;
            let took = start.elapsed();
            assert_eq!(answer.status, reqwest::StatusCode::OK, "{path}: {answer:?}");
            (took, answer.body)
        }
    };
    let mut worst = 0.0f64;

    // the service alone, first page
    let mut samples = Vec::new();
    for _ in 0..SAMPLES {
        let start = Instant::now();
        admin::list(&pool, &status_range, &PageRequest::new(PAGE, None, Order::Desc)).await.unwrap();
        samples.push(start.elapsed());
    }
    worst = worst.max(timed("status + date range, first page (service)".into(), samples));

    for (name, filter) in
        [("status + date range", &status_range), ("one customer", &of_customer), ("no filter", &unfiltered)]
    {
        let mut samples = Vec::new();
        for _ in 0..SAMPLES {
            samples.push(http(query(filter, None)).await.0);
        }
        worst = worst.max(timed(format!("{name}, first page (HTTP)"), samples));
        if filter.user_id.is_some() {
            continue;
        }
        // a walk along the cursors: every page timed
        let mut samples = Vec::new();
        let mut cursor = None;
        for _ in 0..SAMPLES {
            let (took, body) = http(query(filter, cursor)).await;
            samples.push(took);
            cursor = body["next_cursor"].as_str().map(|c| Cursor::decode(c).unwrap());
        }
        worst = worst.max(timed(format!("{name}, pages 1–{SAMPLES} following cursors (HTTP)"), samples));
        // one deep page, asked again and again
        let deep = cursor_after(&pool, filter, 2000).await.expect("2,000 pages exist");
        let mut samples = Vec::new();
        for _ in 0..SAMPLES {
            samples.push(http(query(filter, Some(deep))).await.0);
        }
        worst = worst.max(timed(format!("{name}, page 2,001 (100,000 rows in) (HTTP)"), samples));
    }

    let mut plans = String::new();
    let deep = cursor_after(&pool, &status_range, 2000).await;
    for (label, filter, cursor) in [
        ("status + date range, first page", &status_range, None),
        ("status + date range, page 2,001", &status_range, deep),
        ("one customer, first page", &of_customer, None),
    ] {
        let plan = explain_list(&pool, filter, &PageRequest::new(PAGE, cursor, Order::Desc)).await.unwrap().join("\n");
        println!("\nEXPLAIN (ANALYZE, BUFFERS), {label}:\n{plan}");
        assert!(!plan.contains("Seq Scan on payments"), "{label} reads payments sequentially:\n{plan}");
        plans.push_str(&format!("\n{label}:\n```\n{plan}\n```\n"));
    }

    let block = format!(
        "### Payments listing ({customers} customers, {payments} payments, {PAGE} rows a page, {SAMPLES} requests each)\n\n\
         Generated in {:.1} s.\n\n| request | p50 ms | p99 ms | max ms |\n|---|---|---|---|\n{}\n{plans}",
        generated.as_secs_f64(),
        rows.join("\n")
    );
    bench_report("api.md", &block);
    println!("worst p99: {worst:.2} ms (target < 20 ms)");
}
