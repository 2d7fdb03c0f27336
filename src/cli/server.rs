//! `vpnshop server add | list | remove | disable | enable | test | pin-key`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use super::parse_text;
use crate::app::AppState;
use crate::config::Settings;
use crate::domain::inbound::{self, InboundSpec};
use crate::domain::server::{Core, Protocol};
use crate::error::AppError;
use crate::services::nodes::probe::Outcome;
use crate::services::servers::{self, Actor, ServerInput};

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
    /// Replace a node's client inbounds (one planned core restart; every client is put on every inbound).
    Inbounds {
        name: String,
        /// A client inbound, repeatable (as for `server add`).
        #[arg(long, conflicts_with = "inbounds", required_unless_present = "inbounds")]
        inbound: Vec<String>,
        /// A TOML or JSON file of inbounds.
        #[arg(long)]
        inbounds: Option<PathBuf>,
    },
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
    /// A client inbound, repeatable: `tag=…,protocol=vmess|vless,transport=tcp|ws|grpc,security=none|tls|reality,
    /// port=…` and its settings (path, host, service_name, sni, alpn, fingerprint, cert_path, key_path, cdn,
    /// public_host, public_port, label, reality.*); see docs/provisioning.md. Without it: one plain TCP inbound
    /// from --protocol, --inbound-tag and --port.
    #[arg(long, conflicts_with = "inbounds")]
    pub inbound: Vec<String>,
    /// A TOML (`[[inbound]]` tables) or JSON file of the node's client inbounds.
    #[arg(long)]
    pub inbounds: Option<PathBuf>,
}

/// The inbounds given as `--inbound` flags or an `--inbounds` file (none: the legacy single inbound).
fn inbound_args(flags: &[String], file: Option<&std::path::Path>) -> anyhow::Result<Vec<InboundSpec>> {
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading inbounds {}", path.display()))?;
        return inbound::parse_file(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
    }
    flags
        .iter()
        .enumerate()
        .map(|(i, flag)| inbound::parse_flag(flag).map_err(|e| anyhow::anyhow!("--inbound #{}: {e}", i + 1)))
        .collect()
}

pub(super) async fn run(settings: Settings, cmd: ServerCommand) -> anyhow::Result<()> {
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
                inbounds: inbound_args(&a.inbound, a.inbounds.as_deref())?,
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
            table
                .set_header(["name", "location", "public", "ssh", "core", "inbounds", "capacity", "enabled", "health"]);
            let list = servers::list(pool).await?;
            for s in &list {
                let inbounds = match inbound::from_stored(&s.inbounds, s.protocol, &s.inbound_tag, s.public_port) {
                    Ok(list) => list
                        .iter()
                        .map(|i| format!("{} :{} ({})", i.tag, i.connect_port(), i.display_label()))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    Err(e) => format!("unreadable: {e}"),
                };
                table.add_row([
                    s.name.clone(),
                    s.location_code.clone(),
                    s.public_host.clone(),
                    format!("{}@{}:{}", s.ssh_user, s.ssh_host, s.ssh_port),
                    s.core.to_string(),
                    inbounds,
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
        ServerCommand::Inbounds { name, inbound, inbounds } => {
            let specs = inbound_args(&inbound, inbounds.as_deref())?;
            let server = servers::list(pool).await?.into_iter().find(|s| s.name == name);
            let server = server.ok_or_else(|| anyhow::anyhow!("no server named {name:?}"))?;
            let server = servers::set_inbounds(pool, server.id, &specs, Actor::CLI, &state.settings.jobs).await?;
            println!(
                "server {}: {} inbound(s) ({}); its next sync rewrites the config and restarts the core once",
                server.name,
                specs.len(),
                specs.iter().map(|s| s.display_label()).collect::<Vec<_>>().join(", ")
            );
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
