//! What the soak left behind, read after the drain: the database (updates, payments, subscriptions, jobs), the
//! fake Telegram's calls and the shop's metrics; as a table, and checked.

use std::collections::BTreeMap;
use std::process::ExitStatus;
use std::time::Duration;

use sqlx::PgPool;

use super::load::Load;
use super::shop::Metrics;

pub struct Facts {
    /// Updates stored, not handled, handled with an error (given up), handled on a later attempt; chats.
    updates: (i64, i64, i64, i64, i64),
    /// Card payments; accepted, rejected, still under review.
    card: i64,
    pub accepted: i64,
    rejected: i64,
    under_review: i64,
    /// Accepted payments whose order has exactly one subscription, and it is active.
    accepted_once_active: i64,
    /// Seconds from each accepted payment's decision to its subscription's activation (database clock), sorted.
    accepted_to_active: Vec<f64>,
    dead_jobs: Vec<(String, i64)>,
    /// Bot API calls the shop made during the window and the drain, by method.
    calls: BTreeMap<String, usize>,
}

impl Facts {
    pub async fn gather(pool: &PgPool, load: &Load, calls_before: usize) -> Facts {
        let updates = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE handled_at IS NULL),
                    count(*) FILTER (WHERE handled_at IS NOT NULL AND last_error IS NOT NULL),
                    count(*) FILTER (WHERE attempts > 1), count(DISTINCT chat_id)
               FROM telegram_updates",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let (card, accepted, rejected, under_review): (i64, i64, i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE status = 'accepted'), count(*) FILTER (WHERE status = 'rejected'),
                    count(*) FILTER (WHERE status = 'under_review')
               FROM payments WHERE method = 'card'",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let accepted_once_active = sqlx::query_scalar(
            "SELECT count(*) FROM payments p
              WHERE p.status = 'accepted'
                AND (SELECT count(*) FROM subscriptions s WHERE s.order_id = p.order_id) = 1
                AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.order_id = p.order_id AND s.status = 'active')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let accepted_to_active = sqlx::query_scalar(
            "SELECT extract(epoch FROM s.starts_at - p.decided_at)::float8
               FROM payments p JOIN subscriptions s ON s.order_id = p.order_id
              WHERE p.status = 'accepted' AND s.status = 'active' ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let dead_jobs =
            sqlx::query_as("SELECT kind, count(*) FROM jobs WHERE status = 'dead' GROUP BY kind ORDER BY kind")
                .fetch_all(pool)
                .await
                .unwrap();
        let mut calls = BTreeMap::new();
        for call in &load.tg.calls()[calls_before..] {
            *calls.entry(call.method.clone()).or_default() += 1;
        }
        Facts {
            updates,
            card,
            accepted,
            rejected,
            under_review,
            accepted_once_active,
            accepted_to_active,
            dead_jobs,
            calls,
        }
    }

    /// The facts as a table, with what the shop's metrics counted between the two scrapes.
    pub fn table(
        &self,
        before: &Metrics,
        after: &Metrics,
        window: Duration,
        log_errors: usize,
        log_warnings: usize,
        exit: &ExitStatus,
    ) -> String {
        let (stored, unhandled, failed, retried, chats) = self.updates;
        let calls: usize = self.calls.values().sum();
        // what Telegram's limits count: messages sent and edited (not answers to button presses, not files read)
        let messages: usize =
            self.calls.iter().filter(|(m, _)| m.starts_with("send") || m.starts_with("edit")).map(|(_, n)| n).sum();
        let per_s = |n: usize| n as f64 / window.as_secs_f64();
        let mut rows = vec![
            "| after the drain | value |".to_owned(),
            "|---|---:|".to_owned(),
            format!(
                "| updates stored / not handled / given up / handled on a retry | {stored} / {unhandled} / {failed} / {retried} |"
            ),
            format!("| chats that wrote | {chats} |"),
            format!(
                "| Bot API calls by the shop (window and drain), per s of the window | {calls} ({:.1}/s) |",
                per_s(calls)
            ),
            format!("| of which messages sent or edited, per s | {messages} ({:.1}/s) |", per_s(messages)),
        ];
        rows.extend(self.calls.iter().map(|(method, n)| format!("| &nbsp;&nbsp;{method} | {n} |")));
        rows.extend([
            format!(
                "| card payments / accepted / rejected / still under review | {} / {} / {} / {} |",
                self.card, self.accepted, self.rejected, self.under_review
            ),
            format!("| accepted payments with exactly one subscription, active | {} |", self.accepted_once_active),
            format!(
                "| payment accepted → subscription active (database clock), p50 / p90 / max s | {} |",
                spread(&self.accepted_to_active)
            ),
            format!("| dead jobs | {:?} |", self.dead_jobs),
            format!("| shop log lines: ERROR / WARN | {log_errors} / {log_warnings} |"),
            format!("| exit after SIGTERM | {exit} |"),
        ]);
        let mut statuses: BTreeMap<String, f64> = BTreeMap::new();
        for (series, n) in after.grown(before, "vpnshop_http_requests_total") {
            *statuses.entry(label(&series, "status")).or_default() += n;
        }
        rows.extend(statuses.iter().map(|(status, n)| format!("| HTTP answers {status} (the shop's metrics) | {n} |")));
        for family in [
            "vpnshop_telegram_handled_total",
            "vpnshop_jobs_total",
            "vpnshop_sweep_runs_total",
            "vpnshop_node_operations_total",
            "vpnshop_telegram_rate_limited_total",
        ] {
            for (series, n) in after.grown(before, family) {
                rows.push(format!("| `{series}` | {n} |"));
            }
        }
        rows.join("\n")
    }

    /// Correctness: every update taken is stored once and handled, every receipt is a payment, every accepted
    /// payment one active subscription, no dead job.
    pub fn check(&self, updates_taken: u64, receipts: u64) {
        let (stored, unhandled, failed, _, _) = self.updates;
        assert_eq!(stored, updates_taken as i64, "every update the webhook took is stored, once");
        assert_eq!(unhandled, 0, "every update is handled");
        assert_eq!(failed, 0, "no update was given up");
        assert_eq!(self.card, receipts as i64, "every receipt answered is one card payment");
        assert_eq!(self.accepted_once_active, self.accepted, "every accepted payment: exactly one active subscription");
        assert!(self.dead_jobs.is_empty(), "dead jobs: {:?}", self.dead_jobs);
    }
}

/// p50 / p90 / max of sorted seconds.
fn spread(sorted: &[f64]) -> String {
    let at = |p: f64| sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1];
    if sorted.is_empty() { "–".to_owned() } else { format!("{:.2} / {:.2} / {:.2}", at(0.5), at(0.9), at(1.0)) }
}

/// A label's value in a series (`name{a="x",b="y"}`).
fn label(series: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    series.split_once(&key).and_then(|(_, rest)| rest.split_once('"')).map_or_else(String::new, |(v, _)| v.to_owned())
}
