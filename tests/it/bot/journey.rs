//! A customer's whole journey on a real node: /start → free trial → the "ready" message with links and QR
//! codes → a real v2ray client connects with the link from the message → My services shows it.

use std::time::Duration;

use sqlx::PgPool;
use vpnshop::domain::status::SubscriptionStatus;

use super::{BotShop, bot_settings, next_id};
use crate::helpers::spawn_app_with;
use crate::provisioning::{register_node, wait_status};
use crate::support::{
    FakeTelegram, Origin, TestNode, TestV2rayClient, TgUser, callback_update, command_update, node_tools_present,
};

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn from_start_to_a_working_config_through_the_bot(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let node = TestNode::start().await;
    let tg = FakeTelegram::start().await;
    let key = node.key_path();
    let origin = Origin::start().await;
    let app = spawn_app_with(pool, |s| {
        bot_settings(s, &tg);
        s.provision.allow_private_destinations.push(origin.allowance());
        s.provision.ssh_key_path = Some(key);
    })
    .await;
    register_node(&app.state.pool, &node).await;
    let shop = BotShop { app, tg };
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(77, "Max") };

    shop.deliver(&command_update(next_id(), &u, "/start")).await;
    shop.deliver(&callback_update(next_id(), &u, shop.last_message_id(&u), "t")).await;
    let de = shop.screen(&u).data("tl:de");
    shop.deliver(&callback_update(next_id(), &u, shop.last_message_id(&u), &de)).await;
    let sub: i64 = sqlx::query_scalar("SELECT id FROM subscriptions WHERE is_trial")
        .fetch_one(&shop.app.state.pool)
        .await
        .unwrap();
    wait_status(&shop.app.state.pool, sub, SubscriptionStatus::Active).await;

    // the ready message with the link, then (in that order) a QR code per device
    let photo = shop.tg.wait_for("sendPhoto", 1, Duration::from_secs(20)).await;
    assert!(photo[0].params["photo"]["len"].as_u64().unwrap_or(0) > 1000, "a real PNG: {:?}", photo[0].params);
    let ready_call = shop
        .tg
        .calls_of("sendMessage")
        .into_iter()
        .find(|c| c.params["text"].as_str().is_some_and(|t| t.contains("is ready")))
        .expect("the ready message came before its QR code");
    assert!(ready_call.at <= photo[0].at);
    let ready = ready_call.params["text"].as_str().unwrap().to_owned();
    assert!(ready.contains("/sub/"), "{ready}");
    let start = ready.find("vmess://").expect("a vmess link in the message");
    let link: String = ready[start..].chars().take_while(|c| !c.is_whitespace() && *c != '<').collect();
    let client = TestV2rayClient::start(link.as_str()).await;
    assert_eq!(
        client.fetch(&origin.url("/")).await.unwrap(),
        crate::support::GREETING,
        "the link from the message works"
    );

    // My services: the subscription, its details, its QR codes
    shop.deliver(&command_update(next_id(), &u, "/services")).await;
    let list = shop.screen(&u);
    let detail_button = list.data(&format!("v:{sub}"));
    shop.deliver(&callback_update(next_id(), &u, shop.last_message_id(&u), &detail_button)).await;
    let detail = shop.screen(&u);
    assert!(detail.text.contains("/sub/") && detail.text.contains("vmess://"), "{}", detail.text);
    assert!(detail.text.contains("1 GB") || detail.text.contains("of 1 GB"), "trial data shown: {}", detail.text);
    let photos_before = shop.tg.calls_of("sendPhoto").len();
    shop.deliver(&callback_update(next_id(), &u, shop.last_message_id(&u), &detail.data(&format!("q:{sub}")))).await;
    assert_eq!(shop.tg.calls_of("sendPhoto").len(), photos_before + 1, "one QR code for the one device");
}
