//! The inbox when handling goes wrong: a panic is a failed attempt, an update past its attempts is given up
//! without being handled again, and an update cut short by the time limit continues where it stopped.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vpnshop::app::{self, AppState};
use vpnshop::bot::inbox::{self, MAX_ATTEMPTS};
use vpnshop::services::inbox as stored_updates;

use super::{bot_settings, bot_shop, next_id, subscription};
use crate::helpers::test_settings;
use crate::support::{FakeTelegram, TgUser, callback_update, command_update};

/// The row's (attempts, handled, leased, last error).
async fn row(pool: &PgPool, id: i64) -> (i32, bool, bool, Option<String>) {
    sqlx::query_as(
        "SELECT attempts, handled_at IS NOT NULL, locked_by IS NOT NULL, last_error FROM telegram_updates
          WHERE update_id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn wait_until<F: Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_panicking_handler_is_a_failed_attempt_and_its_chat_goes_on_after_the_last(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let mut settings = test_settings();
    bot_settings(&mut settings, &tg);
    let state = AppState::with_pool(settings, pool.clone()).unwrap();
    app::prepare(&state).await.unwrap();
    let telegram = state.telegram.clone().unwrap();
    // a handler that panics on one update and notes the others
    let handled = Arc::new(Mutex::new(Vec::new()));
    let seen = handled.clone();
    let handler: inbox::Handler = Arc::new(move |_, _, stored, _| {
        let seen = seen.clone();
        Box::pin(async move {
            assert!(!stored.payload.contains("boom"), "boom");
            seen.lock().unwrap().push(stored.update_id);
            Ok(())
        })
    });
    let (bad, next) = (i64::from(next_id()), i64::from(next_id()));
    let payloads = vec![format!(r#"{{"update_id": {bad}, "boom": 1}}"#), format!(r#"{{"update_id": {next}}}"#)];
    stored_updates::store(&pool, &[bad, next], &[62, 62], &payloads, &[None, None]).await.unwrap();
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(inbox::run_with(state.clone(), telegram, handler, cancel.clone()));

    // the panic is recorded as a failed attempt at once (not left leased until the lease runs out)
    wait_until("the panic is recorded", || async {
        let (_, _, leased, error) = row(&pool, bad).await;
        !leased && error.is_some_and(|e| e.contains("panicked") && e.contains("boom"))
    })
    .await;
    assert_eq!(row(&pool, bad).await.0, 1);
    assert!(handled.lock().unwrap().is_empty(), "the chat waits for its older update meanwhile");
    // its last attempt (as if it had panicked every time before) gives up on it, and the chat goes on
    sqlx::query("UPDATE telegram_updates SET attempts = $2, locked_until = now() WHERE update_id = $1")
        .bind(bad)
        .bind(MAX_ATTEMPTS - 1)
        .execute(&pool)
        .await
        .unwrap();
    wait_until("the next update of the chat is handled", || async { handled.lock().unwrap().contains(&next) }).await;
    let (attempts, done, _, error) = row(&pool, bad).await;
    assert_eq!((attempts, done), (MAX_ATTEMPTS, true), "given up after its last attempt");
    assert!(error.is_some_and(|e| e.contains("panicked")));
    cancel.cancel();
    worker.await.unwrap();
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_update_whose_attempts_all_ended_without_a_result_is_given_up_without_running_again(pool: PgPool) {
    // an update that took its worker down every time (its lease ran out each time): attempts used up
    let u = TgUser::new(63, "Crash");
    let update = command_update(next_id(), &u, "/start");
    let id = update["update_id"].as_i64().unwrap();
    sqlx::query(
        "INSERT INTO telegram_updates (update_id, chat_id, payload, attempts, locked_by, locked_until)
         VALUES ($1, 63, $2, $3, 'dead', now() - interval '1 second')",
    )
    .bind(id)
    .bind(&update)
    .bind(MAX_ATTEMPTS)
    .execute(&pool)
    .await
    .unwrap();
    let shop = bot_shop(pool).await;
    let pool = &shop.app.state.pool;
    wait_until("the update is settled", || async { row(pool, id).await.1 }).await;
    let (_, _, _, error) = row(pool, id).await;
    assert!(error.is_some_and(|e| e.contains("given up")), "recorded why");
    assert!(shop.tg.calls_of("sendMessage").is_empty(), "not handled again");
    // the chat is not blocked
    shop.deliver(&command_update(next_id(), &u, "/help")).await;
    assert_eq!(shop.tg.calls_of("sendMessage").len(), 1);
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn an_update_cut_short_by_the_time_limit_continues_without_repeating_its_messages(pool: PgPool) {
    // three QR codes go out a second apart (Telegram's limit in one chat): more than the 2 s the update has
    let shop = super::bot_shop_with(pool, |s| s.telegram.handler_timeout_secs = 2).await;
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(64, "Three") };
    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    let sub = subscription(&shop.app.state.pool, u.id, "active", 3, false).await;
    let press = callback_update(next_id(), &u, shop.last_message_id(&u), &format!("q:{sub}"));
    shop.deliver(&press).await;
    let id = press["update_id"].as_i64().unwrap();
    let (attempts, ..) = row(&shop.app.state.pool, id).await;
    assert!(attempts >= 2, "the first attempt was cut short (attempts: {attempts})");
    let mut files: Vec<String> = shop
        .tg
        .calls_of("sendPhoto")
        .iter()
        .map(|c| c.params["photo"]["file_name"].as_str().unwrap_or_default().to_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["device-1.png", "device-2.png", "device-3.png"], "each QR code once");
}
