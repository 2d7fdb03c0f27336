//! Logging, traces and error reporting: tracing (JSON in production, pretty otherwise), OpenTelemetry span ids
//! in every log line (and spans exported over OTLP when `otel.endpoint` is set), and Sentry when a DSN is set.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use secrecy::ExposeSecret;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Settings;

mod context;
mod logs;
mod otel;

pub use context::{continue_trace, current_traceparent};

/// The longest the last spans may take to leave at exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps Sentry and the span exporter running until dropped at exit, then sends what they still hold.
pub struct TelemetryGuard {
    _sentry: Option<sentry::ClientInitGuard>,
    tracer: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take()
            && let Err(e) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            eprintln!("warning: the last spans may not have reached the collector: {e}");
        }
    }
}

/// What the process is: the service logs everything `log.filter` lets through to stdout; a one-shot command
/// (`vpnshop server list`) prints its result on stdout, so its log goes to stderr and holds only warnings
/// and errors (unless `RUST_LOG` asks for more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Service,
    Command,
}

/// Events with this target reach Sentry but are not printed (main prints a command's error itself).
pub const SENTRY_ONLY: &str = "vpnshop::sentry_only";

/// Installs the global subscriber. `RUST_LOG` overrides `log.filter`.
pub fn init(settings: &Settings, output: Output) -> TelemetryGuard {
    let default_filter = match output {
        Output::Service => settings.log.filter.as_str(),
        Output::Command => "warn",
    };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(default_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let printed = tracing_subscriber::filter::filter_fn(|meta| meta.target() != SENTRY_ONLY);
    let fmt = match (settings.json_logs(), output) {
        (true, Output::Service) => {
            let format = tracing_subscriber::fmt::format()
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false);
            tracing_subscriber::fmt::layer()
                .json()
                .event_format(logs::JsonWithTraceIds(format))
                .with_filter(printed)
                .boxed()
        }
        (false, Output::Service) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_timer(logs::TimeAndTrace)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_filter(printed)
            .boxed(),
        (_, Output::Command) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_filter(printed)
            .boxed(),
    };
    let (provider, export_off) = otel::provider(settings);
    let exporting = settings.otel.endpoint.is_some() && export_off.is_none();
    let spans = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("vpnshop"))
        .with_location(exporting)
        .with_threads(false)
        .with_tracked_inactivity(false);
    let sentry_guard = settings.sentry.dsn.as_ref().map(|dsn| {
        sentry::init(
            sentry::ClientOptions::new()
                .dsn(dsn.expose_secret())
                .maybe_release(sentry::release_name!())
                .environment(settings.env.as_str())
                .traces_sample_rate(settings.sentry.traces_sample_rate)
                .send_default_pii(false)
                .before_send(|mut event| {
                    // the trace the error happened in, to find its spans and log lines
                    if let Some((trace_id, span_id)) = context::current_ids() {
                        event.tags.insert("trace_id".into(), trace_id.to_string());
                        event.tags.insert("span_id".into(), span_id.to_string());
                    }
                    Some(event)
                }),
        )
    });
    // Errors become Sentry events, warnings and info become breadcrumbs on them, spans become traces. The span
    // exporter's own errors (a collector that is down, every few seconds) are only logged.
    let sentry_layers = sentry_guard.as_ref().map(|_| {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
        use tracing_subscriber::filter::{FilterExt, LevelFilter, filter_fn};
        let ours = filter_fn(|meta| !meta.target().starts_with("opentelemetry"));
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR.and(ours))
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
            .and_then(SpanLayer::new().with_filter(LevelFilter::INFO))
    });
    let _ = tracing_subscriber::registry().with(filter).with(spans).with(fmt).with(sentry_layers).try_init();
    match (&settings.otel.endpoint, export_off) {
        (Some(_), Some(why)) => tracing::error!(error = %why, "spans are not exported"),
        (Some(endpoint), None) => {
            let mut shown = endpoint.clone();
            let _ = (shown.set_username(""), shown.set_password(None));
            tracing::info!(otel.endpoint = %otel::traces_url(&shown), "exporting spans over OTLP/HTTP")
        }
        (None, _) => {}
    }
    TelemetryGuard { _sentry: sentry_guard, tracer: Some(provider) }
}
