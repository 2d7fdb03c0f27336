//! The exposition's own part, beside the recorder's: the shop's gauges read from PostgreSQL every
//! `metrics.collect_interval_secs` (one read per interval, rendered once, served to every scrape) and this
//! instance's database pool, read at each scrape.
//!
//! The database gauges are global: every instance reports the same values, so aggregate them with
//! `max without(instance)` (never `sum`). The pool gauges are per instance.

use std::fmt::Write;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::services::gauges::{self, Figures};

/// What `/metrics` adds to the recorder's output.
pub struct Exposition {
    /// The last reading, rendered; `None` until the first one succeeds.
    figures: RwLock<Option<String>>,
    /// The pool and its configured size.
    pool: Option<(PgPool, u32)>,
}

impl Exposition {
    pub fn new(pool: Option<(PgPool, u32)>) -> Arc<Exposition> {
        Arc::new(Exposition { figures: RwLock::new(None), pool })
    }

    /// Appends the last reading and the pool's current use.
    pub fn render_into(&self, out: &mut String) {
        if let Some(text) = self.figures.read().unwrap_or_else(|p| p.into_inner()).as_deref() {
            out.push_str(text);
        }
        if let Some((pool, max)) = &self.pool {
            let size = pool.size();
            let idle = u32::try_from(pool.num_idle()).unwrap_or(u32::MAX).min(size);
            let mut t = Text::default();
            t.by(
                "vpnshop_db_pool_connections",
                "Connections of this instance's main pool, by state (idle, in_use)",
                "state",
                [("idle", f64::from(idle)), ("in_use", f64::from(size - idle))],
            );
            t.one("vpnshop_db_pool_max_connections", "The main pool's size limit (database.max_connections)", *max);
            out.push_str(&t.0);
        }
    }

    /// Reads the figures now and then every `every` until cancelled. A failed reading keeps the previous one
    /// (its age shows in `vpnshop_gauges_updated_timestamp_seconds`) and counts in `vpnshop_gauges_errors_total`.
    pub async fn collect(self: Arc<Self>, pool: PgPool, every: Duration, timeout: Duration, cancel: CancellationToken) {
        metrics::counter!("vpnshop_gauges_errors_total").absolute(0);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let reading = tokio::select! {
                _ = cancel.cancelled() => return,
                reading = gauges::read(&pool, timeout) => reading,
            };
            match reading {
                Ok(figures) => {
                    // each node's traffic counters exist from the start, so rate() sees its first bytes
                    for (node, _) in &figures.nodes_up {
                        for direction in ["up", "down"] {
                            metrics::counter!("vpnshop_traffic_bytes_total", "node" => node.clone(), "direction" => direction)
                                .absolute(0);
                        }
                    }
                    *self.figures.write().unwrap_or_else(|p| p.into_inner()) = Some(render(&figures));
                }
                Err(e) => {
                    metrics::counter!("vpnshop_gauges_errors_total").increment(1);
                    tracing::warn!(error = format!("{e:#}"), "could not read the shop's figures for /metrics");
                }
            }
        }
    }
}

/// The figures as Prometheus text.
fn render(f: &Figures) -> String {
    let mut t = Text::default();
    let counts = |m: &std::collections::BTreeMap<String, i64>| -> Vec<(String, f64)> {
        m.iter().map(|(k, v)| (k.clone(), *v as f64)).collect()
    };
    t.by("vpnshop_open_orders", "Orders not settled yet, by status", "status", counts(&f.open_orders));
    t.by(
        "vpnshop_subscriptions",
        "Subscriptions holding seats, by status (pending, active, limited)",
        "status",
        counts(&f.subscriptions),
    );
    t.one("vpnshop_reviews_waiting", "Card payments waiting for a review", f.reviews_waiting as f64);
    t.one(
        "vpnshop_review_oldest_age_seconds",
        "How long the oldest waiting card review has waited (0 when none waits)",
        f.review_oldest_age_secs,
    );
    t.by(
        "vpnshop_job_queue",
        "Jobs by state: due (waiting for a worker), scheduled (due later), running",
        "state",
        counts(&f.job_queue),
    );
    t.one(
        "vpnshop_job_oldest_due_age_seconds",
        "How long the oldest due job has waited for a worker (0 when none)",
        f.job_oldest_due_age_secs,
    );
    t.by(
        "vpnshop_jobs_dead",
        "Dead jobs (out of attempts) kept in the jobs table, by kind",
        "kind",
        counts(&f.jobs_dead),
    );
    t.one("vpnshop_telegram_inbox_pending", "Telegram updates stored and not handled yet", f.inbox_pending as f64);
    t.one(
        "vpnshop_telegram_inbox_oldest_age_seconds",
        "How long the oldest unhandled Telegram update has waited (0 when none)",
        f.inbox_oldest_age_secs,
    );
    t.by("vpnshop_broadcasts", "Unfinished broadcasts, by status (running, paused)", "status", counts(&f.broadcasts));
    t.by(
        "vpnshop_broadcast_recipients",
        "Recipients of unfinished broadcasts, by delivery status",
        "status",
        counts(&f.broadcast_recipients),
    );
    let nodes: Vec<(String, f64)> = f.nodes_up.iter().map(|(n, up)| (n.clone(), if *up { 1.0 } else { 0.0 })).collect();
    t.by(
        "vpnshop_node_up",
        "1 when the node's last operation (by any instance) succeeded, 0 when it failed or the node was never reached",
        "node",
        nodes,
    );
    t.by(
        "vpnshop_node_certificate_expiry_timestamp_seconds",
        "When the node's earliest TLS certificate ends (notAfter, Unix seconds), as its last sync read it; absent \
         for nodes without TLS inbounds",
        "node",
        f.node_certificates.iter().map(|(n, t)| (n.as_str(), *t)),
    );
    t.one(
        "vpnshop_gauges_updated_timestamp_seconds",
        "When the database gauges (orders, subscriptions, reviews, jobs, inbox, broadcasts, nodes) were read",
        f.read_at,
    );
    t.0
}

/// Prometheus text format for gauges.
#[derive(Default)]
struct Text(String);

impl Text {
    fn head(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} gauge");
    }

    fn one(&mut self, name: &str, help: &str, value: impl Into<f64>) {
        self.head(name, help);
        let _ = writeln!(self.0, "{name} {}", number(value.into()));
    }

    /// A family with one label; nothing at all when it has no values.
    fn by<L: AsRef<str>>(&mut self, name: &str, help: &str, label: &str, values: impl IntoIterator<Item = (L, f64)>) {
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return;
        }
        self.head(name, help);
        for (value, n) in values {
            let _ = writeln!(self.0, "{name}{{{label}=\"{}\"}} {}", escape(value.as_ref()), number(n));
        }
    }
}

fn number(v: f64) -> String {
    if v.is_finite() { v.to_string() } else { "0".to_owned() }
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_render_as_labelled_gauges_with_help_and_type() {
        let mut f = Figures {
            reviews_waiting: 2,
            review_oldest_age_secs: 90.5,
            read_at: 1_700_000_000.0,
            ..Default::default()
        };
        f.subscriptions.insert("active".into(), 3);
        f.nodes_up = vec![("de-1".into(), true), ("odd\"name".into(), false)];
        f.node_certificates = vec![("de-1".into(), 1_800_000_000.0)];
        let text = render(&f);
        assert!(
            text.contains("# TYPE vpnshop_subscriptions gauge\nvpnshop_subscriptions{status=\"active\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("vpnshop_reviews_waiting 2\n") && text.contains("vpnshop_review_oldest_age_seconds 90.5\n")
        );
        assert!(text.contains("vpnshop_node_up{node=\"de-1\"} 1\nvpnshop_node_up{node=\"odd\\\"name\"} 0\n"), "{text}");
        assert!(text.contains("vpnshop_gauges_updated_timestamp_seconds 1700000000\n"), "{text}");
        assert!(
            text.contains(
                "# TYPE vpnshop_node_certificate_expiry_timestamp_seconds gauge\n\
                 vpnshop_node_certificate_expiry_timestamp_seconds{node=\"de-1\"} 1800000000\n"
            ),
            "{text}"
        );
        assert!(!text.contains("vpnshop_jobs_dead"), "a family without values is left out: {text}");
    }
}
