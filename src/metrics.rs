//! Prometheus metrics: one process-wide recorder, rendered on its own listener (never the public one).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub mod shop;
pub use shop::Exposition;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder once per process (tests start many apps in one process) and returns its handle.
pub fn handle() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                )
                .expect("static bucket list is not empty");
            let handle = match builder.install_recorder() {
                Ok(handle) => handle,
                // Another recorder is installed (a test harness): keep a private one so rendering still works.
                Err(_) => PrometheusBuilder::new().build_recorder().handle(),
            };
            describe();
            handle
        })
        .clone()
}

/// Help text for every metric we export (Prometheus and promtool want one per family).
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("vpnshop_http_requests_total", "HTTP requests answered, by matched route, method and status");
    describe_histogram!(
        "vpnshop_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by matched route"
    );
    describe_gauge!("vpnshop_http_connections", "Open connections on the public listener");
    describe_counter!(
        "vpnshop_http_connections_refused_total",
        "Connections closed at once, by reason (per_ip: the client address held its share of places)"
    );
    describe_counter!(
        "vpnshop_jobs_total",
        "Job attempts by kind and outcome (done, deferred, retry, dead, lost: its lease passed to another worker)"
    );
    describe_histogram!("vpnshop_job_duration_seconds", Unit::Seconds, "Job attempt duration by kind");
    describe_counter!("vpnshop_sweep_runs_total", "Scheduler sweep runs by sweep");
    describe_counter!("vpnshop_sweep_enqueued_total", "Jobs enqueued by scheduler sweeps, by sweep");
    describe_counter!("vpnshop_sweep_failures_total", "Scheduler sweep runs that failed, by sweep");
    describe_counter!(
        "vpnshop_revenue_minor_units_total",
        "Money taken, in minor units (cents; rials for IRR), by currency and method, counted when a payment is accepted or succeeds"
    );
    describe_counter!(
        "vpnshop_revenue_reversed_minor_units_total",
        "Money given back, in minor units, by currency and method: refunds, and automatic acceptances rejected later"
    );
    describe_counter!("vpnshop_gauges_errors_total", "Failed readings of the database gauges");
    describe_counter!("vpnshop_node_operations_total", "Operations on V2Ray nodes by node, operation and result");
    describe_counter!("vpnshop_node_restarts_total", "Core restarts we caused, by node and reason");
    describe_counter!("vpnshop_traffic_bytes_total", "Traffic metered on nodes, by node and direction");
    describe_counter!("vpnshop_subscription_transitions_total", "Subscription state changes, by new status");
    describe_counter!("vpnshop_trials_granted_total", "Free trials granted");
    describe_counter!("vpnshop_receipts_total", "Card payment receipts taken for review");
    describe_counter!("vpnshop_receipts_reused_total", "Receipts refused because they were sent before");
    describe_counter!("vpnshop_payments_decided_total", "Payment decisions, by new status and where they came from");
    describe_counter!("vpnshop_orders_fulfilled_total", "Orders fulfilled, by kind (new, renewal, topup)");
    describe_counter!("vpnshop_zarinpal_calls_total", "Calls to Zarinpal's API, by endpoint and outcome");
    describe_counter!("vpnshop_zarinpal_reconciled_total", "Zarinpal payments the sweep settled, by result");
    describe_counter!("vpnshop_online_checkouts_total", "Online payments started at a gateway, by method and result");
    describe_counter!("vpnshop_online_settlements_total", "Gateway reports applied to payments, by method and result");
    describe_counter!("vpnshop_stripe_webhooks_total", "Stripe webhook deliveries, by result (or why refused)");
    describe_counter!("vpnshop_stripe_reconciled_total", "Stripe payments the sweep settled or skipped, by result");
    describe_gauge!("vpnshop_telegram_intake_queue", "Telegram updates waiting to be stored");
    describe_gauge!(
        "vpnshop_telegram_intake_capacity",
        "Telegram updates the intake queue holds at most (telegram.intake_queue); beyond, the webhook answers 503"
    );
    describe_counter!("vpnshop_telegram_updates_total", "Telegram updates received, by result (stored, duplicate)");
    describe_counter!("vpnshop_telegram_webhook_rejected_total", "Webhook requests refused, by reason");
    describe_counter!("vpnshop_telegram_handled_total", "Telegram updates handled, by result (ok, retry, failed)");
    describe_histogram!(
        "vpnshop_telegram_update_duration_seconds",
        Unit::Seconds,
        "Time to handle one Telegram update"
    );
    describe_histogram!(
        "vpnshop_telegram_send_wait_seconds",
        Unit::Seconds,
        "Time a message waited for Telegram's sending limits"
    );
    describe_counter!("vpnshop_telegram_rate_limited_total", "Telegram calls answered 429 (retry after)");
    describe_counter!(
        "vpnshop_broadcast_messages_total",
        "Broadcast messages by outcome: sent, failed, blocked (the customer blocked the bot), unknown (in flight when its sender died; never sent again)"
    );
}

/// The router of the metrics listener: `GET /metrics` (the recorder's metrics, then the exposition's).
pub fn router(handle: PrometheusHandle, exposition: std::sync::Arc<Exposition>) -> Router {
    Router::new().route("/metrics", get(render)).with_state((handle, exposition))
}

async fn render(
    State((handle, exposition)): State<(PrometheusHandle, std::sync::Arc<Exposition>)>,
) -> impl IntoResponse {
    let mut text = handle.render();
    exposition.render_into(&mut text);
    ([("content-type", "text/plain; version=0.0.4")], text)
}

/// Job outcomes as `vpnshop_jobs_total` labels them.
pub const JOB_OUTCOMES: [&str; 5] = ["done", "deferred", "retry", "dead", "lost"];

/// Registers at 0 the series that must exist before their first event, so `rate()` and `increase()` see the
/// first one: every job kind this instance runs (with each outcome, and its duration), every sweep, the
/// business counters of every currency and method, the Telegram counters. (A counter's `absolute(0)` never
/// lowers it.)
pub fn preregister<'a>(kinds: impl IntoIterator<Item = &'a str>, sweeps: impl IntoIterator<Item = &'a str>) {
    for kind in kinds {
        for outcome in JOB_OUTCOMES {
            metrics::counter!("vpnshop_jobs_total", "kind" => kind.to_owned(), "outcome" => outcome).absolute(0);
        }
        let _ = metrics::histogram!("vpnshop_job_duration_seconds", "kind" => kind.to_owned());
    }
    for sweep in sweeps {
        metrics::counter!("vpnshop_sweep_runs_total", "sweep" => sweep.to_owned()).absolute(0);
        metrics::counter!("vpnshop_sweep_failures_total", "sweep" => sweep.to_owned()).absolute(0);
    }
    for currency in crate::domain::Currency::ALL {
        for method in crate::domain::status::PaymentMethod::ALL.iter().map(|m| m.as_str()) {
            let c = currency.as_str();
            metrics::counter!("vpnshop_revenue_minor_units_total", "currency" => c, "method" => method).absolute(0);
            metrics::counter!("vpnshop_revenue_reversed_minor_units_total", "currency" => c, "method" => method)
                .absolute(0);
        }
    }
    metrics::counter!("vpnshop_trials_granted_total").absolute(0);
    for outcome in ["sent", "failed", "blocked", "unknown"] {
        metrics::counter!("vpnshop_broadcast_messages_total", "outcome" => outcome).absolute(0);
    }
    for result in ["stored", "duplicate"] {
        metrics::counter!("vpnshop_telegram_updates_total", "result" => result).absolute(0);
    }
    for result in ["ok", "retry", "failed"] {
        metrics::counter!("vpnshop_telegram_handled_total", "result" => result).absolute(0);
    }
    metrics::counter!("vpnshop_telegram_rate_limited_total").absolute(0);
    for reason in ["secret", "too_large", "unread", "malformed"] {
        metrics::counter!("vpnshop_telegram_webhook_rejected_total", "reason" => reason).absolute(0);
    }
    for kind in ["new", "renewal", "topup"] {
        metrics::counter!("vpnshop_orders_fulfilled_total", "kind" => kind).absolute(0);
    }
}

/// Counts money taken (a payment accepted or succeeded), after its transaction committed.
pub fn revenue(currency: crate::domain::Currency, method: crate::domain::status::PaymentMethod, amount_minor: i64) {
    let method = method.as_str();
    let amount = u64::try_from(amount_minor).unwrap_or(0);
    metrics::counter!("vpnshop_revenue_minor_units_total", "currency" => currency.as_str(), "method" => method)
        .increment(amount);
}

/// Counts money given back (a refund, or an automatic acceptance rejected), after its transaction committed.
pub fn revenue_reversed(
    currency: crate::domain::Currency,
    method: crate::domain::status::PaymentMethod,
    amount_minor: i64,
) {
    let method = method.as_str();
    let amount = u64::try_from(amount_minor).unwrap_or(0);
    metrics::counter!(
        "vpnshop_revenue_reversed_minor_units_total",
        "currency" => currency.as_str(),
        "method" => method
    )
    .increment(amount);
}

/// Keeps histograms bounded; run for the life of the process.
pub async fn upkeep(handle: PrometheusHandle, cancel: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}

/// A `&'static str` for a label value from a small, bounded set (routes, methods, statuses), so recording a
/// metric on the hot path allocates nothing. Values are leaked once each.
fn intern(value: &str) -> &'static str {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    match seen.get(value) {
        Some(v) => v,
        // unbounded values never get here: unknown routes are "unmatched", methods and statuses are few
        None if seen.len() < 1000 => {
            let leaked: &'static str = Box::leak(value.to_owned().into_boxed_str());
            seen.insert(leaked);
            leaked
        }
        None => "other",
    }
}

/// The method as a label: the standard ones by name, any other (clients may send any token) as "other".
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    for known in [Method::GET, Method::POST, Method::PUT, Method::PATCH, Method::DELETE, Method::HEAD, Method::OPTIONS]
    {
        if method == known {
            return match known.as_str() {
                "GET" => "GET",
                "POST" => "POST",
                "PUT" => "PUT",
                "PATCH" => "PATCH",
                "DELETE" => "DELETE",
                "HEAD" => "HEAD",
                _ => "OPTIONS",
            };
        }
    }
    "other"
}

/// Middleware: request count and latency per matched route (never the raw path: tokens live in paths).
pub async fn track_http(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|p| intern(p.as_str())).unwrap_or("unmatched");
    let method = method_label(request.method());
    let response = next.run(request).await;
    let status = intern(response.status().as_str());
    metrics::counter!("vpnshop_http_requests_total", "route" => route, "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!("vpnshop_http_request_duration_seconds", "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

#[cfg(test)]
mod tests {
    /// Every metric the code records has help text (Prometheus and promtool expect one per family).
    #[test]
    fn every_recorded_metric_is_described() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let record = regex::Regex::new(r#"metrics::(?:counter|gauge|histogram)!\(\s*"([a-z_]+)""#).unwrap();
        let describe = regex::Regex::new(r#"describe_(?:counter|gauge|histogram)!\(\s*"([a-z_]+)""#).unwrap();
        let mut used = std::collections::BTreeSet::new();
        let mut described = std::collections::BTreeSet::new();
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    used.extend(record.captures_iter(&text).map(|c| c[1].to_owned()));
                    described.extend(describe.captures_iter(&text).map(|c| c[1].to_owned()));
                }
            }
        }
        assert!(used.len() >= 10, "found the metrics ({used:?})");
        let missing: Vec<_> = used.difference(&described).collect();
        assert!(missing.is_empty(), "metrics without help text: {missing:?}");
    }
}
