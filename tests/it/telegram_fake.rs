//! The fake Bot API, driven by a real teloxide `Bot`: what it answers, what it records, how it fails, and that
//! its update builders are updates teloxide reads.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use teloxide::net::Download;
use teloxide::prelude::*;
use teloxide::types::{
    AllowedUpdate, BotCommand, CallbackQueryId, FileId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile,
    InputMedia, InputMediaPhoto, MessageEntityKind, MessageId, ParseMode, Update, UpdateKind,
};
use teloxide::{ApiError, RequestError};

use crate::support::{
    BOT_ID, BOT_USERNAME, Failure, FakeTelegram, TgUser, callback_update, command_update, document_update,
    message_update, photo_update,
};

const CHAT: ChatId = ChatId(777_001);
/// Bytes that look like a PNG and hold a CRLF + dashes, to trip a naive multipart reader.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\r\n--not-a-boundary\r\n\xff\xfe tail";

fn bot(tg: &FakeTelegram) -> Bot {
    Bot::new(tg.token()).set_api_url(tg.url())
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn keyboard(data: &str) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new([[InlineKeyboardButton::callback("Buy", data)]])
}

/// A raw POST to a method, for what teloxide cannot send; returns the HTTP status and the JSON body.
async fn raw_call(tg: &FakeTelegram, method: &str, body: Value) -> (u16, Value) {
    let url = format!("{}bot{}/{method}", tg.url(), tg.token());
    let res = reqwest::Client::new().post(url).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn get_me_answers_as_the_test_bot() {
    let tg = FakeTelegram::start().await;
    let me = bot(&tg).get_me().await.unwrap();
    assert_eq!(me.username(), BOT_USERNAME);
    assert_eq!(i64::try_from(me.id.0).unwrap(), BOT_ID);
    assert!(me.is_bot);
    let calls = tg.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "getMe", "recorded in the Bot API spelling though teloxide sends GetMe");
    assert_eq!(tg.calls_of("GetMe").len(), 1, "method names match case-insensitively");
}

#[tokio::test]
async fn sent_messages_get_fresh_ids_and_their_params_are_recorded() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let first = bot
        .send_message(CHAT, "<b>Plans</b> &amp; prices")
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard("p:1"))
        .await
        .unwrap();
    let second = bot.send_message(CHAT, "again").await.unwrap();
    assert!(second.id.0 > first.id.0);
    assert_eq!(first.chat.id, CHAT);
    assert_eq!(first.text(), Some("<b>Plans</b> &amp; prices"));
    assert_eq!(first.reply_markup(), Some(&keyboard("p:1")));
    assert!(first.from.as_ref().is_some_and(|u| u.is_bot));

    let sent = tg.calls_of("sendMessage");
    assert_eq!(sent.len(), 2);
    let params = &sent[0].params;
    assert_eq!(params["chat_id"], CHAT.0);
    assert_eq!(params["parse_mode"], "HTML");
    assert_eq!(params["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "p:1");
    let kept = tg.messages_to(CHAT.0);
    assert_eq!(kept.iter().map(|m| m.message_id).collect::<Vec<_>>(), [first.id.0, second.id.0]);
    assert_eq!(tg.message(CHAT.0, second.id.0).unwrap().text.as_deref(), Some("again"));
}

#[tokio::test]
async fn the_real_api_limits_are_enforced() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let long = bot.send_message(CHAT, "x".repeat(4097)).await.unwrap_err();
    assert!(matches!(long, RequestError::Api(ApiError::MessageIsTooLong)), "{long:?}");
    // 4096 visible characters are fine even with HTML tags around them
    let html = format!("<b>{}</b>", "x".repeat(4096));
    bot.send_message(CHAT, html).parse_mode(ParseMode::Html).await.unwrap();
    let data = bot.send_message(CHAT, "hi").reply_markup(keyboard(&"d".repeat(65))).await.unwrap_err();
    assert!(matches!(data, RequestError::Api(ApiError::ButtonDataInvalid)), "{data:?}");
}

#[tokio::test]
async fn edits_and_deletes_follow_the_real_api_rules() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let sent = bot.send_message(CHAT, "Pick a plan").reply_markup(keyboard("p:1")).await.unwrap();

    let edited = bot.edit_message_text(CHAT, sent.id, "Paid").reply_markup(keyboard("p:2")).await.unwrap();
    assert_eq!((edited.id, edited.text()), (sent.id, Some("Paid")));
    assert!(edited.edit_date().is_some());
    let same = bot.edit_message_text(CHAT, sent.id, "Paid").reply_markup(keyboard("p:2")).await.unwrap_err();
    assert!(matches!(same, RequestError::Api(ApiError::MessageNotModified)), "{same:?}");
    // leaving the keyboard out removes it, which is a change
    let bare = bot.edit_message_text(CHAT, sent.id, "Paid").await.unwrap();
    assert!(bare.reply_markup().is_none());
    let markup = bot.edit_message_reply_markup(CHAT, sent.id).reply_markup(keyboard("p:3")).await.unwrap();
    assert_eq!(markup.reply_markup(), Some(&keyboard("p:3")));
    assert_eq!(
        tg.message(CHAT.0, sent.id.0).unwrap().reply_markup.unwrap()["inline_keyboard"][0][0]["callback_data"],
        "p:3"
    );

    let unknown = bot.edit_message_text(CHAT, MessageId(1), "x").await.unwrap_err();
    assert!(matches!(unknown, RequestError::Api(ApiError::MessageToEditNotFound)), "{unknown:?}");
    bot.delete_message(CHAT, sent.id).await.unwrap();
    assert!(tg.message(CHAT.0, sent.id.0).is_none());
    let gone = bot.delete_message(CHAT, sent.id).await.unwrap_err();
    assert!(matches!(gone, RequestError::Api(ApiError::MessageToDeleteNotFound)), "{gone:?}");

    tg.set_strict_edits(false);
    let lenient = bot.edit_message_text(CHAT, MessageId(1), "x").await.unwrap();
    assert_eq!(lenient.text(), Some("x"));
    bot.edit_message_text(CHAT, MessageId(1), "x").await.expect("an unchanged edit passes when lenient");
    bot.delete_message(CHAT, MessageId(99)).await.expect("an unknown delete passes when lenient");
}

#[tokio::test]
async fn callback_answers_and_commands_are_answered_true() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    bot.answer_callback_query(CallbackQueryId("cbq-1".into())).text("Done").await.unwrap();
    assert_eq!(tg.calls_of("answerCallbackQuery")[0].params, json!({"callback_query_id": "cbq-1", "text": "Done"}));
    bot.set_my_commands([BotCommand::new("start", "Start"), BotCommand::new("plans", "Plans")]).await.unwrap();
    let commands = bot.get_my_commands().await.unwrap();
    assert_eq!(commands.iter().map(|c| c.command.as_str()).collect::<Vec<_>>(), ["start", "plans"]);
}

#[tokio::test]
async fn unknown_methods_and_wrong_tokens_get_the_real_errors() {
    let tg = FakeTelegram::start().await;
    let (status, body) = raw_call(&tg, "sendTelepathy", json!({"chat_id": 1})).await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"ok": false, "error_code": 404, "description": "Not Found: method not found"}));
    assert_eq!(tg.calls_of("sendTelepathy")[0].params, json!({"chat_id": 1}));

    let wrong = Bot::new("1:wrong").set_api_url(tg.url()).get_me().await.unwrap_err();
    assert!(matches!(wrong, RequestError::Api(ApiError::InvalidToken)), "{wrong:?}");
}

#[tokio::test]
async fn photos_upload_as_multipart_and_the_file_is_recorded_and_served() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let sent = bot
        .send_photo(CHAT, InputFile::memory(PNG).file_name("qr.png"))
        .caption("Your <b>config</b>")
        .parse_mode(ParseMode::Html)
        .reply_markup(keyboard("c:1"))
        .await
        .unwrap();
    assert_eq!(sent.caption(), Some("Your <b>config</b>"));
    let photo = sent.photo().unwrap().last().unwrap().clone();

    let params = &tg.calls_of("sendPhoto")[0].params;
    assert_eq!(params["photo"], json!({"file_name": "qr.png", "len": PNG.len(), "sha256": sha256(PNG)}));
    assert_eq!(params["chat_id"], CHAT.0);
    assert_eq!(params["caption"], "Your <b>config</b>");
    assert_eq!(params["reply_markup"]["inline_keyboard"][0][0]["callback_data"], "c:1");
    assert_eq!(tg.message(CHAT.0, sent.id.0).unwrap().file_id.as_deref(), Some(photo.file.id.0.as_str()));

    // the sent photo can be fetched back like any file
    let file = bot.get_file(photo.file.id).await.unwrap();
    let mut bytes = Vec::new();
    bot.download_file(&file.path, &mut bytes).await.unwrap();
    assert_eq!(bytes, PNG);
}

#[tokio::test]
async fn an_album_records_every_upload() {
    let tg = FakeTelegram::start().await;
    let photo = |name: &'static str| {
        InputMedia::Photo(InputMediaPhoto::new(InputFile::memory(name.as_bytes().to_vec()).file_name(name)))
    };
    let sent = bot(&tg).send_media_group(CHAT, [photo("a.png"), photo("b.png")]).await.unwrap();
    assert_eq!(sent.len(), 2);
    assert!(sent[0].media_group_id().is_some() && sent[0].media_group_id() == sent[1].media_group_id());
    let media = &tg.calls_of("sendMediaGroup")[0].params["media"];
    assert_eq!(media[1]["media"], json!({"file_name": "b.png", "len": 5, "sha256": sha256(b"b.png")}));
    assert_eq!(media[0]["type"], "photo");
}

#[tokio::test]
async fn added_files_are_served_by_get_file_and_download() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    tg.add_file("AgAC-receipt", "AQAD-receipt", PNG);
    let file = bot.get_file(FileId("AgAC-receipt".into())).await.unwrap();
    assert_eq!((file.meta.unique_id.0.as_str(), file.meta.size as usize), ("AQAD-receipt", PNG.len()));
    let mut bytes = Vec::new();
    bot.download_file(&file.path, &mut bytes).await.unwrap();
    assert_eq!(bytes, PNG);
    assert_eq!(tg.calls_of("downloadFile")[0].params["file_path"], file.path.as_str());

    let unknown = bot.get_file(FileId("nope".into())).await.unwrap_err();
    assert!(matches!(unknown, RequestError::Api(ApiError::Unknown(ref d)) if d == "Bad Request: invalid file_id"));
    let mut sink = Vec::new();
    assert!(bot.download_file("files/missing.bin", &mut sink).await.is_err(), "a missing path is a 404");
}

#[tokio::test]
async fn the_webhook_is_recorded_reported_and_blocks_polling() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let url: url::Url = "https://shop.example.com/telegram/webhook".parse().unwrap();
    bot.set_webhook(url.clone())
        .secret_token("s3cret_-token")
        .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery])
        .max_connections(40)
        .await
        .unwrap();
    let params = &tg.calls_of("setWebhook")[0].params;
    assert_eq!(params["url"], url.as_str());
    assert_eq!(params["secret_token"], "s3cret_-token");
    assert_eq!(params["allowed_updates"], json!(["message", "callback_query"]));
    assert_eq!(params["max_connections"], 40);
    assert_eq!(tg.webhook().unwrap()["secret_token"], "s3cret_-token");

    let info = bot.get_webhook_info().await.unwrap();
    assert_eq!((info.url, info.max_connections), (Some(url), Some(40)));
    assert_eq!(info.allowed_updates, Some(vec![AllowedUpdate::Message, AllowedUpdate::CallbackQuery]));
    assert!(bot.get_updates().await.is_err(), "getUpdates conflicts with an active webhook");

    let bad = bot.set_webhook("https://x.example/".parse().unwrap()).secret_token("no spaces").await.unwrap_err();
    assert!(matches!(bad, RequestError::Api(_)), "{bad:?}");
    bot.delete_webhook().await.unwrap();
    assert!(tg.webhook().is_none());
    assert_eq!(bot.get_webhook_info().await.unwrap().url, None);
}

#[tokio::test]
async fn get_updates_hands_out_queued_updates_from_the_offset() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let user = TgUser::new(42, "Sara");
    tg.queue_update(message_update(1, &user, "hello"));
    tg.queue_update(command_update(2, &user, "/start"));
    let ids = |updates: Vec<Update>| updates.into_iter().map(|u| u.id.0).collect::<Vec<_>>();
    let first = bot.get_updates().await.unwrap();
    assert!(first.iter().all(|u| matches!(u.kind, UpdateKind::Message(_))), "{first:?}");
    assert_eq!(ids(first), [1, 2]);
    assert_eq!(ids(bot.get_updates().offset(2).await.unwrap()), [2]);
    assert_eq!(ids(bot.get_updates().offset(3).await.unwrap()), Vec::<u32>::new());

    // a long poll returns as soon as an update is queued
    let poll = tokio::spawn(async move { bot.get_updates().offset(3).timeout(30).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let start = Instant::now();
    tg.queue_update(message_update(3, &user, "later"));
    assert_eq!(ids(poll.await.unwrap().unwrap()), [3]);
    assert!(start.elapsed() < Duration::from_millis(800), "{:?}", start.elapsed());
}

#[tokio::test]
async fn rate_limits_surface_as_retry_after_and_pass() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    tg.fail_next("sendMessage", 1, Failure::RetryAfter(7));
    let err = bot.send_message(CHAT, "hi").await.unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(s) if s.seconds() == 7), "{err:?}");
    bot.send_message(CHAT, "hi").await.expect("only one call fails");
    assert_eq!(tg.calls_of("sendMessage").len(), 2, "failed calls are recorded too");

    tg.fail_next("sendMessage", 1, Failure::RetryAfter(3));
    let (status, body) = raw_call(&tg, "sendMessage", json!({"chat_id": CHAT.0, "text": "hi"})).await;
    assert_eq!(status, 429);
    assert_eq!(body["parameters"], json!({"retry_after": 3}));
    assert_eq!((body["ok"].clone(), body["error_code"].clone()), (json!(false), json!(429)));
}

#[tokio::test]
async fn blocked_users_and_other_statuses_surface_as_api_errors() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    tg.fail_next("SendMessage", 2, Failure::Blocked);
    tg.fail_next("sendMessage", 1, Failure::Status(400, "Bad Request: chat not found".into()));
    for _ in 0..2 {
        let err = bot.send_message(CHAT, "hi").await.unwrap_err();
        assert!(matches!(err, RequestError::Api(ApiError::BotBlocked)), "{err:?}");
    }
    let err = bot.send_message(CHAT, "hi").await.unwrap_err();
    assert!(matches!(err, RequestError::Api(ApiError::ChatNotFound)), "{err:?}");
    bot.send_message(CHAT, "hi").await.unwrap();
}

#[tokio::test]
async fn wait_for_returns_once_the_calls_arrived_and_clear_forgets_them() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        bot.send_message(CHAT, "late").await.unwrap();
    });
    let calls = tg.wait_for("sendMessage", 1, Duration::from_secs(5)).await;
    assert_eq!(calls[0].params["text"], "late");
    assert!(calls[0].at.elapsed() < Duration::from_secs(5));
    sender.await.unwrap();
    tg.clear();
    assert!(tg.calls().is_empty());
}

#[tokio::test]
async fn update_builders_are_updates_teloxide_reads() {
    let user = TgUser { username: Some("sara_k".into()), language_code: Some("fa".into()), ..TgUser::new(42, "Sara") };
    // from text, as teloxide reads a webhook body or getUpdates (see the next test for why not `from_value`)
    let read = |json: Value| serde_json::from_str::<Update>(&json.to_string()).expect("a valid update");

    let UpdateKind::Message(text) = read(message_update(1, &user, "hi")).kind else { panic!("not a message") };
    let from = text.from.as_ref().unwrap();
    assert_eq!(
        (text.text(), from.language_code.as_deref(), from.username.as_deref()),
        (Some("hi"), Some("fa"), Some("sara_k"))
    );
    assert_eq!(text.chat.id, ChatId(42));
    assert!(text.chat.is_private());

    let UpdateKind::Message(command) = read(command_update(2, &user, "/start ref7")).kind else { panic!() };
    let entity = &command.entities().unwrap()[0];
    assert_eq!((&entity.kind, entity.offset, entity.length), (&MessageEntityKind::BotCommand, 0, 6));

    let update = read(callback_update(3, &user, 1001, "p:1"));
    assert_eq!(update.id.0, 3);
    let UpdateKind::CallbackQuery(query) = update.kind else { panic!("not a callback query") };
    assert_eq!((query.data.as_deref(), query.from.id.0), (Some("p:1"), 42));
    let message = query.regular_message().expect("an accessible message");
    assert_eq!((message.id, message.chat.id), (MessageId(1001), ChatId(42)));
    assert!(message.from.as_ref().is_some_and(|u| u.is_bot));

    let UpdateKind::Message(photo) = read(photo_update(4, &user, "AgAC-big", "AQAD-big")).kind else { panic!() };
    let sizes = photo.photo().unwrap();
    assert_eq!((sizes.len(), sizes.last().unwrap().file.id.0.as_str()), (3, "AgAC-big"));
    assert!(sizes.windows(2).all(|w| w[0].width < w[1].width), "largest last");

    let document = document_update(5, &user, "BQAC-doc", "AgAD-doc", "receipt.pdf", "application/pdf");
    let UpdateKind::Message(document) = read(document).kind else { panic!() };
    let document = document.document().unwrap();
    assert_eq!((document.file.id.0.as_str(), document.file_name.as_deref()), ("BQAC-doc", Some("receipt.pdf")));
}

/// A teloxide 0.17 pitfall the durable inbox must avoid: `UpdateKind` reads its key as `&str`, and on a
/// `serde_json::Value` (owned keys) that fails and skips the key, so the update comes out as
/// `UpdateKind::Error`. Stored JSON must be parsed from text (`from_str(&value.to_string())`, `from_slice`).
#[test]
fn an_update_from_a_json_value_must_be_parsed_from_text() {
    let update = message_update(1, &TgUser::new(42, "Sara"), "hi");
    let from_value: Update = serde_json::from_value(update.clone()).unwrap();
    assert!(matches!(from_value.kind, UpdateKind::Error(_)), "teloxide fixed it: {from_value:?}");
    let from_text: Update = serde_json::from_str(&update.to_string()).unwrap();
    assert!(matches!(from_text.kind, UpdateKind::Message(_)));
}

#[tokio::test]
async fn telegrams_rate_limits_are_enforced_when_asked() {
    let tg = FakeTelegram::start().await;
    let bot = bot(&tg);
    bot.send_message(CHAT, "one").await.unwrap();
    bot.send_message(CHAT, "two").await.expect("not enforced by default");
    tg.enforce_limits();
    bot.send_message(CHAT, "three").await.unwrap();
    let err = bot.send_message(CHAT, "four").await.unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(s) if s.seconds() == 1), "one message a second in a chat: {err:?}");
    let sent = bot.send_message(ChatId(777_002), "another chat").await.expect("other chats are not held up");
    bot.edit_message_text(ChatId(777_002), sent.id, "edited").await.expect("an edit is not a new message");
    // thirty messages a second overall (new or edited): 3 so far
    for i in 0..27 {
        bot.send_message(ChatId(800_000 + i), "bulk").await.unwrap();
    }
    let err = bot.send_message(ChatId(900_000), "one too many").await.unwrap_err();
    assert!(matches!(err, RequestError::RetryAfter(_)), "{err:?}");
    assert_eq!(tg.rate_limited(), 2);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    bot.send_message(CHAT, "a second later").await.expect("both windows passed");
}
