//! The durable job queue: exactly once under racing workers, retries with backoff, dead letters, lease
//! take-over, idempotency keys, and sweeps that only enqueue.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use vpnshop::config::JobSettings;
use vpnshop::db::jobs::ClaimedJob;
use vpnshop::db::locks::Locks;
use vpnshop::jobs::maintenance::{CLEANUP_KIND, CleanupJob, CleanupSweep};
use vpnshop::jobs::scheduler::run_sweep;
use vpnshop::jobs::worker::Worker;
use vpnshop::jobs::{JobHandler, Outcome, Registry};
use vpnshop::services::queue::{self, JobSpec};

use crate::helpers::test_settings;

fn job_settings() -> JobSettings {
    JobSettings {
        backoff_base_secs: 10,
        backoff_max_secs: 3600,
        max_attempts: 5,
        lease_secs: 60,
        ..test_settings().jobs
    }
}

fn worker(pool: &PgPool, name: &str, registry: Registry, settings: JobSettings) -> Worker {
    Worker::new(name, pool.clone(), Arc::new(registry), settings)
}

/// Records each run in a table of the test's own database.
struct Recording {
    pool: PgPool,
    worker: String,
}

#[async_trait::async_trait]
impl JobHandler for Recording {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        sqlx::query("INSERT INTO test_runs (job_id, worker) VALUES ($1, $2)")
            .bind(job.id)
            .bind(&self.worker)
            .execute(&self.pool)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        Outcome::Done
    }
}

/// Fails its first `failures` attempts.
struct Flaky {
    failures: i32,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl JobHandler for Flaky {
    async fn run(&self, job: &ClaimedJob) -> Outcome {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if job.attempts <= self.failures {
            Outcome::Retry(format!("node down (attempt {})", job.attempts))
        } else {
            Outcome::Done
        }
    }
}

async fn enqueue(pool: &PgPool, kind: &'static str, key: Option<&str>) -> Option<i64> {
    let mut spec = JobSpec::new(kind, serde_json::json!({ "k": key }));
    if let Some(key) = key {
        spec = spec.once(key);
    }
    spec.enqueue(pool, &job_settings()).await.unwrap()
}

async fn state(pool: &PgPool, id: i64) -> (String, i32, Option<String>) {
    vpnshop::db::jobs::state(pool, id).await.unwrap().unwrap()
}

/// Seconds from now until the job's run_at.
async fn due_in(pool: &PgPool, id: i64) -> f64 {
    sqlx::query_scalar("SELECT extract(epoch FROM run_at - now())::float8 FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn make_due(pool: &PgPool, id: i64) {
    sqlx::query("UPDATE jobs SET run_at = now() WHERE id = $1").bind(id).execute(pool).await.unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn every_job_runs_exactly_once_under_two_racing_workers(pool: PgPool) {
    sqlx::query("CREATE TABLE test_runs (job_id BIGINT NOT NULL, worker TEXT NOT NULL)").execute(&pool).await.unwrap();
    for _ in 0..200 {
        enqueue(&pool, "test.record", None).await;
    }
    let mut tasks = Vec::new();
    for name in ["worker-a", "worker-b"] {
        let mut registry = Registry::new();
        registry.register("test.record", Arc::new(Recording { pool: pool.clone(), worker: name.into() }));
        let w = worker(&pool, name, registry, job_settings());
        tasks.push(tokio::spawn(async move { while w.run_once().await.unwrap() {} }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (runs, distinct): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT job_id) FROM test_runs").fetch_one(&pool).await.unwrap();
    assert_eq!((runs, distinct), (200, 200), "each job ran exactly once");
    let per_worker: Vec<(String, i64)> =
        sqlx::query_as("SELECT worker, count(*) FROM test_runs GROUP BY worker ORDER BY worker")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(per_worker.len(), 2, "both workers took part: {per_worker:?}");
    let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'done' AND attempts = 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(done, 200);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_failing_job_is_retried_with_exponential_backoff_until_it_succeeds(pool: PgPool) {
    let id = enqueue(&pool, "test.flaky", None).await.unwrap();
    let flaky = Arc::new(Flaky { failures: 2, calls: AtomicUsize::new(0) });
    let mut registry = Registry::new();
    registry.register("test.flaky", flaky.clone());
    let w = worker(&pool, "w", registry, job_settings());

    assert!(w.run_once().await.unwrap());
    let (status, attempts, error) = state(&pool, id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    assert_eq!(error.as_deref(), Some("node down (attempt 1)"));
    let wait = due_in(&pool, id).await;
    assert!((8.0..=10.5).contains(&wait), "first retry after ~10 s, got {wait}");
    assert!(!w.run_once().await.unwrap(), "not due yet");

    make_due(&pool, id).await;
    assert!(w.run_once().await.unwrap());
    let wait = due_in(&pool, id).await;
    assert!((18.0..=20.5).contains(&wait), "second retry after ~20 s, got {wait}");

    make_due(&pool, id).await;
    assert!(w.run_once().await.unwrap());
    let (status, attempts, error) = state(&pool, id).await;
    assert_eq!((status.as_str(), attempts, error), ("done", 3, None));
    assert_eq!(flaky.calls.load(Ordering::SeqCst), 3);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_job_is_dead_after_its_last_attempt_and_keeps_the_error(pool: PgPool) {
    let settings = JobSettings { max_attempts: 3, ..job_settings() };
    let id = JobSpec::new("test.flaky", serde_json::json!({})).enqueue(&pool, &settings).await.unwrap().unwrap();
    let mut registry = Registry::new();
    registry.register("test.flaky", Arc::new(Flaky { failures: 99, calls: AtomicUsize::new(0) }));
    let w = worker(&pool, "w", registry, settings);
    for _ in 0..3 {
        make_due(&pool, id).await;
        assert!(w.run_once().await.unwrap());
    }
    let (status, attempts, error) = state(&pool, id).await;
    assert_eq!((status.as_str(), attempts), ("dead", 3));
    assert_eq!(error.as_deref(), Some("node down (attempt 3)"));
    make_due(&pool, id).await;
    assert!(!w.run_once().await.unwrap(), "a dead job is never claimed again");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_crashed_workers_job_is_taken_over_when_its_lease_ends(pool: PgPool) {
    sqlx::query("CREATE TABLE test_runs (job_id BIGINT NOT NULL, worker TEXT NOT NULL)").execute(&pool).await.unwrap();
    let id = enqueue(&pool, "test.record", None).await.unwrap();
    let short = JobSettings { lease_secs: 1, ..job_settings() };
    // "ghost" claims the job and dies without finishing it
    let claimed = queue::claim(&pool, "ghost", &short, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    let mut registry = Registry::new();
    registry.register("test.record", Arc::new(Recording { pool: pool.clone(), worker: "heir".into() }));
    let heir = worker(&pool, "heir", registry, job_settings());
    assert!(!heir.run_once().await.unwrap(), "the lease still holds");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert!(heir.run_once().await.unwrap(), "taken over after the lease");
    let (status, attempts, _) = state(&pool, id).await;
    assert_eq!((status.as_str(), attempts), ("done", 2));
    // the ghost coming back cannot overwrite the result
    let stale = queue::finish(&pool, &claimed[0], "ghost", &Outcome::Retry("late".into()), &short).await.unwrap();
    assert!(!stale);
    assert_eq!(state(&pool, id).await.0, "done");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_idempotency_key_enqueues_one_job(pool: PgPool) {
    let first = enqueue(&pool, "test.record", Some("provision:sub-1")).await;
    let second = enqueue(&pool, "test.record", Some("provision:sub-1")).await;
    assert!(first.is_some());
    assert_eq!(second, None);
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs").fetch_one(&pool).await.unwrap();
    assert_eq!(n, 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_job_of_unknown_kind_is_dead_at_once(pool: PgPool) {
    let id = enqueue(&pool, "nobody.handles.this", None).await.unwrap();
    let w = worker(&pool, "w", Registry::new(), job_settings());
    assert!(w.run_once().await.unwrap());
    let (status, attempts, error) = state(&pool, id).await;
    assert_eq!((status.as_str(), attempts), ("dead", 1));
    assert!(error.unwrap().contains("no handler"));
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn the_cleanup_sweep_enqueues_once_per_hour_and_its_job_deletes_old_done_jobs(pool: PgPool) {
    let settings = job_settings();
    let sweep = CleanupSweep { pool: pool.clone(), settings: settings.clone() };
    let locks = Locks::for_pool(&pool, 2, Duration::from_secs(5));
    assert_eq!(run_sweep(&locks, "jobs_cleanup", &sweep).await.unwrap(), Some(1));
    assert_eq!(run_sweep(&locks, "jobs_cleanup", &sweep).await.unwrap(), Some(0), "same hour: nothing new");

    // an old done job, a fresh done job and an old dead job
    for (status, age) in [("done", 30), ("done", 0), ("dead", 30)] {
        sqlx::query(
            "INSERT INTO jobs (kind, status, finished_at) VALUES ('x.y', $1, now() - make_interval(days => $2))",
        )
        .bind(status)
        .bind(age)
        .execute(&pool)
        .await
        .unwrap();
    }
    let mut registry = Registry::new();
    registry.register(CLEANUP_KIND, Arc::new(CleanupJob { pool: pool.clone(), settings: settings.clone() }));
    let w = worker(&pool, "w", registry, settings);
    assert!(w.run_once().await.unwrap());
    let left: Vec<(String, String)> =
        sqlx::query_as("SELECT kind, status FROM jobs ORDER BY id").fetch_all(&pool).await.unwrap();
    assert_eq!(
        left,
        vec![(CLEANUP_KIND.into(), "done".into()), ("x.y".into(), "done".into()), ("x.y".into(), "dead".into())],
        "only the old done job is gone; dead jobs stay for operators"
    );
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_sweep_running_elsewhere_is_skipped(pool: PgPool) {
    let sweep = CleanupSweep { pool: pool.clone(), settings: job_settings() };
    let locks = Locks::for_pool(&pool, 2, Duration::from_secs(5));
    // another instance holds the sweep's lock in an open transaction
    let mut other = pool.begin().await.unwrap();
    let key = vpnshop::jobs::scheduler::lock_key("jobs_cleanup");
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)").bind(key).fetch_one(&mut *other).await.unwrap();
    assert!(got);
    assert_eq!(run_sweep(&locks, "jobs_cleanup", &sweep).await.unwrap(), None);
    other.rollback().await.unwrap();
    assert_eq!(run_sweep(&locks, "jobs_cleanup", &sweep).await.unwrap(), Some(1));
    locks.close().await;
}

/// The shipped configuration schedules only sweeps the app has, with the bot and without it (tests turn the
/// scheduler off, so a sweep named in config/default.toml but missing would only show when an operator starts).
#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn every_configured_sweep_exists_with_and_without_the_bot(pool: PgPool) {
    for bot in [false, true] {
        let mut settings = test_settings();
        if bot {
            settings.telegram.token = Some("123:test".to_owned().into());
        }
        assert!(!settings.scheduler.sweeps.is_empty());
        let state = vpnshop::app::AppState::with_pool(settings.clone(), pool.clone()).unwrap();
        assert_eq!(state.telegram.is_some(), bot);
        let known = vpnshop::app::sweeps(&state);
        for name in settings.scheduler.sweeps.keys() {
            assert!(known.contains_key(name), "scheduler.sweeps.{name} is not a sweep (bot: {bot})");
        }
    }
}
