//! `vpnshop admin add | list | remove | password | api-key …`: who reviews payments in Telegram (with
//! `telegram.admin_ids`) and who may use the admin API (a password, shown once; API keys, shown once).

use clap::Subcommand;

use crate::app::AppState;
use crate::config::Settings;
use crate::error::AppError;
use crate::services::auth::{self, Scope};
use crate::services::users;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add an admin (or update one by username): with a Telegram id they review payments in Telegram.
    Add {
        username: String,
        #[arg(long)]
        telegram_id: Option<i64>,
        /// owner, admin or viewer
        #[arg(long, default_value = "admin")]
        role: String,
    },
    /// Every admin.
    List,
    /// Disable an admin (kept for the audit trail): their sessions, tokens and keys stop working at once.
    Remove { username: String },
    /// Give an admin a new password (generated and printed once, or read from standard input with --stdin);
    /// their sessions end.
    Password {
        username: String,
        /// Read the password from standard input (12 to 256 characters) instead of generating one.
        #[arg(long)]
        stdin: bool,
    },
    /// API keys for the admin API (`Authorization: Bearer <key>`).
    #[command(subcommand, name = "api-key")]
    ApiKey(ApiKeyCommand),
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create a key (printed once; only its hash is kept).
    Create {
        /// What the key is for.
        #[arg(long, default_value = "api")]
        name: String,
        /// read (list and look) or write (also change)
        #[arg(long)]
        scope: Scope,
        /// The admin the key belongs to (it stops working when they are removed).
        #[arg(long)]
        admin: Option<String>,
    },
    /// Every key (never the key itself).
    List,
    /// Revoke a key by id (`42`) or prefix (`vpnshop_ab12cd34`): it stops working at once.
    Revoke { key: String },
}

pub(super) async fn run(settings: Settings, cmd: AdminCommand) -> anyhow::Result<()> {
    let state = AppState::build(settings)?;
    let pool = &state.pool;
    match cmd {
        AdminCommand::Add { username, telegram_id, role } => {
            let admin = users::add_admin(pool, &username, telegram_id, &role).await?;
            let tg = admin.telegram_id.map_or_else(|| "no Telegram id".to_owned(), |id| format!("Telegram {id}"));
            println!("admin {} ({}, {tg}) added", admin.username, admin.role);
            if !auth::has_password(pool, &admin.username).await? {
                let password = auth::set_password(pool, &admin.username, None).await?;
                println!(
                    "password (shown once; change it with `vpnshop admin password {}`): {password}",
                    admin.username
                );
            }
        }
        AdminCommand::List => {
            for a in users::admins(pool).await? {
                let tg = a.telegram_id.map_or_else(|| "-".to_owned(), |id| id.to_string());
                let state = if a.disabled_at.is_some() { "disabled" } else { "active" };
                println!("{}  {}  telegram {tg}  {state}", a.username, a.role);
            }
        }
        AdminCommand::Remove { username } => {
            if !users::remove_admin(pool, &username).await? {
                return Err(AppError::NotFound("admin").into());
            }
            println!("admin {username} disabled");
        }
        AdminCommand::Password { username, stdin } => {
            let given = if stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Some(line.trim_end_matches(['\r', '\n']).to_owned())
            } else {
                None
            };
            let password = auth::set_password(pool, &username, given).await?;
            if stdin {
                println!("password of {username} changed; their sessions ended");
            } else {
                println!("new password of {username} (shown once; their sessions ended): {password}");
            }
        }
        AdminCommand::ApiKey(ApiKeyCommand::Create { name, scope, admin }) => {
            let key =
                auth::create_key(pool, &name, scope, admin.as_deref(), &crate::services::audit::Who::cli()).await?;
            println!("API key {} ({}, {}) created; shown once:", key.id, key.name, key.scope);
            println!("{}", key.key);
        }
        AdminCommand::ApiKey(ApiKeyCommand::List) => {
            for k in auth::keys(pool).await? {
                let state = match k.revoked_at {
                    Some(at) => format!("revoked {}", at.format("%Y-%m-%d %H:%M")),
                    None => "active".to_owned(),
                };
                let used = k
                    .last_used_at
                    .map_or_else(|| "never used".to_owned(), |t| format!("used {}", t.format("%Y-%m-%d %H:%M")));
                println!("{}  vpnshop_{}_…  {}  {}  {used}  {state}", k.id, k.prefix, k.scope, k.name);
            }
        }
        AdminCommand::ApiKey(ApiKeyCommand::Revoke { key }) => {
            let row = auth::revoke_key(pool, &key, &crate::services::audit::Who::cli()).await?;
            println!("API key {} (vpnshop_{}_…) revoked", row.id, row.prefix);
        }
    }
    Ok(())
}
