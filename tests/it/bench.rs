//! Provisioning benchmarks — not tests: every one is `#[ignore]`d and asserts correctness only (every client
//! really works, nothing is cut on our path), never timings. Run them with `scripts/bench` (release build,
//! one at a time); each prints its numbers and a markdown table, and appends the table to
//! `$VPNSHOP_BENCH_OUT/provisioning.md` when that is set. Results and their reading: docs/benchmarks.md.
//!
//! - `bench_payment_to_working_client`: commit of `subscriptions::create` → placed → the node's API has the
//!   client → the node's file holds it → `active` (the customer is told) → and, independently, a brand-new real
//!   v2ray client built from the share link gets a page through the node.
//! - `bench_thousand_clients_on_one_node`: 1,000 one-device subscriptions created by a few concurrent
//!   creators, until all are active and the node's file holds all of them.
//! - `bench_churn_runtime_api` / `bench_churn_rewrite_and_restart`: 100 client additions on a node, our way
//!   (gRPC add + file write) against the naive panel way (rewrite the file + restart the core), with a
//!   long download running through an existing client.
//!
//! The shop runs like production: a multi-threaded runtime, a 20-connection pool, 4 job workers polling
//! every 500 ms besides the LISTEN/NOTIFY wake-up; the scheduler (meter/reconcile sweeps) is off.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::provision::node::NodeApi;
use vpnshop::provision::render;
use vpnshop::provision::ssh::{KeySource, SshOptions};
use vpnshop::provision::sshnode::SshNodes;
use vpnshop::provision::{NodeTarget, NodeUser};
use vpnshop::services::servers::{self, Actor};

use crate::helpers::{multi_thread, spawn_app_with};
use crate::provisioning::{Shop, browses, links_of, status_of, subscribe, wait_node_synced};
use crate::support::{GREETING, Origin, TestNode, TestV2rayClient, node_tools_present};

/// The plan every benchmark buys: one device, 30 days, 50 GB.
const PLAN: &str = "de-30d-1dev-50gb";
/// How often the benchmarks look at the database, the node's file or the client.
const POLL: Duration = Duration::from_millis(2);
/// A new fetch through the fresh client starts this often…
const TRY_EVERY: Duration = Duration::from_millis(20);
/// …and each one gives up after this long (a refused VMess user is drained, not answered).
const TRY_TIMEOUT: Duration = Duration::from_millis(1000);

// ---------------------------------------------------------------------------------------------- harness

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The app's pool as configured in production (`database.max_connections = 20`), on the test's database.
pub(crate) async fn app_pool(connect: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect)
        .await
        .expect("bench pool")
}

/// Like `provisioning::shop()`, with production job settings and room for thousands of clients.
async fn bench_shop(pool: PgPool) -> Shop {
    let node = TestNode::start().await;
    let key = node.key_path();
    let origin = Origin::start().await;
    let allow = origin.allowance();
    let app = spawn_app_with(pool, move |s| {
        s.provision.allow_private_destinations.push(allow);
        s.provision.ssh_key_path = Some(key);
        s.provision.connect_timeout_secs = 3;
        s.provision.op_timeout_secs = 30;
        // config/test.toml polls every 50 ms; production (config/default.toml) every 500 ms
        s.jobs.poll_interval_ms = env_usize("VPNSHOP_BENCH_POLL_MS", 500) as u64;
    })
    .await;
    let input = crate::provisioning::node_input(&node, "de-bench", 10_000);
    let server = servers::add(&app.state.pool, &input, Actor::CLI).await.expect("register the bench node");
    Shop { app, node, server_id: server.id, origin }
}

/// Stops the app and closes the pool, so `#[sqlx::test]` can drop the database.
pub(crate) async fn close(shop: Shop, pool: PgPool) {
    let Shop { app, node, origin, .. } = shop;
    app.stop().await.expect("app stops");
    drop((node, origin));
    pool.close().await;
}

/// How many times the node's v2ray started (each start prints its banner into the node's log).
fn core_starts(node: &TestNode) -> usize {
    node.log("v2ray.log").matches("A unified platform for anti-censorship").count()
}

fn clients_on_file(node: &TestNode) -> Vec<NodeUser> {
    let text = std::fs::read_to_string(node.config_path()).expect("node config");
    render::clients_in(&text, "proxy").expect("node config parses")
}

/// One GET of the origin's `/` through a client's HTTP proxy, on a new connection: whether the greeting came
/// back. Plain bytes on a socket, so a try costs nothing but the proxy's work.
async fn fetch_through(proxy_port: u16, origin: SocketAddr) -> bool {
    let Ok(mut socket) = tokio::net::TcpStream::connect(("127.0.0.1", proxy_port)).await else { return false };
    let request = format!("GET http://{origin}/ HTTP/1.1\r\nHost: {origin}\r\nConnection: close\r\n\r\n");
    if socket.write_all(request.as_bytes()).await.is_err() {
        return false;
    }
    // read until the greeting is in (the proxy need not close first) or the connection ends
    let (mut answer, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
        if answer.windows(GREETING.len()).any(|w| w == GREETING.as_bytes()) {
            break;
        }
    }
    let text = String::from_utf8_lossy(&answer);
    text.starts_with("HTTP/1.1 200") && text.contains(GREETING)
}

/// Starts a fetch every `TRY_EVERY` (each with `TRY_TIMEOUT`), overlapping, until one gets the page; returns
/// when that happened, measured from `t0`.
async fn first_page(client: &TestV2rayClient, origin: SocketAddr, t0: Instant) -> Duration {
    let mut tries = FuturesUnordered::new();
    let mut tick = tokio::time::interval(TRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let give_up = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < give_up, "the client never got a page through the node:\n{}", client.log());
        tokio::select! {
            _ = tick.tick() => tries.push(tokio::time::timeout(TRY_TIMEOUT, fetch_through(client.http_port, origin))),
            Some(result) = tries.next(), if !tries.is_empty() => {
                if matches!(result, Ok(true)) {
                    return t0.elapsed();
                }
            }
        }
    }
}

/// Median, p95 (nearest rank), min and max of some durations.
struct Summary {
    n: usize,
    median: Duration,
    p95: Duration,
    min: Duration,
    max: Duration,
    mean: Duration,
}

fn summary(samples: &[Duration]) -> Summary {
    assert!(!samples.is_empty());
    let mut s = samples.to_vec();
    s.sort_unstable();
    let rank = |p: f64| s[((p * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1];
    let total: Duration = s.iter().sum();
    Summary {
        n: s.len(),
        median: rank(0.5),
        p95: rank(0.95),
        min: s[0],
        max: s[s.len() - 1],
        mean: total / s.len() as u32,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

const TABLE_HEAD: &str =
    "| measure | n | median ms | p95 ms | min ms | max ms | mean ms |\n|---|---:|---:|---:|---:|---:|---:|";

fn table_row(what: &str, samples: &[Duration]) -> String {
    let s = summary(samples);
    format!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.n,
        ms(s.median),
        ms(s.p95),
        ms(s.min),
        ms(s.max),
        ms(s.mean)
    )
}

/// Prints a result block and appends it to `$VPNSHOP_BENCH_OUT/provisioning.md` (scripts/bench sets it).
fn report(block: &str) {
    crate::helpers::bench_report("provisioning.md", block);
}

// ------------------------------------------------------------------------ payment accepted → client works

/// What one purchase took, each from the commit of `subscriptions::create`.
struct Purchase {
    sub: i64,
    /// This host's clock right after the commit (Postgres runs on the same host and clock).
    commit: chrono::DateTime<chrono::Utc>,
    /// The place job ran: the client row (and so the share link) exists.
    placed: Duration,
    /// The subscription is `active`: the customer is told (the sync activates once the node has the client and
    /// its file holds it). Polled for a settled purchase; for one back to back, read afterwards from the
    /// database (`starts_at`: the activation transaction's start).
    active: Duration,
    /// A brand-new v2ray client, started from the share link as soon as it existed, got a page.
    works: Duration,
    /// Of which: spawning that client process until its proxy port listened.
    client_start: Duration,
    /// Only for a purchase that was let settle (its sync ran to the end before the next purchase):
    settled: Option<Settled>,
}

struct Settled {
    /// The node's config file holds the client (the sync is complete; a restart would keep it).
    on_file: Duration,
    /// The same story told by the database's timestamps (same host clock, no polling):
    /// the place job's transaction began (job pickup after the NOTIFY; 0 = before the test saw its commit),
    place_begun: Duration,
    /// the place job was recorded done,
    place_done: Duration,
    /// the client was marked present on the node (its gRPC `AlterInbound` add had returned),
    on_node: Duration,
    /// the activation transaction began,
    activating: Duration,
    /// the node.apply job was recorded done (config file written).
    apply_done: Duration,
}

/// When the pipeline's steps happened, from the database, relative to `commit` (taken on this host's clock
/// right after the commit returned; Postgres runs on the same host and clock).
async fn db_timeline(pool: &PgPool, sub: i64, commit: chrono::DateTime<chrono::Utc>) -> [Duration; 5] {
    type Ts = chrono::DateTime<chrono::Utc>;
    // `clients.created_at` is the place transaction's start, `clients.updated_at` the `mark_on_node` statement
    let (place_begun, place_done, on_node, activating, apply_done): (Ts, Ts, Ts, Ts, Ts) = sqlx::query_as(
        "WITH place AS (SELECT id, finished_at FROM jobs
                         WHERE kind = 'subscription.place' AND payload->>'subscription_id' = $1::text)
         SELECT (SELECT created_at FROM clients WHERE subscription_id = $1),
                (SELECT finished_at FROM place),
                (SELECT updated_at FROM clients WHERE subscription_id = $1),
                (SELECT starts_at FROM subscriptions WHERE id = $1),
                (SELECT finished_at FROM jobs WHERE kind = 'node.apply' AND id > (SELECT id FROM place)
                  ORDER BY id LIMIT 1)",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .unwrap();
    [place_begun, place_done, on_node, activating, apply_done].map(|t| (t - commit).to_std().unwrap_or_default())
}

/// One purchase, timed from its commit until a brand-new client gets a page through the node. With `settle`,
/// it also waits until the node's file holds the client and the sync is over, and reads the database's
/// timeline; without, it returns as soon as the client works (the sync may still be writing the file).
async fn purchase(shop: &Shop, telegram_id: i64, settle: bool) -> Purchase {
    let pool = shop.pool();
    let sub = subscribe(shop, telegram_id, PLAN).await;
    // `subscribe` returns right after the commit: that is "payment accepted"
    let (t0, commit) = (Instant::now(), chrono::Utc::now());
    let email = async {
        loop {
            let email: Option<String> = sqlx::query_scalar("SELECT email FROM clients WHERE subscription_id = $1")
                .bind(sub)
                .fetch_optional(pool)
                .await
                .unwrap();
            if let Some(email) = email {
                return (email, t0.elapsed());
            }
            tokio::time::sleep(POLL).await;
        }
    };
    let active = async {
        while settle && status_of(pool, sub).await != SubscriptionStatus::Active {
            tokio::time::sleep(POLL).await;
        }
        t0.elapsed()
    };
    let works_and_file = async {
        let (email, placed) = email.await;
        let link = links_of(shop, sub).await.remove(0);
        let on_file = async {
            let path = shop.node.config_path();
            while settle && !std::fs::read_to_string(&path).unwrap_or_default().contains(email.as_str()) {
                tokio::time::sleep(POLL).await;
            }
            t0.elapsed()
        };
        let works = async {
            let spawned = Instant::now();
            let client = TestV2rayClient::start(link.as_str()).await;
            let client_start = spawned.elapsed();
            (first_page(&client, shop.origin.addr, t0).await, client_start)
        };
        let (on_file, (works, client_start)) = tokio::join!(on_file, works);
        (placed, on_file, works, client_start)
    };
    let limit = Duration::from_secs(60);
    let (active, (placed, on_file, works, client_start)) =
        tokio::time::timeout(limit, async { tokio::join!(active, works_and_file) })
            .await
            .unwrap_or_else(|_| panic!("purchase {telegram_id} did not go through within {limit:?}"));
    let settled = if settle {
        wait_node_synced(pool, shop.server_id).await;
        let [place_begun, place_done, on_node, activating, apply_done] = db_timeline(pool, sub, commit).await;
        Some(Settled { on_file, place_begun, place_done, on_node, activating, apply_done })
    } else {
        None
    };
    Purchase { sub, commit, placed, active, works, client_start, settled }
}

/// Fills in `active` of purchases that did not wait for it, from the database, once they all are.
async fn active_from_db(pool: &PgPool, runs: &mut [Purchase]) {
    for run in runs.iter_mut() {
        let starts: chrono::DateTime<chrono::Utc> =
            sqlx::query_scalar("SELECT starts_at FROM subscriptions WHERE id = $1 AND status = 'active'")
                .bind(run.sub)
                .fetch_one(pool)
                .await
                .unwrap();
        run.active = (starts - run.commit).to_std().unwrap_or_default();
    }
}

/// The end-to-end rows of a set of purchases.
fn purchase_rows(runs: &[Purchase]) -> Vec<String> {
    let col = |f: fn(&Purchase) -> Duration| runs.iter().map(f).collect::<Vec<_>>();
    vec![
        TABLE_HEAD.to_owned(),
        table_row("commit → placed (client row + share link exist)", &col(|p| p.placed)),
        table_row("commit → subscription `active` (the customer is told)", &col(|p| p.active)),
        table_row("commit → brand-new v2ray client gets a page", &col(|p| p.works)),
        table_row("  of which: v2ray client process start-up", &col(|p| p.client_start)),
        table_row("commit → page, minus client start-up (estimate)", &col(|p| p.works.saturating_sub(p.client_start))),
    ]
}

/// `node.apply` jobs after job `after`: how many, and how many of them were deferred at least once because the
/// node was busy (a deferred job's `run_at` was moved past its `created_at`).
async fn apply_jobs_since(pool: &PgPool, after: i64) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE run_at > created_at + interval '100 milliseconds')
           FROM jobs WHERE kind = 'node.apply' AND id > $1",
    )
    .bind(after)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_all_active(pool: &PgPool, want: i64, limit: Duration) {
    let start = Instant::now();
    loop {
        let active: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions WHERE status = 'active'")
            .fetch_one(pool)
            .await
            .unwrap();
        if active >= want {
            return;
        }
        assert!(start.elapsed() < limit, "only {active} of {want} subscriptions active after {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_payment_to_working_client(_: PgPoolOptions, connect: PgConnectOptions) {
    if !node_tools_present() {
        return;
    }
    multi_thread(async move {
        let (preload, purchases) = (env_usize("VPNSHOP_BENCH_PRELOAD", 200), env_usize("VPNSHOP_BENCH_PURCHASES", 50));
        let back_to_back = env_usize("VPNSHOP_BENCH_BACK_TO_BACK", 20);
        let pool = app_pool(connect).await;
        let shop = bench_shop(pool.clone()).await;
        for i in 0..preload {
            subscribe(&shop, 10_000 + i as i64, PLAN).await;
        }
        wait_all_active(shop.pool(), preload as i64, Duration::from_secs(120)).await;
        wait_node_synced(shop.pool(), shop.server_id).await;
        let starts = core_starts(&shop.node);

        let mut runs = Vec::with_capacity(purchases);
        for i in 0..purchases {
            // each purchase is measured alone: `purchase` returns once its sync (file write included) is over
            runs.push(purchase(&shop, 20_000 + i as i64, true).await);
        }
        // then back to back: the next payment is committed as soon as the previous client works, while the
        // previous sync may still be writing the node's file (what a busy hour looks like)
        let last_job: i64 =
            sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM jobs").fetch_one(shop.pool()).await.unwrap();
        let mut busy = Vec::with_capacity(back_to_back);
        for i in 0..back_to_back {
            busy.push(purchase(&shop, 30_000 + i as i64, false).await);
        }
        wait_node_synced(shop.pool(), shop.server_id).await;
        active_from_db(shop.pool(), &mut busy).await;
        let (busy_syncs, busy_deferred) = apply_jobs_since(shop.pool(), last_job).await;
        assert_eq!(core_starts(&shop.node), starts, "no core restart while selling");
        let total = preload + purchases + back_to_back;
        assert_eq!(clients_on_file(&shop.node).len(), total, "the file holds every client");

        let settled: Vec<&Settled> = runs.iter().filter_map(|p| p.settled.as_ref()).collect();
        let col = |f: fn(&Settled) -> Duration| settled.iter().map(|s| f(s)).collect::<Vec<_>>();
        let mut lines = vec![
            format!(
                "#### Payment accepted → client works ({purchases} sequential purchases, each settled before the \
                 next, node already holding {preload} clients)"
            ),
            String::new(),
        ];
        lines.extend(purchase_rows(&runs));
        lines.push(table_row("commit → node's config file holds the client", &col(|s| s.on_file)));
        lines.extend([
            String::new(),
            "Database clock, same purchases (steps as recorded by Postgres, no polling):".to_owned(),
            String::new(),
            TABLE_HEAD.to_owned(),
            table_row("commit → place job's transaction begins (job pickup)", &col(|s| s.place_begun)),
            table_row("commit → place job recorded done", &col(|s| s.place_done)),
            table_row("commit → client marked present (node's API added it)", &col(|s| s.on_node)),
            table_row("commit → activation transaction begins", &col(|s| s.activating)),
            table_row("commit → node.apply job recorded done (file written)", &col(|s| s.apply_done)),
            String::new(),
            format!(
                "#### Payment accepted → client works, {back_to_back} purchases back to back (the next one as soon \
                 as the previous client works, before the previous sync is over; node holding {} clients; `active` \
                 read afterwards from the database's `starts_at`)",
                preload + purchases
            ),
            String::new(),
        ]);
        lines.extend(purchase_rows(&busy));
        lines.extend([
            String::new(),
            format!(
                "Node syncs during these {back_to_back} purchases: {busy_syncs}, of which {busy_deferred} found the \
                 node busy (a sync still writing the file) and were put back for 500 ms (`Outcome::Defer`)."
            ),
        ]);
        let block = lines.join("\n");
        report(&block);
        close(shop, pool).await;
    });
}

// ------------------------------------------------------------------------------- 1,000 clients on a node

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_thousand_clients_on_one_node(_: PgPoolOptions, connect: PgConnectOptions) {
    if !node_tools_present() {
        return;
    }
    multi_thread(async move {
        let (total, creators) = (env_usize("VPNSHOP_BENCH_CLIENTS", 1000), env_usize("VPNSHOP_BENCH_CREATORS", 4));
        let pool = app_pool(connect).await;
        let shop = bench_shop(pool.clone()).await;
        let starts_before = core_starts(&shop.node);
        let config_path = shop.node.config_path();
        let inode = || {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(&config_path).map(|m| m.ino()).unwrap_or(0)
        };

        let (t0, wall0) = (Instant::now(), chrono::Utc::now());
        let create = async {
            let tasks = (0..creators).map(|k| {
                let shop = &shop;
                async move {
                    for i in (k..total).step_by(creators) {
                        subscribe(shop, 100_000 + i as i64, PLAN).await;
                    }
                }
            });
            futures::future::join_all(tasks).await;
            t0.elapsed()
        };
        // watch the node's file: every atomic write (temp file + rename) shows as a new inode
        let writes = AtomicUsize::new(0);
        let done = AtomicBool::new(false);
        let watch_file = async {
            let mut last = inode();
            while !done.load(Ordering::Relaxed) {
                let now = inode();
                if now != last {
                    writes.fetch_add(1, Ordering::Relaxed);
                    last = now;
                }
                tokio::time::sleep(POLL).await;
            }
        };
        let finish = async {
            let all_active = async {
                wait_all_active(shop.pool(), total as i64, Duration::from_secs(600)).await;
                t0.elapsed()
            }
            .await;
            let limit = Instant::now() + Duration::from_secs(120);
            while clients_on_file(&shop.node).len() < total {
                assert!(Instant::now() < limit, "the node's file never held all {total} clients");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let on_file = t0.elapsed();
            done.store(true, Ordering::Relaxed);
            (all_active, on_file)
        };
        let (created, (all_active, on_file), ()) = tokio::join!(create, finish, watch_file);
        // every client is on the node; node jobs still queued or running now are reported, not waited for (once
        // in ~20 runs one stayed `running` with nothing left to do; see docs/benchmarks.md)
        let out_of_sync: i64 =
            sqlx::query_scalar("SELECT count(*) FROM clients WHERE server_id = $1 AND desired <> node_state")
                .bind(shop.server_id)
                .fetch_one(shop.pool())
                .await
                .unwrap();
        assert_eq!(out_of_sync, 0, "every client is where the database wants it");
        tokio::time::sleep(Duration::from_millis(500)).await;
        let leftover: Vec<(i64, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT id, status, attempts, last_error FROM jobs
              WHERE kind LIKE 'node.%' AND status IN ('queued', 'running') ORDER BY id",
        )
        .fetch_all(shop.pool())
        .await
        .unwrap();

        // correctness: the file holds exactly the clients the database wants there
        let mut on_node: Vec<String> = clients_on_file(&shop.node).into_iter().map(|u| u.email).collect();
        let mut wanted: Vec<String> =
            sqlx::query_scalar("SELECT email FROM clients WHERE server_id = $1 AND desired = 'present'")
                .bind(shop.server_id)
                .fetch_all(shop.pool())
                .await
                .unwrap();
        on_node.sort();
        wanted.sort();
        assert_eq!(wanted.len(), total);
        assert_eq!(on_node, wanted, "the node's file holds exactly the wanted clients");
        let restarts = core_starts(&shop.node) - starts_before;
        assert!(restarts <= 1, "at most the first sync of a fresh node restarts the core: {restarts}");

        // per-subscription latency under this load, from the database's own clock
        let latencies: Vec<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM starts_at - created_at)::float8 FROM subscriptions WHERE status = 'active'",
        )
        .fetch_all(shop.pool())
        .await
        .unwrap();
        let latencies: Vec<Duration> = latencies.into_iter().map(Duration::from_secs_f64).collect();
        let places: i64 =
            sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'done' AND kind = 'subscription.place'")
                .fetch_one(shop.pool())
                .await
                .unwrap();

        // how the work was spread over time (database clock, seconds from the start)
        let timeline: Vec<(String, f64, Option<f64>, i32)> = sqlx::query_as(
            "SELECT kind, extract(epoch FROM created_at - $1)::float8, extract(epoch FROM finished_at - $1)::float8,
                    attempts
               FROM jobs WHERE kind = 'node.apply' AND status = 'done' ORDER BY id",
        )
        .bind(wall0)
        .fetch_all(shop.pool())
        .await
        .unwrap();
        let (first_placed, last_placed): (f64, f64) = sqlx::query_as(
            "SELECT extract(epoch FROM min(finished_at) - $1)::float8, extract(epoch FROM max(finished_at) - $1)::float8
               FROM jobs WHERE kind = 'subscription.place'",
        )
        .bind(wall0)
        .fetch_one(shop.pool())
        .await
        .unwrap();
        let mut story = vec![format!("placements: done from +{first_placed:.2} s to +{last_placed:.2} s")];
        for (id, status, attempts, error) in &leftover {
            story.push(format!(
                "node job {id} still {status} 0.5 s after the end (attempts {attempts}, last error {error:?})"
            ));
        }
        for (kind, created, finished, attempts) in &timeline {
            // a job that found the node busy is put back (Defer) and ends as `done` without `finished_at` when
            // a newer one for the same node was queued meanwhile
            let finished =
                finished.map_or_else(|| "superseded (deferred: node busy)".to_owned(), |f| format!("done +{f:.2} s"));
            story.push(format!("{kind}: enqueued +{created:.2} s, {finished}, attempts {attempts}"));
        }
        let syncs = timeline.iter().filter(|(_, _, finished, _)| finished.is_some()).count();
        let superseded = timeline.len() - syncs;
        let (_, deferred) = apply_jobs_since(shop.pool(), 0).await;

        // activations come in batches (one per sync): their spread shows the per-subscription activation cost
        let activated: Vec<f64> = sqlx::query_scalar(
            "SELECT extract(epoch FROM starts_at - $1)::float8 FROM subscriptions WHERE status = 'active' ORDER BY 1",
        )
        .bind(wall0)
        .fetch_all(shop.pool())
        .await
        .unwrap();
        let mut batch_start = 0;
        for i in 1..=activated.len() {
            if i == activated.len() || activated[i] - activated[i - 1] > 0.1 {
                let (first, last, n) = (activated[batch_start], activated[i - 1], i - batch_start);
                let each = if n > 1 { (last - first) * 1000.0 / (n - 1) as f64 } else { 0.0 };
                story.push(format!("activations: {n} from +{first:.2} s to +{last:.2} s ({each:.2} ms apart)"));
                batch_start = i;
            }
        }

        // spot check: a sample of clients really browse
        let subs: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM subscriptions ORDER BY id").fetch_all(shop.pool()).await.unwrap();
        let mut sample: Vec<i64> =
            subs.iter().step_by((subs.len() / 20).max(1)).copied().chain(subs.last().copied()).collect();
        sample.dedup();
        for sub in &sample {
            let link = links_of(&shop, *sub).await.remove(0);
            assert!(browses(&shop, &link).await, "subscription {sub}'s client browses");
        }

        let per_s = |d: Duration| total as f64 / d.as_secs_f64();
        let block = format!(
            "#### {total} one-device subscriptions on one fresh node ({creators} concurrent creators)\n\n\
             | measure | value |\n|---|---:|\n\
             | all {total} created (committed) | {:.2} s ({:.0} subscriptions/s) |\n\
             | all {total} `active` | {:.2} s ({:.0} clients/s) |\n\
             | node's config file holds all {total} | {:.2} s ({:.0} clients/s) |\n\
             | core restarts | {restarts} |\n\
             | node syncs (`node.apply` jobs run to the end) | {syncs} |\n\
             | `node.apply` jobs that found the node busy: deferred 500 ms / superseded | {deferred} / {superseded} |\n\
             | config file writes seen on the node | {} |\n\
             | placements (`subscription.place` jobs done) | {places} |\n\
             | clients spot-checked with a real v2ray client | {} of {}, all browse |\n\n\
             {TABLE_HEAD}\n{}\n\n\
             Timeline (database clock, from the first creation):\n\n```text\n{}\n```",
            created.as_secs_f64(),
            per_s(created),
            all_active.as_secs_f64(),
            per_s(all_active),
            on_file.as_secs_f64(),
            per_s(on_file),
            writes.load(Ordering::Relaxed),
            sample.len(),
            total,
            table_row("per subscription under this load: created → active (DB clock)", &latencies),
            story.join("\n"),
        );
        report(&block);
        close(shop, pool).await;
    });
}

// ------------------------------------------------------------ churn: runtime API vs rewrite + restart

fn ssh_options() -> SshOptions {
    SshOptions {
        connect_timeout: Duration::from_secs(3),
        command_timeout: Duration::from_secs(30),
        keepalive_interval: Duration::from_secs(15),
        keepalive_max: 3,
    }
}

fn new_user(i: usize) -> NodeUser {
    NodeUser { uuid: Uuid::new_v4(), email: format!("bench-{i}") }
}

/// Waits until something listens on the port again, polling every millisecond.
async fn listening(port: u16) {
    let limit = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < limit, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A customer's long download that is restarted whenever it is cut: how often it was cut and how much it got.
#[derive(Default)]
struct Download {
    stop: AtomicBool,
    /// Downloads that had data flowing and then failed.
    cuts: AtomicUsize,
    /// Attempts to (re)start the download that failed before any data came.
    failed_starts: AtomicUsize,
    bytes: AtomicUsize,
}

const MIB: f64 = 1024.0 * 1024.0;
/// What the origin's `/slow/…/20` serves: 16 KiB every 20 ms, in bytes per second.
const DOWNLOAD_RATE: f64 = 16.0 * 1024.0 / 0.020;

/// Runs a 16 KiB-every-20 ms download through `proxy_port` (restarting it when cut) until told to stop.
fn keep_downloading(origin: &Origin, proxy_port: u16) -> (Arc<Download>, tokio::task::JoinHandle<()>) {
    let state = Arc::new(Download::default());
    let url = origin.url("/slow/1000000/20");
    let s = state.clone();
    let task = tokio::spawn(async move {
        let proxy = reqwest::Proxy::all(format!("http://127.0.0.1:{proxy_port}")).unwrap();
        let http = reqwest::Client::builder().proxy(proxy).pool_max_idle_per_host(0).build().unwrap();
        while !s.stop.load(Ordering::Relaxed) {
            let mut res = match http.get(&url).send().await {
                Ok(res) if res.status().is_success() => res,
                _ => {
                    s.failed_starts.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let mut got = 0;
            loop {
                if s.stop.load(Ordering::Relaxed) {
                    return;
                }
                match res.chunk().await {
                    Ok(Some(bytes)) => {
                        got += bytes.len();
                        s.bytes.fetch_add(bytes.len(), Ordering::Relaxed);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        if got > 0 {
                            s.cuts.fetch_add(1, Ordering::Relaxed);
                        } else {
                            s.failed_starts.fetch_add(1, Ordering::Relaxed);
                        }
                        break;
                    }
                }
            }
        }
    });
    (state, task)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Churn {
    /// Ours: add the user through the core's gRPC API, then write the file (no restart).
    RuntimeApi,
    /// The naive panel way (what the issue calls 3x-ui/Marzban style): write the file with one more user,
    /// restart the core, wait until it listens.
    RewriteAndRestart,
}

/// Adds `changes` clients one by one to a node that already has one customer downloading, timing each change
/// until the new client can connect; returns the printed block.
async fn churn(mode: Churn, changes: usize) -> String {
    let (node, origin) = (TestNode::start().await, Origin::start().await);
    let api = SshNodes::new(&KeySource::Path(node.key_path()), ssh_options()).expect("bench key");
    let target: NodeTarget = node.target();
    let base: serde_json::Value = serde_json::from_str(&node.base_config()).unwrap();
    let render = |users: &[NodeUser]| render::render(&base, &target.inbounds, users).expect("render");

    // the starting point: one customer on the node (from its file) with a long download running
    let mut users = vec![new_user(0)];
    api.write_config(&target, &render(&users)).await.unwrap();
    api.restart_core(&target).await.unwrap();
    node.wait_core().await;
    let starts_before = core_starts(&node);
    let customer = TestV2rayClient::start(node.client_params(users[0].uuid)).await;
    let (download, download_task) = keep_downloading(&origin, customer.http_port);
    let flowing = Instant::now() + Duration::from_secs(10);
    while download.bytes.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < flowing, "the customer's download never started");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (mut per_change, mut part_a, mut part_b) = (vec![], vec![], vec![]);
    let (t0, bytes_at_t0) = (Instant::now(), download.bytes.load(Ordering::Relaxed));
    for i in 1..=changes {
        let user = new_user(i);
        users.push(user.clone());
        let started = Instant::now();
        match mode {
            Churn::RuntimeApi => {
                api.add_user(&target, &user).await.unwrap();
                part_a.push(started.elapsed());
                let write = Instant::now();
                api.write_config(&target, &render(&users)).await.unwrap();
                part_b.push(write.elapsed());
            }
            Churn::RewriteAndRestart => {
                api.write_config(&target, &render(&users)).await.unwrap();
                part_a.push(started.elapsed());
                let restart = Instant::now();
                api.restart_core(&target).await.unwrap();
                listening(node.proxy_port).await;
                listening(node.api_port).await;
                part_b.push(restart.elapsed());
            }
        }
        per_change.push(started.elapsed());
    }
    let total = t0.elapsed();
    // let the download run on a moment after the last change, then stop it
    tokio::time::sleep(Duration::from_millis(500)).await;
    let window = t0.elapsed();
    download.stop.store(true, Ordering::Relaxed);
    let _ = tokio::time::timeout(Duration::from_secs(5), download_task).await;
    let restarts = core_starts(&node) - starts_before;
    let (cuts, failed_starts, bytes) = (
        download.cuts.load(Ordering::Relaxed),
        download.failed_starts.load(Ordering::Relaxed),
        download.bytes.load(Ordering::Relaxed) - bytes_at_t0,
    );

    // correctness: the file holds everyone and a sample of the new clients (and the customer) browse
    assert_eq!(clients_on_file(&node).len(), changes + 1, "the file holds every client");
    for user in [&users[0], &users[1], &users[changes / 2], &users[changes]] {
        let client = TestV2rayClient::start(node.client_params(user.uuid)).await;
        let ok = fetch_through(client.http_port, origin.addr).await;
        assert!(ok, "{} browses", user.email);
    }
    match mode {
        Churn::RuntimeApi => {
            assert_eq!(restarts, 0, "no restart on our path");
            assert_eq!(cuts, 0, "the customer's download was never cut on our path");
        }
        Churn::RewriteAndRestart => assert_eq!(restarts, changes, "one restart per change"),
    }

    // a straight line through (users on the node, latency) to extrapolate to 1,000 changes
    let n = per_change.len() as f64;
    let xs: Vec<f64> = (1..=per_change.len()).map(|k| k as f64).collect();
    let ys: Vec<f64> = per_change.iter().map(|d| ms(*d)).collect();
    let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
    let slope = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum::<f64>()
        / xs.iter().map(|x| (x - mx).powi(2)).sum::<f64>();
    let intercept = my - slope * mx;
    let extrapolated_s = (1..=1000).map(|k| intercept + slope * k as f64).sum::<f64>() / 1000.0;

    let (name, a, b) = match mode {
        Churn::RuntimeApi => ("runtime API (ours): gRPC add + file write", "gRPC `AlterInbound` add", "file write"),
        Churn::RewriteAndRestart => {
            ("rewrite + restart per change (naive panel way)", "file write", "restart until the ports listen again")
        }
    };
    format!(
        "#### Churn: {changes} client additions, {name}\n\n\
         {TABLE_HEAD}\n{}\n{}\n{}\n{}\n{}\n\n\
         | measure | value |\n|---|---:|\n\
         | total for {changes} changes | {:.2} s ({:.0} changes/s) |\n\
         | extrapolated total for 1,000 (linear fit of latency vs users on the node) | {:.1} s |\n\
         | core restarts | {restarts} |\n\
         | the customer's open download: cut | {cuts} times |\n\
         | the customer's download: restarts that failed to connect | {failed_starts} |\n\
         | the customer's download: received during the run (+0.5 s) | {:.2} MiB, {:.2} MiB/s = {:.0} % of the \
         {:.2} MiB/s it is served at |",
        table_row("one change, applied and on file (new client can connect)", &per_change),
        table_row(&format!("  of which: {a}"), &part_a),
        table_row(&format!("  of which: {b}"), &part_b),
        table_row("one change, the first 10 (2–11 users on the node)", &per_change[..per_change.len().min(10)]),
        table_row(
            &format!("one change, the last 10 ({}–{} users on the node)", changes.saturating_sub(8), changes + 1),
            &per_change[per_change.len().saturating_sub(10)..],
        ),
        total.as_secs_f64(),
        changes as f64 / total.as_secs_f64(),
        extrapolated_s,
        bytes as f64 / MIB,
        bytes as f64 / MIB / window.as_secs_f64(),
        100.0 * bytes as f64 / window.as_secs_f64() / DOWNLOAD_RATE,
        DOWNLOAD_RATE / MIB,
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_churn_runtime_api() {
    if !node_tools_present() {
        return;
    }
    report(&churn(Churn::RuntimeApi, env_usize("VPNSHOP_BENCH_CHANGES", 100)).await);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_churn_rewrite_and_restart() {
    if !node_tools_present() {
        return;
    }
    report(&churn(Churn::RewriteAndRestart, env_usize("VPNSHOP_BENCH_CHANGES", 100)).await);
}
