//! An update handled again because its first attempt ended after its answer went out but before it was marked
//! handled (its instance was killed, say): the second attempt leaves what the customer sees alone.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use vpnshop::app::{self, AppState};
use vpnshop::bot::inbox;
use vpnshop::error::AppError;
use vpnshop::services::inbox as stored_updates;

use crate::bot::{bot_settings, next_id, user};
use crate::helpers::test_settings;
use crate::provisioning::eventually;
use crate::support::{FakeTelegram, command_update};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn buy_handled_again_after_its_screen_went_out_keeps_the_purchase_on_that_screen(pool: PgPool) {
    let tg = FakeTelegram::start().await;
    let mut settings = test_settings();
    bot_settings(&mut settings, &tg);
    let state = AppState::with_pool(settings, pool.clone()).unwrap();
    app::prepare(&state).await.unwrap();
    crate::bot::add_node(&pool, "de").await;
    // the bot's own handlers, but the first attempt at /buy dies once its screen is out
    let real = inbox::handlers();
    let died = Arc::new(AtomicBool::new(false));
    let handler: inbox::Handler = Arc::new(move |app, bot, stored, progress| {
        let (real, died) = (real.clone(), died.clone());
        Box::pin(async move {
            let buy = stored.payload.contains("/buy");
            real(app, bot, stored, progress).await?;
            if buy && !died.swap(true, Ordering::SeqCst) {
                return Err(AppError::Conflict("ended after answering".into()).into());
            }
            Ok(())
        })
    });
    let u = user(7501, "en");
    let update = command_update(next_id(), &u, "/buy");
    let id = update["update_id"].as_i64().unwrap();
    stored_updates::store(&pool, &[id], &[u.id], &[update.to_string()], &[None]).await.unwrap();
    let cancel = CancellationToken::new();
    let worker = tokio::spawn(inbox::run_with(state.clone(), state.telegram.clone().unwrap(), handler, cancel.clone()));

    let handled = "SELECT handled_at IS NOT NULL AND attempts = 2 FROM telegram_updates WHERE update_id = $1";
    eventually("the second attempt finished", std::time::Duration::from_secs(15), || async {
        sqlx::query_scalar::<_, bool>(handled).bind(id).fetch_one(&pool).await.unwrap()
    })
    .await;
    cancel.cancel();
    worker.await.unwrap();
    let screens = tg.messages_to(u.id);
    assert_eq!(screens.len(), 1, "the screen went out once: {screens:#?}");
    let buttons = screens[0].reply_markup.as_ref().unwrap().to_string();
    let (orders, draft): (i64, i64) = sqlx::query_as(
        "SELECT count(*), max(o.id) FILTER (WHERE o.status = 'draft') FROM orders o JOIN users u ON u.id = o.user_id
          WHERE u.telegram_id = $1",
    )
    .bind(u.id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(orders, 1, "one purchase started");
    assert!(buttons.contains(&format!("l:{draft}:de")), "the screen's buttons are the open purchase's: {buttons}");
}
