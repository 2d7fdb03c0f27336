//! Job leases are short and renewed while a job runs: a running job is never started twice, a worker that
//! lost its lease stops, a dead instance's work is taken over within a lease, and a restarted instance takes
//! its own leftovers back at once. Once-only keys outlive their jobs; a coalesced job only ever moves earlier.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use vpnshop::config::JobSettings;
use vpnshop::db::jobs::ClaimedJob;
use vpnshop::jobs::maintenance::{CLEANUP_KIND, CleanupJob};
use vpnshop::jobs::worker::Worker;
use vpnshop::jobs::{JobHandler, Outcome, Registry};
use vpnshop::services::queue::{self, JobSpec};

use crate::helpers::{spawn_app_with, test_settings};

fn settings(lease_secs: u64) -> JobSettings {
    JobSettings { lease_secs, timeout_secs: 30, backoff_base_secs: 10, ..test_settings().jobs }
}

/// Writes a row into `test_ticks` every 100 ms for `ms` milliseconds, then finishes.
struct Ticking {
    pool: PgPool,
    ms: u64,
}

#[async_trait::async_trait]
impl JobHandler for Ticking {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        for _ in 0..self.ms / 100 {
            sqlx::query("INSERT INTO test_ticks (job_id) VALUES ($1)").bind(job.id).execute(&self.pool).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Outcome::Done
    }
}

async fn ticks(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM test_ticks").fetch_one(pool).await.unwrap()
}

fn ticking_worker(pool: &PgPool, name: &str, ms: u64, lease_secs: u64) -> Worker {
    let mut registry = Registry::new();
    registry.register("test.tick", Arc::new(Ticking { pool: pool.clone(), ms }));
    Worker::new(name, pool.clone(), Arc::new(registry), settings(lease_secs))
}

async fn job_state(pool: &PgPool, id: i64) -> (String, i32, Option<String>) {
    vpnshop::db::jobs::state(pool, id).await.unwrap().unwrap()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_job_running_longer_than_its_lease_keeps_it_and_runs_once(pool: PgPool) {
    sqlx::query("CREATE TABLE test_ticks (job_id BIGINT NOT NULL)").execute(&pool).await.unwrap();
    let id = JobSpec::new("test.tick", serde_json::json!({})).enqueue(&pool, &settings(1)).await.unwrap().unwrap();
    let first = ticking_worker(&pool, "first", 2500, 1);
    let running = tokio::spawn(async move { first.run_once().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(1600)).await;
    // well past one lease: the heartbeat kept it, so nobody else may start it
    let second = ticking_worker(&pool, "second", 2500, 1);
    assert!(!second.run_once().await.unwrap(), "the running job's lease was renewed");
    assert!(running.await.unwrap());
    assert_eq!(job_state(&pool, id).await, ("done".into(), 1, None), "done in one attempt");
    assert_eq!(ticks(&pool).await, 25, "the handler ran once, to its end");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_worker_that_lost_its_lease_stops_its_handler(pool: PgPool) {
    sqlx::query("CREATE TABLE test_ticks (job_id BIGINT NOT NULL)").execute(&pool).await.unwrap();
    let id = JobSpec::new("test.tick", serde_json::json!({})).enqueue(&pool, &settings(1)).await.unwrap().unwrap();
    let first = ticking_worker(&pool, "first", 5000, 1);
    let running = tokio::spawn(async move { first.run_once().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // another worker took it over (as after a long pause of this one)
    sqlx::query("UPDATE jobs SET locked_by = 'thief', locked_until = now() + interval '1 hour' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(2), running).await.is_ok(), "stopped within a heartbeat");
    let at_stop = ticks(&pool).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(ticks(&pool).await, at_stop, "its handler no longer runs");
    assert!(at_stop < 15, "stopped long before its end: {at_stop} ticks");
    let (status, _, _) = job_state(&pool, id).await;
    assert_eq!(status, "running", "the new owner's claim is left alone");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_once_only_key_outlives_its_finished_job(pool: PgPool) {
    let settings = JobSettings { keep_done_days: 0, ..settings(30) };
    let spec = JobSpec::new(CLEANUP_KIND, serde_json::json!({})).once("notify:42:ready:1");
    let id = spec.enqueue(&pool, &settings).await.unwrap().expect("the first time");
    let mut registry = Registry::new();
    registry.register(CLEANUP_KIND, Arc::new(CleanupJob { pool: pool.clone(), settings: settings.clone() }));
    let worker = Worker::new("w", pool.clone(), Arc::new(registry), settings.clone());
    assert!(worker.run_once().await.unwrap());
    sqlx::query("UPDATE jobs SET finished_at = now() - interval '1 day' WHERE id = $1")
        .bind(id)
        .execute(&pool)
        .await
        .unwrap();
    queue::delete_old_done(&pool, &settings).await.unwrap();
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(left, 0, "the finished job itself is gone");
    assert_eq!(spec.enqueue(&pool, &settings).await.unwrap(), None, "its key still suppresses a repeat");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_waiting_coalesced_job_is_moved_earlier_but_never_doubled_or_delayed(pool: PgPool) {
    let s = settings(30);
    let spec = |secs| {
        JobSpec::new("test.tick", serde_json::json!({})).coalesce("node.meter:7").after(Duration::from_secs(secs))
    };
    let id = spec(60).enqueue(&pool, &s).await.unwrap().unwrap();
    assert_eq!(spec(1).enqueue(&pool, &s).await.unwrap(), Some(id), "moved earlier");
    assert_eq!(spec(30).enqueue(&pool, &s).await.unwrap(), None, "a later one changes nothing");
    let (n, due): (i64, f64) =
        sqlx::query_as("SELECT count(*), max(extract(epoch FROM run_at - now()))::float8 FROM jobs")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(n, 1);
    assert!(due <= 1.1, "due in about a second: {due}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_restarted_instance_takes_back_its_running_jobs_at_once(pool: PgPool) {
    // the previous run of instance shop-a died while running a job; shop-b (alive) runs another
    for (owner, key) in [("shop-a/2", "ours"), ("shop-b/0", "theirs")] {
        sqlx::query(
            "INSERT INTO jobs (kind, payload, status, attempts, locked_by, locked_until, idempotency_key)
             VALUES ($1, '{}', 'running', 1, $2, now() + interval '1 hour', $3)",
        )
        .bind(CLEANUP_KIND)
        .bind(owner)
        .bind(key)
        .execute(&pool)
        .await
        .unwrap();
    }
    // and its inbox was handling a Telegram update
    sqlx::query(
        "INSERT INTO telegram_updates (update_id, chat_id, payload, locked_by, locked_until, attempts)
         VALUES (1, 5, '{\"update_id\": 1}', 'shop-a/inbox', now() + interval '1 hour', 1)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let app = spawn_app_with(pool.clone(), |s| s.instance.name = Some("shop-a".into())).await;
    assert_eq!(app.state.instance, "shop-a");
    let status = |key: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>("SELECT status FROM jobs WHERE idempotency_key = $1")
                .bind(key)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    crate::provisioning::eventually("shop-a's own leftover runs again at once", Duration::from_secs(5), || async {
        status("ours").await == "done"
    })
    .await;
    assert_eq!(status("theirs").await, "running", "another live instance's job is left alone");
    let leased: Option<String> = sqlx::query_scalar("SELECT locked_by FROM telegram_updates WHERE update_id = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(leased, None, "the update its previous run was handling is free to be handled again at once");

    // a second instance with the same name is refused: it would take the first one's work away
    let listeners = vpnshop::app::Listeners::bind(&app.state.settings).await.unwrap();
    let twin = vpnshop::app::AppState::with_pool(app.state.settings.clone(), pool.clone()).unwrap();
    let refused = vpnshop::app::run(twin, listeners, tokio_util::sync::CancellationToken::new()).await;
    assert!(refused.is_err_and(|e| e.to_string().contains("another instance named \"shop-a\"")));
    app.stop().await.unwrap();
}
