//! Body limits: a declared length over the limit is refused before any of the body is read, a chunked body is
//! cut where it passes the limit, and the webhook checks its secret before it reads anything.

use std::time::Duration;

use sqlx::PgPool;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::{RawResponse, read_response, stored_updates, unknown_token};
use crate::bot::{SECRET, bot_shop, next_id};
use crate::helpers::spawn_app;

const HUNDRED_MIB: u64 = 100 * 1024 * 1024;

/// Sends a request head declaring `length` bytes of body plus the first few of them, and reads the answer.
async fn declare(addr: std::net::SocketAddr, method_path: &str, headers: &str, length: u64) -> (RawResponse, Duration) {
    let mut conn = TcpStream::connect(addr).await.unwrap();
    let head = format!("{method_path} HTTP/1.1\r\nHost: shop\r\n{headers}Content-Length: {length}\r\n\r\n{{\"upd");
    let started = Instant::now();
    conn.write_all(head.as_bytes()).await.unwrap();
    let answer = read_response(&mut conn, Duration::from_secs(10)).await;
    (answer.unwrap_or_else(|| panic!("{method_path}: no answer within 10 s")), started.elapsed())
}

fn assert_problem(answer: &RawResponse, status: u16) {
    assert_eq!(answer.status, status, "{answer:?}");
    assert_eq!(answer.header("content-type"), Some("application/problem+json"), "{answer:?}");
    assert_eq!(answer.json()["status"], status);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_update_declaring_a_huge_body_gets_413_at_once_and_none_of_it_is_read(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let secret = format!("Content-Type: application/json\r\nX-Telegram-Bot-Api-Secret-Token: {SECRET}\r\n");
    let (answer, took) = declare(shop.app.addr, "POST /telegram/webhook", &secret, HUNDRED_MIB).await;
    assert_problem(&answer, 413);
    assert!(took < Duration::from_secs(2), "answered after {took:?}");
    assert_eq!(stored_updates(&shop.app.state.pool).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_wrong_webhook_secret_with_a_huge_declared_body_gets_401_at_once(pool: PgPool) {
    let shop = bot_shop(pool).await;
    for secret in ["X-Telegram-Bot-Api-Secret-Token: wrong\r\n", ""] {
        let (answer, took) = declare(shop.app.addr, "POST /telegram/webhook", secret, HUNDRED_MIB).await;
        assert_problem(&answer, 401);
        assert!(took < Duration::from_secs(2), "answered after {took:?}");
    }
    assert_eq!(stored_updates(&shop.app.state.pool).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn other_routes_refuse_a_declared_oversized_body_at_once(pool: PgPool) {
    let app = spawn_app(pool).await;
    let token = unknown_token();
    for route in [format!("GET /sub/{token}"), "GET /healthz".to_owned(), "POST /no/such/route".to_owned()] {
        let (answer, took) = declare(app.addr, &route, "", HUNDRED_MIB).await;
        assert_problem(&answer, 413);
        assert!(took < Duration::from_secs(2), "{route}: answered after {took:?}");
    }
    // just over http.max_body_bytes is over too; the same request without a body is served
    let limit = app.state.settings.http.max_body_bytes as u64;
    let (answer, _) = declare(app.addr, &format!("GET /sub/{token}"), "", limit + 1).await;
    assert_problem(&answer, 413);
    let res = app.http.get(app.url(&format!("/sub/{token}"))).send().await.unwrap();
    assert_eq!(res.status(), 404);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_chunked_update_growing_past_the_limit_gets_413_and_is_not_stored(pool: PgPool) {
    let shop = bot_shop(pool).await;
    let conn = TcpStream::connect(shop.app.addr).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    let head = format!(
        "POST /telegram/webhook HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n\
         X-Telegram-Bot-Api-Secret-Token: {SECRET}\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    write.write_all(head.as_bytes()).await.unwrap();
    // 1 MiB in 32 KiB chunks (4× telegram.max_update_bytes, half axum's default limit), then the last chunk
    let sender = tokio::spawn(async move {
        let chunk = format!("8000\r\n{}\r\n", "a".repeat(0x8000));
        for _ in 0..32 {
            if write.write_all(chunk.as_bytes()).await.is_err() {
                return;
            }
        }
        let _ = write.write_all(b"0\r\n\r\n").await;
    });
    let answer = read_response(&mut read, Duration::from_secs(10)).await.expect("an answer to the chunked body");
    sender.abort();
    assert_problem(&answer, 413);
    assert_eq!(stored_updates(&shop.app.state.pool).await, 0);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_large_update_within_the_limit_is_accepted(pool: PgPool) {
    let shop = bot_shop(pool).await;
    // ~200 KiB: long texts, entities and replies make real updates big; the default limit is 256 KiB
    let update = serde_json::json!({"update_id": next_id(), "poll": {"id": "1", "question": "q".repeat(200 * 1024)}});
    assert_eq!(shop.post(&update).await, 200);
    assert_eq!(stored_updates(&shop.app.state.pool).await, 1);
}
