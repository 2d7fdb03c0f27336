//! Load and soak benchmark — not a test: `#[ignore]`d, it asserts correctness only (no failed request, every
//! update stored once and handled, every accepted payment one active subscription, no dead job, no error in the
//! shop's log, a clean stop), never timings. Run it with `scripts/bench soak` (release build); results go to
//! stdout and `$VPNSHOP_BENCH_OUT/soak.md`, with the shop's logs beside them. Reading: docs/benchmarks.md.
//!
//! The shop is the real binary, `vpnshop serve`, in a process of its own (its RSS is its alone), configured like
//! production (`VPNSHOP_ENV=production`: the scheduler with its real sweeps, metering every 10 s, 4 job workers,
//! a 30-connection pool, Telegram sends within 29/s) on the test's database, the real Redis and `nodes` real nodes
//! (sshd + v2ray on loopback). Before the window the same binary, without its bot, places and activates
//! `clients` subscriptions made through `subscriptions::create`; then it is stopped and started again with its
//! bot on the fake Telegram, and `load` drives it for the window (visits from `customers` customers, purchases with
//! receipts, reviews through the admin API, feed refreshes, admin reads) while RSS, database connections and
//! backlogs are sampled every 10 s. After the window it is given time to finish what it was asked (drain), then
//! stopped with SIGTERM.
//!
//! Knobs: VPNSHOP_SOAK_SECS (600), VPNSHOP_SOAK_CUSTOMERS (10000), VPNSHOP_SOAK_CLIENTS (5000),
//! VPNSHOP_SOAK_NODES (3), VPNSHOP_SOAK_VISITS_PER_SEC (customers ÷ seconds: each customer writes once),
//! VPNSHOP_SOAK_BROWSE_EVERY (10: every tenth visit taps on), VPNSHOP_SOAK_PURCHASES_PER_MIN (12),
//! VPNSHOP_SOAK_FEEDS_PER_SEC (20), VPNSHOP_SOAK_ADMIN_PER_SEC (2).

mod facts;
mod load;
mod record;
mod shop;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use vpnshop::services::auth::{self as auth_svc, Scope};
use vpnshop::services::servers::{self, Actor};

use self::facts::Facts;
use self::load::{CUSTOMER_BASE, Load, Rates};
use self::record::{Sample, sample, sample_tables};
use self::shop::{ShopProcess, log_lines};
use crate::helpers::{database_url, multi_thread};
use crate::provisioning::{node_input, subscribe_on};
use crate::support::{FakeTelegram, TestNode, node_tools_present};

/// What every seeded customer bought: one device, 30 days, 50 GB.
const PLAN: &str = "de-30d-1dev-50gb";
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The most the shop may take after the window to finish what it was asked.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench soak"]
async fn soak(_: PgPoolOptions, connect: PgConnectOptions) {
    if !node_tools_present() {
        return;
    }
    multi_thread(run(connect));
}

async fn run(connect: PgConnectOptions) {
    let secs = env_f64("VPNSHOP_SOAK_SECS", 600.0);
    let (customers, clients) = (env_f64("VPNSHOP_SOAK_CUSTOMERS", 10_000.0), env_f64("VPNSHOP_SOAK_CLIENTS", 5_000.0));
    let rates = Rates {
        customers: customers as u64,
        clients: clients as u64,
        visits_per_sec: env_f64("VPNSHOP_SOAK_VISITS_PER_SEC", customers / secs),
        browse_every: env_f64("VPNSHOP_SOAK_BROWSE_EVERY", 10.0) as u64,
        purchases_per_min: env_f64("VPNSHOP_SOAK_PURCHASES_PER_MIN", 12.0),
        feeds_per_sec: env_f64("VPNSHOP_SOAK_FEEDS_PER_SEC", 20.0),
        admin_per_sec: env_f64("VPNSHOP_SOAK_ADMIN_PER_SEC", 2.0),
    };
    let window = Duration::from_secs_f64(secs);
    let pool = PgPoolOptions::new()
        .max_connections(6)
        .connect_with(connect.application_name("soak-bench"))
        .await
        .expect("bench pool");
    let db = database_url(&pool);
    let scratch = tempfile::tempdir().expect("temp dir");
    let logs = std::env::var_os("VPNSHOP_BENCH_OUT").map_or_else(|| scratch.path().to_owned(), Into::into);
    std::fs::create_dir_all(&logs).expect("log dir");
    let http = reqwest::Client::new();
    let redis_prefix = format!("soak-{}", uuid::Uuid::new_v4().simple());

    // the nodes: the shop has one SSH key, so every node takes the first node's
    let nodes =
        futures::future::join_all((0..env_f64("VPNSHOP_SOAK_NODES", 3.0) as usize).map(|_| TestNode::start())).await;
    let key = nodes[0].key_path();
    let public = std::fs::read_to_string(nodes[0].dir().join("client_ed25519.pub")).expect("node key");
    for node in &nodes[1..] {
        use std::io::Write;
        let mut keys = std::fs::OpenOptions::new().append(true).open(node.dir().join("authorized_keys")).unwrap();
        keys.write_all(public.as_bytes()).expect("share the key");
    }

    // before the window: the same binary, without its bot, places and activates the subscriptions already sold
    let mut seeder = ShopProcess::start(&db, &key, &redis_prefix, None, logs.join("soak-seed.log"));
    seeder.wait_ready(&http).await;
    for (i, node) in nodes.iter().enumerate() {
        let input = node_input(node, &format!("de-soak-{i}"), rates.clients as u32 + 1_000);
        servers::add(&pool, &input, Actor::CLI).await.expect("register a node");
    }
    let (created, activated) = seed(&pool, rates.clients).await;
    assert!(seeder.stop().await.success(), "the seeding shop stops cleanly");
    vpnshop::services::users::add_admin(&pool, "soak", None, "admin").await.unwrap();
    let who = vpnshop::services::audit::Who::cli();
    let api_key = auth_svc::create_key(&pool, "soak", Scope::Write, Some("soak"), &who).await.unwrap().key;
    let tokens: Vec<String> = sqlx::query_scalar("SELECT token FROM subscriptions WHERE status = 'active' ORDER BY id")
        .fetch_all(&pool)
        .await
        .unwrap();

    // the window: the shop with its bot, under load, sampled every 10 s
    let tg = FakeTelegram::start().await;
    let mut shop = ShopProcess::start(&db, &key, &redis_prefix, Some(&tg), logs.join("soak-shop.log"));
    shop.wait_ready(&http).await;
    tg.wait_for("setWebhook", 1, Duration::from_secs(30)).await;
    let calls_before = tg.calls().len();
    let metrics_before = shop.scrape(&http).await;
    let load = Arc::new(Load::new(shop.url(""), tg, api_key, tokens, rates.clone()));
    let (stop, pid, t0) = (Arc::new(AtomicBool::new(false)), shop.pid(), Instant::now());
    let sampler = tokio::spawn(sampling(pool.clone(), pid, t0, stop.clone()));
    load.clone().run(window).await;
    let loaded = t0.elapsed();
    let drained = drain(&pool).await;
    stop.store(true, Ordering::Relaxed);
    let mut samples = sampler.await.expect("sampler");
    samples.push(sample(&pool, pid, t0.elapsed().as_secs_f64()).await);
    let metrics_after = shop.scrape(&http).await;
    let log = shop.log.clone();
    let exit = shop.stop().await;

    let facts = Facts::gather(&pool, &load, calls_before).await;
    let mut routes = load.rec.take();
    let errors: Vec<String> = routes
        .iter()
        .filter(|(_, r)| r.errors > 0)
        .map(|(name, r)| format!("{name}: {} ({:?})", r.errors, r.samples))
        .collect();
    let (log_errors, log_warnings) = (log_lines(&log, "ERROR"), log_lines(&log, "WARN"));
    let report = [
        format!(
            "#### Soak: {secs:.0} s of mixed load on the {} binary; {customers:.0} customers, {clients:.0} \
             subscriptions on {} nodes; {}",
            if cfg!(debug_assertions) { "debug" } else { "release" },
            nodes.len(),
            crate::bench_intake::machine()
        ),
        String::new(),
        format!(
            "Seeding (before the window, the same binary without its bot): {clients:.0} subscriptions created in \
             {:.1} s, all active and on their nodes after {:.1} s. Load: visits {:.2}/s (every {}th taps on), \
             purchases {}/min, feeds {}/s, admin reads {}/s, the review queue every 2 s. Window {:.1} s (the last \
             tasks ending), drain {:.1} s.",
            created.as_secs_f64(),
            activated.as_secs_f64(),
            rates.visits_per_sec,
            rates.browse_every,
            rates.purchases_per_min,
            rates.feeds_per_sec,
            rates.admin_per_sec,
            loaded.as_secs_f64(),
            drained.as_secs_f64()
        ),
        String::new(),
        record::route_table(&mut routes, window, |r| !r.starts_with("bot:")),
        String::new(),
        record::route_table(&mut routes, window, |r| r.starts_with("bot:")),
        String::new(),
        sample_tables(&samples),
        String::new(),
        facts.table(&metrics_before, &metrics_after, loaded, log_errors.len(), log_warnings.len(), &exit),
    ]
    .join("\n");
    crate::helpers::bench_report("soak.md", &report);
    for line in log_errors.iter().chain(&log_warnings).take(10) {
        eprintln!("shop log: {line}");
    }

    assert!(errors.is_empty(), "requests failed: {errors:#?}");
    facts.check(load.updates_ok.load(Ordering::Relaxed), load.receipts.load(Ordering::Relaxed));
    assert_eq!(facts.accepted, load.accepted.load(Ordering::Relaxed) as i64, "every accept the API confirmed holds");
    assert!(log_errors.is_empty(), "the shop logged errors: {:#?}", &log_errors[..log_errors.len().min(10)]);
    let meters = metrics_after.grown(&metrics_before, "vpnshop_sweep_runs_total");
    assert!(meters.iter().any(|(s, _)| s.contains("\"meter\"")), "the meter sweep ran: {meters:?}");
    assert!(exit.success(), "the shop stops cleanly after the soak: {exit}");
    drop((nodes, scratch));
    pool.close().await;
}

/// `clients` subscriptions (customers `0..clients`, 4 creators) through `subscriptions::create`; waits until all
/// are active and nothing is owed (no node sync, no notice left: the shop under test starts with no backlog).
/// Returns (all created, all active and nothing due), from the start.
async fn seed(pool: &PgPool, clients: u64) -> (Duration, Duration) {
    let jobs = crate::helpers::test_settings().jobs;
    let t0 = Instant::now();
    futures::future::join_all((0..4).map(|k| {
        let jobs = &jobs;
        async move {
            for c in (k..clients).step_by(4) {
                subscribe_on(pool, jobs, CUSTOMER_BASE + c as i64, PLAN).await;
            }
        }
    }))
    .await;
    let created = t0.elapsed();
    let mut said = Instant::now();
    loop {
        let (active, owed): (i64, i64) = sqlx::query_as(
            "SELECT (SELECT count(*) FROM subscriptions WHERE status = 'active'),
                    (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')
                        AND kind NOT IN ('node.meter', 'node.reconcile', 'jobs.cleanup'))",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if active == clients as i64 && owed == 0 {
            return (created, t0.elapsed());
        }
        assert!(t0.elapsed() < Duration::from_secs(1800), "only {active} of {clients} active after 30 min");
        if said.elapsed() > Duration::from_secs(10) {
            eprintln!("seeding: {active} of {clients} active after {:.0} s", t0.elapsed().as_secs_f64());
            said = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Samples the shop every 10 s until told to stop.
async fn sampling(pool: PgPool, pid: u32, t0: Instant, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        samples.push(sample(&pool, pid, t0.elapsed().as_secs_f64()).await);
    }
    samples
}

/// Waits until every update is handled, no customer-facing job is due and every accepted payment's subscription
/// is active (the sweeps' periodic node jobs aside); how long that took (at most `DRAIN_LIMIT`).
async fn drain(pool: &PgPool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < DRAIN_LIMIT {
        let left: i64 = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM telegram_updates WHERE handled_at IS NULL)
                  + (SELECT count(*) FROM jobs WHERE status IN ('queued', 'running') AND run_at <= now()
                       AND kind NOT IN ('node.meter', 'node.reconcile', 'jobs.cleanup'))
                  + (SELECT count(*) FROM payments p WHERE p.status = 'accepted' AND NOT EXISTS
                       (SELECT 1 FROM subscriptions s WHERE s.order_id = p.order_id AND s.status = 'active'))",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    start.elapsed()
}
