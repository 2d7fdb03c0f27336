//! Data caps against a fast client — a benchmark, not a test (`#[ignore]`d; run with `scripts/bench
//! bench_cap`): how far past its cap a client that downloads as fast as the node lets it gets before it is cut
//! off, with production metering (the scheduler on, the `meter` sweep every 10 s from config/default.toml, the
//! near-cap passes of `provision.near_cap_*`, the production removal grace). Each case runs on a node of its
//! own, so one case's cut-off restart does not hold back the next (`hard_cut_min_interval_secs`). The client
//! asks for 8 GiB; asserts only that the subscription ends up limited and the download is cut before it ends;
//! the overrun is reported, never asserted.

use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use vpnshop::domain::status::SubscriptionStatus;
use vpnshop::services::servers::{self, Actor};

use crate::bench::{app_pool, close};
use crate::helpers::{multi_thread, spawn_app_with};
use crate::provisioning::{Shop, links_of, slow_download, status_of, subscribe, wait_node_synced, wait_status};
use crate::support::{Origin, TestNode, TestV2rayClient, node_tools_present};

const MB: i64 = 1024 * 1024;

/// A shop with the scheduler on and production provisioning settings, and a node of its own.
async fn metered_shop(pool: PgPool, n: usize) -> Shop {
    // the earlier cases' nodes are gone: nothing is placed on them, synced or metered any more
    for forget in [
        "UPDATE servers SET enabled = false",
        "UPDATE clients SET desired = 'absent', node_state = 'absent'",
        "DELETE FROM jobs WHERE kind LIKE 'node.%'",
    ] {
        sqlx::query(forget).execute(&pool).await.unwrap();
    }
    let node = TestNode::start().await;
    let key = node.key_path();
    let origin = Origin::start().await;
    let allow = origin.allowance();
    let app = spawn_app_with(pool, move |s| {
        s.provision.allow_private_destinations.push(allow);
        s.provision.ssh_key_path = Some(key);
        s.scheduler.enabled = true;
        s.jobs.poll_interval_ms = 500;
    })
    .await;
    let input = crate::provisioning::node_input(&node, &format!("de-caps-{n}"), 100);
    let server = servers::add(&app.state.pool, &input, Actor::CLI).await.expect("register the node");
    Shop { app, node, server_id: server.id, origin }
}

struct Case {
    cap: i64,
    /// Already used when the download starts.
    used_before: i64,
}

struct Outcome {
    rate_mb_s: f64,
    to_cap: Duration,
    overrun: i64,
    passes: i64,
}

async fn used(pool: &PgPool, sub: i64) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(sum(up_bytes + down_bytes), 0)::int8 FROM traffic t JOIN clients c ON c.id = t.client_id
          WHERE c.subscription_id = $1",
    )
    .bind(sub)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Metering passes done so far in this process (done meter jobs are deleted, so they are counted from the
/// job metrics).
fn metering_passes() -> i64 {
    vpnshop::metrics::handle()
        .render()
        .lines()
        .filter(|l| {
            l.starts_with("vpnshop_jobs_total{") && l.contains("kind=\"node.meter\"") && l.contains("outcome=\"done\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as i64
}

async fn run_case(shop: &Shop, n: i64, case: &Case) -> Outcome {
    let pool = shop.pool();
    let code = format!("de-cap-{n}");
    sqlx::query(
        "INSERT INTO plans (code, location_code, duration_days, seats, data_cap_bytes) VALUES ($1, 'de', $3, 1, $2)",
    )
    .bind(&code)
    .bind(case.cap)
    .bind(30 + n as i32)
    .execute(pool)
    .await
    .unwrap();
    let sub = subscribe(shop, 40_000 + n, &code).await;
    wait_status(pool, sub, SubscriptionStatus::Active).await;
    wait_node_synced(pool, shop.server_id).await;
    sqlx::query("UPDATE traffic SET down_bytes = $2 FROM clients c WHERE c.id = client_id AND c.subscription_id = $1")
        .bind(sub)
        .bind(case.used_before)
        .execute(pool)
        .await
        .unwrap();
    let client = TestV2rayClient::start(links_of(shop, sub).await[0].as_str()).await;
    let passes_before = metering_passes();
    // far more than the cap: a download that stops early was cut
    let chunks = (8 * 1024 * MB / (16 * 1024)) as usize;
    let started = Instant::now();
    let download = slow_download(shop, &client, chunks, 0);
    let limit = Duration::from_secs(120);
    while status_of(pool, sub).await != SubscriptionStatus::Limited {
        assert!(started.elapsed() < limit, "not limited within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let to_cap = started.elapsed();
    let got = download.await.unwrap();
    assert!(got.is_err(), "the download was cut, not finished: {got:?}");
    shop.node.wait_core().await;
    let total = used(pool, sub).await;
    let passes = metering_passes();
    let moved = total - case.used_before;
    Outcome {
        rate_mb_s: moved as f64 / MB as f64 / to_cap.as_secs_f64(),
        to_cap,
        overrun: total - case.cap,
        passes: passes - passes_before,
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
#[ignore = "benchmark: run with scripts/bench"]
async fn bench_cap_overrun(_: PgPoolOptions, connect: PgConnectOptions) {
    if !node_tools_present() {
        return;
    }
    multi_thread(async move {
        let cases = [
            Case { cap: 256 * MB, used_before: 0 },
            Case { cap: 1024 * MB, used_before: 0 },
            Case { cap: 1024 * MB, used_before: 824 * MB },
            Case { cap: 1024 * MB, used_before: 972 * MB },
        ];
        let mut rows = vec![
            "#### Data cap overrun: one client downloading as fast as the node lets it (production metering)"
                .to_owned(),
            String::new(),
            "| cap | used before | client's rate | start → limited | over the cap | % of cap | metering passes |"
                .to_owned(),
            "|---|---|---|---|---|---|---|".to_owned(),
        ];
        let only =
            std::env::var("VPNSHOP_BENCH_CAP_CASES").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(cases.len());
        for (n, case) in cases.iter().enumerate().take(only) {
            let pool = app_pool(connect.clone()).await;
            let shop = metered_shop(pool.clone(), n).await;
            let o = run_case(&shop, n as i64, case).await;
            rows.push(format!(
                "| {} MB | {} MB | {:.0} MB/s | {:.2} s | {:.1} MB | {:.1}% | {} |",
                case.cap / MB,
                case.used_before / MB,
                o.rate_mb_s,
                o.to_cap.as_secs_f64(),
                o.overrun as f64 / MB as f64,
                o.overrun as f64 * 100.0 / case.cap as f64,
                o.passes
            ));
            eprintln!("{}", rows.last().unwrap());
            close(shop, pool).await;
        }
        crate::helpers::bench_report("provisioning.md", &rows.join("\n"));
    });
}
