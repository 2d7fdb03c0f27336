//! The serve loop's ordinary duties: HTTP/2 with prior knowledge, and a graceful shutdown that lets requests in
//! flight finish while it refuses new connections.

use std::time::Duration;

use sqlx::{Connection, PgConnection, PgPool};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::unknown_token;
use crate::helpers::{spawn_app, spawn_app_with};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn http2_clients_with_prior_knowledge_are_served(pool: PgPool) {
    let app = spawn_app(pool).await;
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap();
    let res = h2.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let res = h2.get(app.url(&format!("/sub/{}", unknown_token()))).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn shutdown_lets_a_request_in_flight_finish_and_accepts_no_new_connections(pool: PgPool) {
    let options = (*pool.connect_options()).clone();
    let app = spawn_app_with(pool, |s| s.http.idle_timeout_secs = 30).await;
    let addr = app.addr;
    // a feed request that waits on a locked table: in flight when shutdown begins
    let mut locker = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let in_flight = tokio::spawn(app.http.get(app.url(&format!("/sub/{}", unknown_token()))).send());
    let start = Instant::now();
    while app.state.public_db.available_permits() == app.state.settings.database.public_connections as usize {
        assert!(start.elapsed() < Duration::from_secs(5), "the feed request never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stopping = tokio::spawn(app.stop());
    // new connections are refused once the listener is gone
    let start = Instant::now();
    while TcpStream::connect(addr).await.is_ok() {
        assert!(start.elapsed() < Duration::from_secs(5), "still accepting connections after shutdown began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(!stopping.is_finished(), "the app stopped with a request in flight");
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let res = in_flight.await.unwrap().expect("the request in flight was answered");
    assert_eq!(res.status(), 404);
    tokio::time::timeout(Duration::from_secs(10), stopping).await.expect("the app stopped").unwrap().unwrap();
}
