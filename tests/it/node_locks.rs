//! Node locks live on connections of their own: nodes that hang (an SSH server that never answers) hold no
//! connection of the main pool, so the rest of the shop keeps its database while they time out.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use vpnshop::services::nodes::RECONCILE_KIND;
use vpnshop::services::servers::{self, Actor};

use crate::helpers::{server_input, spawn_app_with};
use crate::support::run;

/// A TCP server that accepts connections and never says a word (an SSH client waits for its banner).
async fn tarpit() -> (u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (port, accepted, task)
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn twenty_hanging_nodes_do_not_take_the_pool_of_twenty(pool: PgPool) {
    if std::process::Command::new("ssh-keygen").arg("-?").output().is_err() {
        assert!(!crate::helpers::tools_required(), "ssh-keygen is missing");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    run(std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&key));
    let (port, accepted, _tarpit) = tarpit().await;

    // the production pool size, on the test's database
    let app_pool = PgPoolOptions::new()
        .max_connections(20)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let app = spawn_app_with(app_pool.clone(), move |s| {
        s.provision.ssh_key_path = Some(key);
        s.provision.connect_timeout_secs = 20;
        s.jobs.workers = 20;
    })
    .await;
    for i in 0..20 {
        let mut input = server_input(&format!("slow-{i}"), "de");
        input.ssh_host = Some("127.0.0.1".into());
        input.ssh_port = port;
        servers::add(&app.state.pool, &input, Actor::CLI).await.unwrap();
    }
    let settings = &app.state.settings.jobs;
    vpnshop::services::sweeps::enqueue_per_node(&app.state.pool, RECONCILE_KIND, settings).await.unwrap();

    // every worker is now stuck in an SSH handshake with its node's lock held
    let started = Instant::now();
    while accepted.load(Ordering::SeqCst) < 20 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "only {} nodes contacted",
            accepted.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let running: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'running'").fetch_one(&pool).await.unwrap();
    assert_eq!(running, 20, "all twenty syncs are in progress");

    // the app's own pool still serves, at once and in parallel
    let asked = Instant::now();
    let queries = (0..20).map(|_| {
        let p = app_pool.clone();
        async move { sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&p).await }
    });
    for answer in futures::future::join_all(queries).await {
        assert_eq!(answer.expect("a pool connection while the nodes hang"), 1);
    }
    assert!(asked.elapsed() < Duration::from_secs(2), "took {:?}", asked.elapsed());
    let feed = app.http.get(app.url(&format!("/sub/{}", "A".repeat(43)))).send().await.unwrap();
    assert_eq!(feed.status(), 404, "public routes answer too");
    // and no session sits idle in a transaction for them
    let idle_in_tx: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(idle_in_tx, 0, "node locks are not held in open transactions");
    assert_eq!(accepted.load(Ordering::SeqCst), 20, "each node contacted once");
    app.stop().await.unwrap();
    app_pool.close().await;
}
