//! Capacity: the cap on open connections, and the public routes' share of the database pool.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use vpnshop::jobs::maintenance::CLEANUP_KIND;
use vpnshop::services::queue::JobSpec;

use super::{closed_by, read_response, stored_updates, unknown_token};
use crate::bot::{bot_shop_with, next_id};
use crate::helpers::spawn_app_with;

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n";

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn at_the_connection_cap_a_new_connection_waits_until_one_closes(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.http.max_connections = 2;
        s.http.header_read_timeout_secs = 30;
        s.http.idle_timeout_secs = 30;
    })
    .await;
    // two kept-alive connections, each served once: the cap is reached
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        conn.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut conn, Duration::from_secs(5)).await.expect("served").status, 200);
        held.push(conn);
    }
    // a third connects (the kernel's listen backlog) but is not served while the two are open
    let mut third = TcpStream::connect(app.addr).await.unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: shop\r\nConnection: close\r\n\r\n").await.unwrap();
    let early = read_response(&mut third, Duration::from_millis(1500)).await;
    assert!(early.is_none(), "served beyond the cap: {early:?}");
    drop(held.pop());
    let answer = read_response(&mut third, Duration::from_secs(5)).await.expect("served once a connection closed");
    assert_eq!(answer.status, 200);
    assert!(closed_by(&mut third, Instant::now() + Duration::from_secs(3)).await.is_some());
    // and the server goes on: a new client takes the free place
    let res = app.http.get(app.url("/healthz")).timeout(Duration::from_secs(5)).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_feed_flood_holding_the_public_share_leaves_the_pool_to_intake_and_jobs(pool: PgPool) {
    // the app on a small pool of its own, which thirty stuck feed requests could otherwise take whole
    let options = (*pool.connect_options()).clone();
    let small =
        PgPoolOptions::new().max_connections(12).acquire_timeout(Duration::from_secs(3)).connect_with(options.clone());
    let small = small.await.unwrap();
    let shop = bot_shop_with(small.clone(), |s| {
        s.database.max_connections = 12;
        s.database.public_connections = 2;
        s.database.public_wait_ms = 200;
        s.http.rate_limit_burst = 1000;
    })
    .await;
    let app = &shop.app;
    // every feed lookup now waits, holding its connection: the subscriptions table is locked from outside
    let mut locker = PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE").execute(&mut locker).await.unwrap();
    let feeds: Vec<_> = (0..30)
        .map(|_| {
            let request = app.http.get(app.url(&format!("/sub/{}", unknown_token()))).send();
            tokio::spawn(async move {
                let res = request.await.unwrap();
                (res.status().as_u16(), res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned()))
            })
        })
        .collect();
    let start = Instant::now();
    while app.state.public_db.available_permits() > 0 {
        assert!(start.elapsed() < Duration::from_secs(5), "the feed requests never took the public share");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Telegram's deliveries are stored (updates the bot skips, so their handling needs no locked table)
    for _ in 0..5 {
        let update = serde_json::json!({"update_id": next_id(), "poll": {"id": "1"}});
        assert_eq!(shop.post(&update).await, 200, "a delivery while the public share is taken");
    }
    assert_eq!(stored_updates(&small).await, 5);
    // and a job is claimed and done
    let spec = JobSpec::new(CLEANUP_KIND, serde_json::json!({}));
    let job = spec.enqueue(&small, &app.state.settings.jobs).await.unwrap().expect("a new job");
    let start = Instant::now();
    loop {
        let (status, _, error) = vpnshop::db::jobs::state(&small, job).await.unwrap().expect("the job exists");
        if status == "done" {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "job still {status} ({error:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // the flood beyond the share is turned away (within public_wait_ms), asked to come back; the two in the
    // share are answered once the lock is gone
    let start = Instant::now();
    while feeds.iter().filter(|f| f.is_finished()).count() < 28 {
        assert!(start.elapsed() < Duration::from_secs(5), "the requests beyond the share were not turned away");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    let mut answers = Vec::new();
    for feed in feeds {
        answers.push(feed.await.unwrap());
    }
    let busy: Vec<_> = answers.iter().filter(|(status, _)| *status == 503).collect();
    assert_eq!(busy.len(), 28, "{answers:?}");
    assert!(busy.iter().all(|(_, retry)| retry.as_deref() == Some("1")), "{answers:?}");
    assert_eq!(answers.iter().filter(|(status, _)| *status == 404).count(), 2, "{answers:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn one_address_cannot_take_every_connection(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.http.max_connections = 100;
        s.http.max_connections_per_ip = 41;
        s.http.header_read_timeout_secs = 30;
        s.http.idle_timeout_secs = 30;
    })
    .await;
    // one address opens its share and keeps it
    let mut held = Vec::new();
    for _ in 0..41 {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        conn.write_all(HEALTHZ).await.unwrap();
        assert_eq!(read_response(&mut conn, Duration::from_secs(5)).await.expect("served").status, 200);
        held.push(conn);
    }
    // its next connection is closed at once, unanswered
    let mut extra = TcpStream::connect(app.addr).await.unwrap();
    let _ = extra.write_all(HEALTHZ).await;
    assert!(read_response(&mut extra, Duration::from_secs(2)).await.is_none(), "over its share");
    assert!(closed_by(&mut extra, Instant::now() + Duration::from_secs(2)).await.is_some(), "closed at once");
    // another address is served meanwhile
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(app.addr).await.unwrap();
    other.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut other, Duration::from_secs(5)).await.expect("served").status, 200);
    // and the first address gets a place back when one of its connections closes
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = TcpStream::connect(app.addr).await.unwrap();
    again.write_all(HEALTHZ).await.unwrap();
    assert_eq!(read_response(&mut again, Duration::from_secs(5)).await.expect("served again").status, 200);
}
