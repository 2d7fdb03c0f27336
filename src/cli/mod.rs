//! The command line: `serve`, `migrate`, `catalog`, `server`, `subscription`, `payment`, `admin`, `backup`,
//! `restore`. Each command is parse → service → print: results on stdout, and on stderr only the warnings and
//! errors that concern the command.

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::app::{self, AppState, Listeners};
use crate::config::Settings;
use crate::telemetry;

mod admin;
mod backup;
mod catalog;
mod migrate;
mod payment;
mod server;
mod subscription;

pub use admin::AdminCommand;
pub use backup::{BackupArgs, RestoreArgs};
pub use catalog::CatalogCommand;
pub use migrate::{CheckOutcome, MigrateArgs};
pub use payment::PaymentCommand;
pub use server::{AddServer, ServerCommand};
pub use subscription::SubscriptionCommand;

#[derive(Debug, Parser)]
#[command(name = "vpnshop", version, about = "A Telegram VPN shop: plans, payments, V2Ray provisioning")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything: HTTP, bot, job workers and scheduler (applies pending migrations first).
    Serve,
    /// Apply pending database migrations and exit (with --check: only say whether they are safe under load).
    Migrate(MigrateArgs),
    /// The plan catalogue.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// V2Ray/Xray nodes.
    #[command(subcommand)]
    Server(ServerCommand),
    /// Customers' subscriptions (what an operator does on request: new feed URL, new device link, revoke).
    #[command(subcommand)]
    Subscription(SubscriptionCommand),
    /// Card payments: the review queue, accept, reject.
    #[command(subcommand)]
    Payment(PaymentCommand),
    /// The shop's admins (who review payments in Telegram).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// Back up the database: pg_dump with a manifest from the same snapshot, optionally encrypted with age, then
    /// delete old backups (keep the newest of each recent day and ISO week).
    Backup(BackupArgs),
    /// Restore a backup into the configured (empty) database in one transaction, then check every table against
    /// the manifest.
    Restore(RestoreArgs),
}

pub(crate) fn parse_text<T: std::str::FromStr<Err = crate::domain::UnknownValue>>(raw: &str) -> Result<T, String> {
    raw.parse().map_err(|e: crate::domain::UnknownValue| e.to_string())
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let output = match cli.command {
        Command::Serve => telemetry::Output::Service,
        _ => telemetry::Output::Command,
    };
    let _telemetry = telemetry::init(&settings, output);
    let result = match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate(args) => migrate::run(settings, args).await,
        Command::Catalog(cmd) => catalog::run(settings, cmd).await,
        Command::Server(cmd) => server::run(settings, cmd).await,
        Command::Subscription(cmd) => subscription::run(settings, cmd).await,
        Command::Payment(cmd) => payment::run(settings, cmd).await,
        Command::Admin(cmd) => admin::run(settings, cmd).await,
        Command::Backup(args) => backup::backup(settings, args).await,
        Command::Restore(args) => backup::restore(settings, args).await,
    };
    if let Err(e) = &result {
        // An operator's mistake (bad input, a conflict) is only printed by main; anything else is also logged
        // here, and so reported to Sentry when configured.
        // main prints it; Sentry (when configured) gets it too
        let operator_error = e.downcast_ref::<crate::error::AppError>().is_some_and(|a| !a.is_internal())
            || matches!(e.downcast_ref::<CheckOutcome>(), Some(CheckOutcome::Unsafe(_)));
        if !operator_error {
            tracing::error!(target: telemetry::SENTRY_ONLY, error = %error_text(e), "command failed");
        }
    }
    result
}

/// The exit status of a failed command: 1, or what `migrate --check` says.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    e.downcast_ref::<CheckOutcome>().map_or(1, CheckOutcome::exit_code)
}

/// An error and its causes on one line, each said once (a database error's cause often repeats its message).
pub fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if part.is_empty() || text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let listeners = Listeners::bind(&settings).await?;
    let state = AppState::build(settings)?;
    app::prepare(&state).await?;
    let cancel = CancellationToken::new();
    tokio::spawn(shutdown_on_signal(cancel.clone()));
    app::run(state, listeners, cancel).await
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => tracing::info!("SIGINT received"),
        _ = term => tracing::info!("SIGTERM received"),
    }
    cancel.cancel();
}
