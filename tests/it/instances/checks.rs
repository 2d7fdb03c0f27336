//! What must hold once the shop is quiet again after the kill: every update handled once, every payment decided
//! once and fulfilled once, one trial per customer, one client per live seat on the node, no job dead or stuck,
//! and per-chat spacing kept across instances. A message repeated because the instance that sent it died before
//! it could record that it had (Telegram has no idempotency key) is allowed only for work that instance held at
//! the moment of the kill.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;

use super::webhook::Webhook;
use crate::provisioning::eventually;
use crate::support::{Call, FakeTelegram, TestNode};

/// How the admins treat one card payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// `/accept N`.
    Accept,
    /// Both admins send `/accept N` at once (to whichever instances).
    AcceptTwice,
    /// `/reject N wrong amount`.
    Reject,
    /// Accept under the review photo.
    AcceptByButton,
    /// Nobody: the auto-accept sweep takes it once its review is overdue.
    Auto,
}

impl Plan {
    fn status(self) -> &'static str {
        match self {
            Plan::Reject => "rejected",
            Plan::Auto => "auto_accepted",
            _ => "accepted",
        }
    }
}

/// The killed instance stays down at least this long (and its jobs' leases are longer).
pub const DOWN_AT_LEAST: Duration = Duration::from_secs(1);

/// What the killed instance held when it died.
pub struct Crash {
    pub killed_at: Instant,
    /// The database's clock at the kill.
    pub killed_db: DateTime<Utc>,
    /// Updates its inbox was handling (leased, not handled).
    pub held_updates: Vec<i64>,
    /// Jobs its workers were running.
    pub held_jobs: Vec<i64>,
    /// How long until the survivor had taken every one of those jobs over.
    pub taken_over: Duration,
}

/// The updates and jobs held by workers named `like` (a LIKE pattern), and the database's time.
pub async fn held_by(pool: &PgPool, like: &str) -> (Vec<i64>, Vec<i64>, DateTime<Utc>) {
    let (updates, jobs, now): (Vec<i64>, Vec<i64>, DateTime<Utc>) = sqlx::query_as(
        "SELECT ARRAY(SELECT update_id FROM telegram_updates WHERE locked_by LIKE $1 AND handled_at IS NULL),
                ARRAY(SELECT id FROM jobs WHERE locked_by LIKE $1 AND status = 'running'), now()",
    )
    .bind(like)
    .fetch_one(pool)
    .await
    .unwrap();
    (updates, jobs, now)
}

/// How many of `jobs` are still running under a worker named `like`.
pub async fn still_held(pool: &PgPool, like: &str, jobs: &[i64]) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM jobs WHERE id = ANY($1) AND status = 'running' AND locked_by LIKE $2")
        .bind(jobs)
        .bind(like)
        .fetch_one(pool)
        .await
        .unwrap()
}

/// Waits until nothing is left to do: every update handled, every subscription open on the node, no job due or
/// running (but the periodic metering and drift passes).
pub async fn quiesce(pool: &PgPool) {
    let busy = "SELECT (SELECT count(*) FROM telegram_updates WHERE handled_at IS NULL)
                     + (SELECT count(*) FROM subscriptions WHERE status = 'pending')
                     + (SELECT count(*) FROM clients WHERE desired <> node_state)
                     + (SELECT count(*) FROM jobs WHERE kind NOT IN ('node.meter', 'node.reconcile')
                           AND (status = 'running' OR (status = 'queued' AND run_at < now() + interval '5 seconds')))";
    eventually("the shop is quiet", Duration::from_secs(45), || async {
        sqlx::query_scalar::<_, i64>(busy).fetch_one(pool).await.unwrap() == 0
    })
    .await;
}

pub struct Report<'a> {
    pub hook: &'a Webhook,
    pub tg: &'a FakeTelegram,
    pub pool: &'a PgPool,
    pub node: &'a TestNode,
    pub crash: &'a Crash,
    /// Updates answered the way a second attempt answers, with the answer.
    pub retried: Vec<(i64, String)>,
}

/// When a call arrived, from the kill: `+1.2s` or `-30ms`.
fn since(killed: Instant, call: &Call) -> String {
    match call.at.checked_duration_since(killed) {
        Some(after) => format!("+{after:?}"),
        None => format!("-{:?}", killed.duration_since(call.at)),
    }
}

/// An update as stored: id, when handled, the error it was given up with, attempts.
type UpdateRow = (i64, Option<DateTime<Utc>>, Option<String>, i32);

/// What makes two calls the same call made twice: for a new message its chat and content (not its buttons: a
/// purchase started again has new ones), for an edit also the message, for a button's answer its query.
fn identity(call: &Call) -> Option<String> {
    let p = &call.params;
    let content = [&p["text"], &p["caption"], &p["photo"]].map(|v| v.to_string()).join("|");
    match call.method.as_str() {
        "sendMessage" | "sendPhoto" | "sendDocument" => Some(format!("{} {} {content}", call.method, p["chat_id"])),
        m if m.starts_with("editMessage") => Some(format!("{m} {} {} {content}", p["chat_id"], p["message_id"])),
        "answerCallbackQuery" => Some(format!("{} {}", call.method, p["callback_query_id"])),
        _ => None,
    }
}

impl Report<'_> {
    pub async fn every_update_handled_once(&self) {
        let ids = self.hook.ids();
        let rows: Vec<UpdateRow> = sqlx::query_as(
            "SELECT update_id, handled_at, last_error, attempts FROM telegram_updates WHERE update_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(self.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), ids.len(), "every delivered update was stored, once");
        for (id, handled, error, attempts) in &rows {
            assert!(handled.is_some() && error.is_none(), "update {id}: handled {handled:?}, error {error:?}");
            let held = self.crash.held_updates.contains(id);
            assert!(
                *attempts == 1 || held,
                "update {id} was tried {attempts} times; only the killed one's are retried"
            );
            if held {
                // their lease (60 s) would have held them much longer: the restart released them
                let late = handled.unwrap() - self.crash.killed_db;
                assert!(late < chrono::Duration::seconds(30), "update {id} waited {late} after the kill");
            }
        }
        // an answer that only a second attempt gives: that update was being handled by the killed instance
        for (id, seen) in &self.retried {
            assert!(self.crash.held_updates.contains(id), "update {id} answered as if handled twice: {seen:?}");
        }
        // no call made twice, but one the killed instance made just before it died and that was made again after
        let mut seen: HashMap<String, Vec<&Call>> = HashMap::new();
        let calls = self.tg.calls();
        for call in &calls {
            if let Some(key) = identity(call) {
                seen.entry(key).or_default().push(call);
            }
        }
        let repeats: Vec<(&String, &Vec<&Call>)> = seen.iter().filter(|(_, c)| c.len() > 1).collect();
        // a call the killed instance sent just before it died may arrive a moment after; the repeat comes from
        // whoever took the work over: the survivor after a lease, or the killed instance once restarted
        let killed = self.crash.killed_at;
        let moment = killed + DOWN_AT_LEAST / 2;
        let (by_crash, others): (Vec<_>, Vec<_>) =
            repeats.iter().partition(|(_, c)| c.len() == 2 && c[0].at < moment && c[1].at > moment);
        let others: Vec<String> = others
            .iter()
            .map(|(key, c)| {
                format!("at {:?} after the kill: {key}", c.iter().map(|c| since(killed, c)).collect::<Vec<_>>())
            })
            .collect();
        assert!(others.is_empty(), "calls made more than once, not because of the kill:\n{}", others.join("\n"));
        let held = self.crash.held_updates.len() + self.crash.held_jobs.len();
        assert!(
            by_crash.len() <= held,
            "{} calls repeated, for {held} pieces of work held at the kill",
            by_crash.len()
        );
        eprintln!(
            "instances: {} Bot API calls; {} repeated by the crash, {} answers of a second attempt",
            calls.len(),
            by_crash.len(),
            self.retried.len()
        );
    }

    pub async fn payments_decided_once_and_fulfilled_once(&self, payments: &[(Plan, i64, i64)]) {
        for &(plan, order, payment) in payments {
            let (status, decisions, subs, active, seats): (String, i64, i64, i64, i64) = sqlx::query_as(
                "SELECT (SELECT status FROM payments WHERE id = $1),
                        (SELECT count(*) FROM audit_log WHERE entity = 'payment' AND entity_id = $1::text
                            AND action IN ('payment.accepted', 'payment.rejected', 'payment.auto_accepted')),
                        (SELECT count(*) FROM subscriptions WHERE order_id = $2),
                        (SELECT count(*) FROM subscriptions WHERE order_id = $2 AND status = 'active'),
                        (SELECT count(*) FROM clients c JOIN subscriptions s ON s.id = c.subscription_id
                          WHERE s.order_id = $2 AND c.desired = 'present' AND c.node_state = 'present')",
            )
            .bind(payment)
            .bind(order)
            .fetch_one(self.pool)
            .await
            .unwrap();
            assert_eq!(status, plan.status(), "payment {payment} ({plan:?})");
            assert_eq!(decisions, 1, "payment {payment} ({plan:?}) decided once");
            let fulfilled = if plan == Plan::Reject { (0, 0, 0) } else { (1, 1, 1) };
            assert_eq!((subs, active, seats), fulfilled, "order {order} ({plan:?}): subscriptions, active, clients");
        }
    }

    pub async fn trials_granted_once(&self, customers: Vec<i64>) {
        let rows: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT u.telegram_id,
                    (SELECT count(*) FROM subscriptions s WHERE s.user_id = u.id AND s.is_trial),
                    (SELECT count(*) FROM subscriptions s WHERE s.user_id = u.id AND s.is_trial AND s.status = 'active'),
                    (SELECT count(*) FROM clients c JOIN subscriptions s ON s.id = c.subscription_id
                      WHERE s.user_id = u.id AND c.desired = 'present' AND c.node_state = 'present')
               FROM users u WHERE u.telegram_id = ANY($1) ORDER BY 1",
        )
        .bind(&customers)
        .fetch_all(self.pool)
        .await
        .unwrap();
        assert_eq!(rows.len(), customers.len());
        for (customer, trials, active, clients) in rows {
            assert_eq!(
                (trials, active, clients),
                (1, 1, 1),
                "customer {customer}: trials, active, clients on the node"
            );
        }
    }

    pub async fn node_carries_each_live_client_once(&self) {
        let file = std::fs::read_to_string(self.node.config_path()).unwrap();
        let on_node = vpnshop::provision::render::clients_in(&file, "proxy").unwrap();
        let emails: Vec<String> = on_node.iter().map(|c| c.email.clone()).collect();
        let unique: BTreeSet<&String> = emails.iter().collect();
        assert_eq!(unique.len(), emails.len(), "no client twice on the node: {emails:?}");
        let live: Vec<String> = sqlx::query_scalar(
            "SELECT c.email FROM clients c JOIN subscriptions s ON s.id = c.subscription_id
              WHERE c.desired = 'present' AND s.status = 'active' ORDER BY 1",
        )
        .fetch_all(self.pool)
        .await
        .unwrap();
        assert_eq!(unique.into_iter().cloned().collect::<Vec<_>>(), live, "the node carries exactly the live clients");
    }

    pub async fn no_job_dead_or_stuck(&self) {
        let rows: Vec<(i64, String, String, i32, Option<String>)> = sqlx::query_as(
            "SELECT id, kind, status, attempts, last_error FROM jobs
              WHERE status = 'dead' OR (status = 'running' AND kind NOT IN ('node.meter', 'node.reconcile'))",
        )
        .fetch_all(self.pool)
        .await
        .unwrap();
        assert!(rows.is_empty(), "dead or stuck jobs: {rows:#?}");
        let held: Vec<(i64, String, String)> =
            sqlx::query_as("SELECT id, kind, status FROM jobs WHERE id = ANY($1) AND status <> 'done'")
                .bind(&self.crash.held_jobs)
                .fetch_all(self.pool)
                .await
                .unwrap();
        assert!(held.is_empty(), "the killed instance's jobs were finished by others: {held:?}");
    }

    /// New messages to one chat arrive at least half the configured interval apart (the limiter spaces them a full
    /// interval when it lets them go; the rest is slack for the time each request takes to arrive), whichever
    /// instance sent them: the limit is shared through Redis.
    pub fn chats_kept_their_interval_across_instances(&self, interval_ms: u64) {
        let mut last: BTreeMap<i64, Call> = BTreeMap::new();
        let mut closest = Duration::MAX;
        let bound = Duration::from_millis(interval_ms / 2);
        let killed = self.crash.killed_at;
        let brief = |c: &Call| {
            let text: String =
                c.params["text"].as_str().or(c.params["caption"].as_str()).unwrap_or("").chars().take(50).collect();
            format!("{} at {} after the kill: {text:?}", c.method, since(killed, c))
        };
        for call in self.tg.calls() {
            if !matches!(call.method.as_str(), "sendMessage" | "sendPhoto" | "sendDocument") {
                continue;
            }
            let Some(chat) = call.params["chat_id"].as_i64() else { continue };
            if let Some(previous) = last.insert(chat, call.clone()) {
                let gap = call.at.duration_since(previous.at);
                closest = closest.min(gap);
                assert!(
                    gap >= bound,
                    "two new messages to chat {chat} only {gap:?} apart (limit: one per {interval_ms} ms):\n{}\n{}",
                    brief(&previous),
                    brief(&call)
                );
            }
        }
        eprintln!("instances: the closest two new messages to one chat were {closest:?} apart");
    }
}
