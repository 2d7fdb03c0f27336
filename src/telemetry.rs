//! Logging and error reporting: tracing (JSON in production, pretty otherwise) and Sentry when a DSN is set.

use secrecy::ExposeSecret;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::Settings;

/// Keeps Sentry flushing until dropped at exit.
pub struct TelemetryGuard {
    _sentry: Option<sentry::ClientInitGuard>,
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
        (true, Output::Service) => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_filter(printed)
            .boxed(),
        (false, Output::Service) => tracing_subscriber::fmt::layer()
            .with_target(false)
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
    let sentry_guard = settings.sentry.dsn.as_ref().map(|dsn| {
        sentry::init(
            sentry::ClientOptions::new()
                .dsn(dsn.expose_secret())
                .maybe_release(sentry::release_name!())
                .environment(settings.env.as_str())
                .traces_sample_rate(settings.sentry.traces_sample_rate)
                .send_default_pii(false),
        )
    });
    // Errors become Sentry events, warnings and info become breadcrumbs on them, spans become traces.
    let sentry_layers = sentry_guard.as_ref().map(|_| {
        use sentry::integrations::tracing::{BreadcrumbLayer, ErrorLayer, SpanLayer};
        use tracing_subscriber::filter::LevelFilter;
        ErrorLayer::new()
            .with_filter(LevelFilter::ERROR)
            .and_then(BreadcrumbLayer::new().with_filter(LevelFilter::INFO))
            .and_then(SpanLayer::new().with_filter(LevelFilter::INFO))
    });
    let _ = tracing_subscriber::registry().with(filter).with(fmt).with(sentry_layers).try_init();
    TelemetryGuard { _sentry: sentry_guard }
}
