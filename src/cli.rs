//! The command line: `serve`, `migrate`, `catalog`, `server`. Each command is parse → service → print.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use tokio_util::sync::CancellationToken;

use crate::app::{self, AppState, Listeners};
use crate::config::Settings;
use crate::domain::server::{Core, Protocol};
use crate::domain::{Currency, DataCap, Language, Money};
use crate::error::AppError;
use crate::services::catalog::{self, Catalog};
use crate::services::nodes::probe::Outcome;
use crate::services::servers::{self, Actor, ServerInput};
use crate::{db, telemetry};

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
    /// Apply pending database migrations and exit.
    Migrate,
    /// The plan catalogue.
    #[command(subcommand)]
    Catalog(CatalogCommand),
    /// V2Ray/Xray nodes.
    #[command(subcommand)]
    Server(ServerCommand),
}

#[derive(Debug, Subcommand)]
pub enum CatalogCommand {
    /// Create or update plans and prices from the catalogue file (idempotent).
    Seed {
        /// Catalogue file (default: `catalog.path` setting).
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Print the plans with their prices.
    List {
        /// Include retired plans.
        #[arg(long)]
        all: bool,
        /// Only this location.
        #[arg(long)]
        location: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Register a node.
    Add(Box<AddServer>),
    /// List nodes.
    List,
    /// Delete a node that never carried subscriptions.
    Remove { name: String },
    /// Stop placing new clients on a node.
    Disable { name: String },
    /// Place new clients on a node again.
    Enable { name: String },
    /// Check a node step by step (SSH, host key, config file, core API, stats) and say what is wrong.
    Test { name: String },
    /// Pin a node's SSH host key (after a rebuild): a given fingerprint, or whatever it presents now.
    PinKey {
        name: String,
        #[arg(long, conflicts_with = "trust", required_unless_present = "trust")]
        fingerprint: Option<String>,
        /// Trust the key the node presents right now (only on a network you trust).
        #[arg(long)]
        trust: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddServer {
    #[arg(long)]
    pub name: String,
    /// Location code from the catalogue (e.g. `de`).
    #[arg(long)]
    pub location: String,
    /// Host customers connect to (in share links).
    #[arg(long)]
    pub host: String,
    /// Port customers connect to.
    #[arg(long, default_value_t = 443)]
    pub port: u16,
    /// Host we SSH to (default: --host).
    #[arg(long)]
    pub ssh_host: Option<String>,
    #[arg(long, default_value_t = 22)]
    pub ssh_port: u16,
    #[arg(long, default_value = "vpnshop")]
    pub ssh_user: String,
    /// Pinned SSH host key fingerprint (`SHA256:…`, from `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`).
    #[arg(long)]
    pub host_key: Option<String>,
    #[arg(long, value_parser = parse_text::<Core>, default_value = "v2ray")]
    pub core: Core,
    #[arg(long, value_parser = parse_text::<Protocol>, default_value = "vmess")]
    pub protocol: Protocol,
    /// Tag of the inbound clients are added to.
    #[arg(long, default_value = "proxy")]
    pub inbound_tag: String,
    /// The core's API port on the node's loopback.
    #[arg(long, default_value_t = 10085)]
    pub api_port: u16,
    /// The core's config file on the node (default: /etc/<core>/config.json).
    #[arg(long)]
    pub config_path: Option<String>,
    /// Most clients this node takes.
    #[arg(long, default_value_t = 500)]
    pub capacity: u32,
    /// Command that restarts the core on the node (default: `sudo -n systemctl restart <core>`).
    #[arg(long)]
    pub restart_command: Option<String>,
    /// A JSON file with the node's base config template (default: built from the options above).
    #[arg(long)]
    pub base_config: Option<PathBuf>,
    /// Pin whatever host key the node presents now (trust on first use; only on a network you trust).
    #[arg(long, conflicts_with = "host_key")]
    pub trust_host_key: bool,
}

fn parse_text<T: std::str::FromStr<Err = crate::domain::UnknownValue>>(raw: &str) -> Result<T, String> {
    raw.parse().map_err(|e: crate::domain::UnknownValue| e.to_string())
}

pub async fn execute(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = telemetry::init(&settings);
    let result = match cli.command {
        Command::Serve => serve(settings).await,
        Command::Migrate => {
            let state = AppState::build(settings)?;
            db::migrate(&state.pool).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Catalog(cmd) => catalog_command(settings, cmd).await,
        Command::Server(cmd) => server_command(settings, cmd).await,
    };
    if let Err(e) = &result {
        // An operator's mistake (bad input, a conflict) is only printed by main; anything else is also logged
        // here, and so reported to Sentry when configured.
        let operator_error = e.downcast_ref::<crate::error::AppError>().is_some_and(|a| !a.is_internal());
        if !operator_error {
            tracing::error!(error = format!("{e:#}"), "command failed");
        }
    }
    result
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

async fn catalog_command(settings: Settings, cmd: CatalogCommand) -> anyhow::Result<()> {
    let state = AppState::build(settings)?;
    match cmd {
        CatalogCommand::Seed { file } => {
            let path = file.unwrap_or_else(|| state.settings.catalog.path.clone());
            let catalog = Catalog::load(&path)?;
            let report = catalog::seed(&state.pool, &catalog).await.context("seeding the catalogue")?;
            if report.changed_anything() {
                println!(
                    "catalogue seeded from {}: locations +{} ~{} -{}, plans +{} ~{} -{}, prices +{} ~{} -{}",
                    path.display(),
                    report.locations_added,
                    report.locations_updated,
                    report.locations_retired,
                    report.plans_added,
                    report.plans_updated,
                    report.plans_retired,
                    report.prices_added,
                    report.prices_changed,
                    report.prices_removed
                );
            } else {
                println!("catalogue is up to date with {} (nothing changed)", path.display());
            }
            Ok(())
        }
        CatalogCommand::List { all, location } => {
            let plans = catalog::list(&state.pool, all).await?;
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header(["code", "location", "days", "devices", "data", "USD", "EUR", "IRR (Toman)", "active"]);
            let mut shown = 0;
            for plan in plans.iter().filter(|p| location.as_ref().is_none_or(|l| &p.location_code == l)) {
                let price = |c: Currency| {
                    plan.prices
                        .iter()
                        .find(|(pc, _)| *pc == c)
                        .and_then(|(_, minor)| Money::from_minor(*minor, c).ok())
                        .map(|m| m.format(Language::En))
                        .unwrap_or_else(|| "-".into())
                };
                let data = DataCap::from_db(plan.data_cap_bytes).map(|d| d.to_string()).unwrap_or_else(|_| "?".into());
                table.add_row([
                    plan.code.clone(),
                    plan.location_code.clone(),
                    plan.duration_days.to_string(),
                    plan.seats.to_string(),
                    data,
                    price(Currency::Usd),
                    price(Currency::Eur),
                    price(Currency::Irr),
                    if plan.active { "yes".into() } else { "no".into() },
                ]);
                shown += 1;
            }
            println!("{table}\n{shown} plans");
            Ok(())
        }
    }
}

async fn server_command(settings: Settings, cmd: ServerCommand) -> anyhow::Result<()> {
    let state = AppState::build(settings)?;
    let pool = &state.pool;
    match cmd {
        ServerCommand::Add(a) => {
            let input = ServerInput {
                name: a.name,
                location: a.location,
                public_host: a.host,
                public_port: a.port,
                ssh_host: a.ssh_host,
                ssh_port: a.ssh_port,
                ssh_user: a.ssh_user,
                host_key: a.host_key,
                core: a.core,
                protocol: a.protocol,
                inbound_tag: a.inbound_tag,
                api_port: a.api_port,
                config_path: a.config_path,
                capacity: a.capacity,
                restart_command: a.restart_command,
                base_config: match &a.base_config {
                    None => None,
                    Some(path) => {
                        let text = std::fs::read_to_string(path)
                            .with_context(|| format!("reading base config {}", path.display()))?;
                        Some(serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?)
                    }
                },
            };
            let server = servers::add(pool, &input, Actor::CLI).await?;
            println!("server {} added in {} (id {})", server.name, server.location_code, server.id);
            if a.trust_host_key {
                let fingerprint = servers::pin_host_key(pool, &state.nodes, &server.name, None, Actor::CLI).await?;
                println!("pinned the host key the node presents: {fingerprint}");
            } else if server.host_key_fingerprint.is_none() {
                println!(
                    "note: no host key pinned yet; run `vpnshop server pin-key {} --fingerprint SHA256:…` (or --trust)",
                    server.name
                );
            }
        }
        ServerCommand::List => {
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED);
            table.set_header([
                "name", "location", "public", "ssh", "core", "protocol", "inbound", "capacity", "enabled", "health",
            ]);
            let list = servers::list(pool).await?;
            for s in &list {
                table.add_row([
                    s.name.clone(),
                    s.location_code.clone(),
                    format!("{}:{}", s.public_host, s.public_port),
                    format!("{}@{}:{}", s.ssh_user, s.ssh_host, s.ssh_port),
                    s.core.to_string(),
                    s.protocol.to_string(),
                    s.inbound_tag.clone(),
                    s.capacity.to_string(),
                    if s.enabled { "yes".into() } else { "no".into() },
                    s.health.to_string(),
                ]);
            }
            println!("{table}\n{} servers", list.len());
        }
        ServerCommand::Remove { name } => {
            servers::remove(pool, &name, Actor::CLI).await?;
            println!("server {name} removed");
        }
        ServerCommand::Disable { name } => {
            servers::set_enabled(pool, &name, false, Actor::CLI).await?;
            println!("server {name} disabled: no new clients will be placed on it");
        }
        ServerCommand::Enable { name } => {
            servers::set_enabled(pool, &name, true, Actor::CLI).await?;
            println!("server {name} enabled");
        }
        ServerCommand::PinKey { name, fingerprint, trust } => {
            let before =
                servers::list(pool).await?.into_iter().find(|s| s.name == name).and_then(|s| s.host_key_fingerprint);
            let pinned = servers::pin_host_key(pool, &state.nodes, &name, fingerprint.as_deref(), Actor::CLI).await?;
            match before {
                Some(old) if old == pinned => println!("server {name}: host key {pinned} was already pinned"),
                Some(old) => println!("server {name}: host key {pinned} pinned (replaces {old})"),
                None => println!("server {name}: host key {pinned} pinned"),
            }
            if trust {
                println!(
                    "trusted the key the node presents now; compare it with `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` on the node's console"
                );
            }
        }
        ServerCommand::Test { name } => {
            let checks = state.nodes.probe(&name).await?;
            for c in &checks {
                let label = match c.outcome {
                    Outcome::Ok => "ok  ",
                    Outcome::Failed => "FAIL",
                    Outcome::Skipped => "skip",
                };
                println!("{label} {:<14} {}", c.name, c.detail);
            }
            if let Some(failed) = checks.iter().find(|c| c.outcome == Outcome::Failed) {
                // the node's state, not a fault of ours: printed, not logged as an error
                return Err(
                    AppError::conflict(format!("server {name} is not ready (failed check: {})", failed.name)).into()
                );
            }
            println!("server {name} is ready");
        }
    }
    Ok(())
}
