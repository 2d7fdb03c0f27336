//! Traces end to end, with the real binary: a customer's tap is one trace from the Telegram webhook through the
//! inbox and the job it enqueued to the node operations, exported over OTLP/HTTP to a fake collector; the JSON
//! log lines of that work carry its trace id; no secret reaches a span. Without an endpoint nothing is exported,
//! yet log lines (and Sentry events) still carry trace ids, and a job still continues the trace it was enqueued in.

mod collector;
mod shop;

use std::collections::HashMap;

use serde_json::Value;
use sqlx::PgPool;

use crate::bot::{SECRET, Screen, next_id};
use crate::support::{FakeTelegram, TestNode, TgUser, callback_update, command_update, node_tools_present};
use collector::{Collector, Span};
use shop::{Shop, wait_for};

/// The latest message the bot sent or edited in this chat.
fn screen(tg: &FakeTelegram, u: &TgUser) -> Screen {
    let call = tg
        .calls()
        .into_iter()
        .rev()
        .find(|c| {
            matches!(c.method.as_str(), "sendMessage" | "editMessageText") && c.params["chat_id"].as_i64() == Some(u.id)
        })
        .expect("the bot answered");
    Screen::from(&call)
}

/// The trace id in the `traceparent` stored with an update.
async fn trace_of_update(pool: &PgPool, update_id: i64) -> String {
    let parent: Option<String> = sqlx::query_scalar("SELECT trace_parent FROM telegram_updates WHERE update_id = $1")
        .bind(update_id)
        .fetch_one(pool)
        .await
        .unwrap();
    let parent = parent.expect("the update was stored with the webhook request's trace");
    parent.split('-').nth(1).unwrap().to_owned()
}

/// The spans from `span` up to its trace's root.
fn ancestry<'a>(span: &'a Span, by_id: &HashMap<&str, &'a Span>) -> Vec<&'a Span> {
    let mut chain = vec![span];
    while let Some(parent) = by_id.get(chain.last().unwrap().parent.as_str()) {
        chain.push(parent);
    }
    chain
}

fn log_of_span<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["span"]["name"] == name).collect()
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn a_customers_tap_is_one_trace_from_the_webhook_to_the_node(pool: PgPool) {
    if !node_tools_present() {
        return;
    }
    let (collector, tg, node) = (Collector::start().await, FakeTelegram::start().await, TestNode::start().await);
    let env = [
        ("VPNSHOP__OTEL__ENDPOINT", collector.endpoint()),
        ("VPNSHOP__OTEL__HEADERS", "Authorization=Bearer hunter2-otel".to_owned()),
        ("VPNSHOP__PROVISION__SSH_KEY_PATH", node.key_path().display().to_string()),
    ];
    let shop = Shop::start(&pool, &tg, &env).await;
    crate::provisioning::register_node(&pool, &node).await;
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(61, "Tracy") };
    shop.deliver(&pool, &command_update(next_id(), &u, "/trial")).await;
    let offer = screen(&tg, &u).data("tl:de");
    let tap_id = next_id();
    let message = tg.messages_to(u.id).last().unwrap().message_id;
    shop.deliver(&pool, &callback_update(tap_id, &u, message, &offer)).await;
    let live = "SELECT bool_or(s.status = 'active') FROM subscriptions s JOIN users u ON u.id = s.user_id
                 WHERE u.telegram_id = $1";
    wait_for(&pool, live, u.id, "the trial is live on the node").await;
    let trace = trace_of_update(&pool, i64::from(tap_id)).await;
    let place: Option<String> = sqlx::query_scalar("SELECT trace_parent FROM jobs WHERE kind = 'subscription.place'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(place.is_some_and(|p| p.contains(&trace)), "the job was enqueued in the tap's trace");
    let uuids: Vec<String> = sqlx::query_scalar("SELECT uuid::text FROM clients").fetch_all(&pool).await.unwrap();
    let log = shop.json_lines();
    shop.stop().await;

    // the spans, flushed at the graceful stop
    let spans = collector.spans();
    let by_id: HashMap<&str, &Span> = spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
    let in_trace: Vec<&Span> = spans.iter().filter(|s| s.trace_id == trace).collect();
    let names: Vec<&str> = in_trace.iter().map(|s| s.name.as_str()).collect();
    let webhook = in_trace.iter().find(|s| s.name == "POST /telegram/webhook").unwrap_or_else(|| panic!("{names:?}"));
    assert!(webhook.parent.is_empty() && webhook.kind == 2, "the request is the trace's root, a server span");
    let tap = tap_id.to_string();
    let update = in_trace.iter().find(|s| s.name == "update" && s.attr("update.id") == Some(&tap)).unwrap();
    assert_eq!(update.parent, webhook.span_id, "the inbox continues the request's trace");
    let job = in_trace.iter().find(|s| s.name == "job subscription.place").unwrap_or_else(|| panic!("{names:?}"));
    assert!(ancestry(job, &by_id).iter().any(|s| s.span_id == update.span_id), "the job is under the update");
    let on_node: Vec<&&Span> = in_trace
        .iter()
        .filter(|s| {
            (s.attr("rpc.system") == Some("grpc") || s.name == "ssh.exec")
                && ancestry(s, &by_id).iter().any(|a| a.span_id == job.span_id)
        })
        .collect();
    assert!(!on_node.is_empty(), "node operations under the job: {names:?}");
    assert!(on_node.iter().all(|s| s.kind == 3), "node operations are client spans");
    let grpc = on_node.iter().find(|s| s.attr("rpc.system") == Some("grpc")).unwrap_or_else(|| panic!("{names:?}"));
    assert!(grpc.attr("rpc.method").is_some_and(|m| m.contains("Service/")), "{grpc:?}");
    assert_eq!(webhook.resource.get("service.name").map(String::as_str), Some("vpnshop"));
    // nothing secret in any span: the bot token, the webhook secret, the customers' V2Ray ids, our auth header
    for span in &spans {
        for value in span.all_values.iter().chain(span.attributes.keys()) {
            for secret in [tg.token(), SECRET, "hunter2"].into_iter().chain(uuids.iter().map(String::as_str)) {
                assert!(!value.contains(secret), "{secret} in span {span:?}");
            }
        }
    }
    let headers = collector.request_headers();
    assert!(headers.iter().all(|h| h["authorization"] == "Bearer hunter2-otel"), "the configured headers are sent");

    // the log lines of that work carry the trace id; every line in a span has one
    let traced: Vec<&Value> = log.iter().filter(|l| l["trace_id"] == trace.as_str()).collect();
    assert!(traced.iter().any(|l| l["span"]["name"] == "update"), "{traced:#?}");
    assert!(traced.iter().any(|l| l["span"]["job.kind"] == "subscription.place"), "{traced:#?}");
    for line in log.iter().filter(|l| l.get("span").is_some()) {
        assert!(line["trace_id"].as_str().is_some_and(|t| t.len() == 32), "{line}");
        assert!(line["span_id"].as_str().is_some_and(|s| s.len() == 16), "{line}");
    }
    let exported: std::collections::HashSet<&str> = spans.iter().map(|s| s.trace_id.as_str()).collect();
    for line in log_of_span(&log, "job") {
        assert!(exported.contains(line["trace_id"].as_str().unwrap()), "a job's log line names an exported trace");
    }
    assert!(!shop_log_text(&log).contains("hunter2"), "no secret in the log");
}

fn shop_log_text(log: &[Value]) -> String {
    log.iter().map(Value::to_string).collect::<Vec<_>>().join("\n")
}

#[sqlx::test(migrator = "vpnshop::db::MIGRATOR")]
async fn without_an_endpoint_nothing_is_exported_yet_logs_and_sentry_carry_trace_ids(pool: PgPool) {
    let (collector, tg) = (Collector::start().await, FakeTelegram::start().await);
    let (sentry_port, sentry) = crate::process::fake_sentry().await;
    let dsn = format!("http://publickey@127.0.0.1:{sentry_port}/42");
    let shop = Shop::start(&pool, &tg, &[("VPNSHOP__SENTRY__DSN", dsn)]).await;
    let u = TgUser { language_code: Some("en".into()), ..TgUser::new(62, "Otto") };
    let start_id = next_id();
    shop.deliver(&pool, &command_update(start_id, &u, "/start")).await;
    let update_trace = trace_of_update(&pool, i64::from(start_id)).await;
    // a job enqueued elsewhere in a known trace, that fails for good (no handler knows its kind)
    let (trace, parent) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let job: i64 = sqlx::query_scalar(
        "INSERT INTO jobs (kind, payload, trace_parent) VALUES ('test.nobody', '{}', $1) RETURNING id",
    )
    .bind(format!("00-{trace}-{parent}-01"))
    .fetch_one(&pool)
    .await
    .unwrap();
    wait_for(&pool, "SELECT status = 'dead' FROM jobs WHERE id = $1", job, "the job is dead").await;
    let log = shop.json_lines();
    shop.stop().await;

    assert!(collector.spans().is_empty() && collector.request_headers().is_empty(), "nothing is exported");
    let stored: String = sqlx::query_scalar("SELECT trace_parent FROM telegram_updates WHERE update_id = $1")
        .bind(i64::from(start_id))
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(stored.ends_with("-00"), "not sampled when nothing is exported: {stored}");
    let update_lines: Vec<&Value> =
        log_of_span(&log, "update").into_iter().filter(|l| l["span"]["update.id"] == start_id).collect();
    assert!(!update_lines.is_empty(), "{}", shop_log_text(&log));
    assert!(update_lines.iter().all(|l| l["trace_id"] == update_trace.as_str()), "{update_lines:#?}");
    let dead = log.iter().find(|l| l["message"] == "job is dead").unwrap_or_else(|| panic!("{}", shop_log_text(&log)));
    assert_eq!(dead["trace_id"], trace, "the job continued the trace it was enqueued in: {dead}");
    assert_ne!(dead["span_id"], parent, "in a span of its own");
    let seen = sentry.lock().unwrap();
    let event = seen.iter().find(|(_, body)| body.contains("job is dead")).unwrap_or_else(|| panic!("{seen:?}"));
    assert!(event.1.contains(&format!(r#""trace_id":"{trace}""#)), "the Sentry event names the trace: {}", event.1);
}
