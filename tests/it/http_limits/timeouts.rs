//! Time limits of the public listener: headers, the first request, idle keep-alive, and request bodies.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep};

use super::{closed_by, read_response, stored_updates};
use crate::bot::{SECRET, bot_shop_with};
use crate::helpers::spawn_app_with;

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_client_trickling_its_headers_is_disconnected_at_the_header_timeout(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.http.header_read_timeout_secs = 2;
        s.http.idle_timeout_secs = 30;
    })
    .await;
    let (mut read, mut write) = TcpStream::connect(app.addr).await.unwrap().into_split();
    let started = Instant::now();
    // one byte a second: a minute's worth of headers, never finished
    let trickle = tokio::spawn(async move {
        for byte in b"GET /healthz HTTP/1.1\r\nHost: shop\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".iter() {
            if write.write_all(&[*byte]).await.is_err() {
                return;
            }
            sleep(Duration::from_secs(1)).await;
        }
    });
    let closed = closed_by(&mut read, started + Duration::from_secs(9)).await;
    trickle.abort();
    let closed = closed.expect("the trickling client was still connected after 9 s").duration_since(started);
    assert!(closed >= Duration::from_millis(1500), "closed after {closed:?}, before the header timeout");
    assert!(closed < Duration::from_secs(6), "closed only after {closed:?} (header timeout 2 s)");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_connection_that_never_sends_a_byte_is_closed_at_the_header_timeout(pool: PgPool) {
    let app = spawn_app_with(pool, |s| {
        s.http.header_read_timeout_secs = 2;
        s.http.idle_timeout_secs = 30;
    })
    .await;
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    let started = Instant::now();
    let closed = closed_by(&mut silent, started + Duration::from_secs(9)).await;
    let closed = closed.expect("a silent connection was still open after 9 s").duration_since(started);
    assert!((Duration::from_millis(1500)..Duration::from_secs(6)).contains(&closed), "closed after {closed:?}");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(pool: PgPool) {
    // the idle timeout shorter than the header timeout, so it is the one that acts
    let app = spawn_app_with(pool, |s| {
        s.http.header_read_timeout_secs = 8;
        s.http.idle_timeout_secs = 1;
    })
    .await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let request = b"GET /healthz HTTP/1.1\r\nHost: shop\r\n\r\n";
    conn.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut conn, Duration::from_secs(5)).await.expect("first answer").status, 200);
    // kept alive: a second request on the same connection, well inside the idle timeout
    sleep(Duration::from_millis(300)).await;
    conn.write_all(request).await.unwrap();
    assert_eq!(read_response(&mut conn, Duration::from_secs(5)).await.expect("second answer").status, 200);
    let idle_from = Instant::now();
    let closed = closed_by(&mut conn, idle_from + Duration::from_secs(7)).await;
    let closed = closed.expect("an idle connection was still open after 7 s").duration_since(idle_from);
    assert!(closed >= Duration::from_millis(700), "closed after {closed:?}: keep-alive did not last");
    assert!(closed < Duration::from_secs(4), "closed only after {closed:?} (idle timeout 1 s)");
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_trickling_webhook_body_is_cut_by_the_request_timeout(pool: PgPool) {
    let shop = bot_shop_with(pool, |s| s.http.request_timeout_secs = 2).await;
    let mut conn = TcpStream::connect(shop.app.addr).await.unwrap();
    let head = format!(
        "POST /telegram/webhook HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
         X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\nContent-Length: 100\r\n\r\n{{\"update_id\": 7"
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    let started = Instant::now();
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            sleep(Duration::from_secs(1)).await;
            if write.write_all(b" ").await.is_err() {
                return;
            }
        }
    });
    let answer = read_response(&mut read, Duration::from_secs(9)).await;
    let answered = started.elapsed();
    let answer = answer.expect("no answer within 9 s to a body trickling in");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/problem+json"));
    assert!(answered < Duration::from_secs(6), "answered after {answered:?} (request timeout 2 s)");
    let closed = closed_by(&mut read, Instant::now() + Duration::from_secs(3)).await;
    trickle.abort();
    assert!(closed.is_some(), "the connection stayed open after the 408");
    assert_eq!(stored_updates(&shop.app.state.pool).await, 0);
}
