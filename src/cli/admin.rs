//! `vpnshop admin add | list | remove`: who reviews payments in Telegram (with `telegram.admin_ids`).

use clap::Subcommand;

use crate::app::AppState;
use crate::config::Settings;
use crate::error::AppError;
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
    /// Disable an admin (kept for the audit trail).
    Remove { username: String },
}

pub(super) async fn run(settings: Settings, cmd: AdminCommand) -> anyhow::Result<()> {
    let state = AppState::build(settings)?;
    let pool = &state.pool;
    match cmd {
        AdminCommand::Add { username, telegram_id, role } => {
            let admin = users::add_admin(pool, &username, telegram_id, &role).await?;
            let tg = admin.telegram_id.map_or_else(|| "no Telegram id".to_owned(), |id| format!("Telegram {id}"));
            println!("admin {} ({}, {tg}) added", admin.username, admin.role);
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
    }
    Ok(())
}
