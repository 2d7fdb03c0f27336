//! `vpnshop catalog seed | list`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use crate::app::AppState;
use crate::config::Settings;
use crate::domain::{Currency, DataCap, Language, Money};
use crate::services::catalog::{self, Catalog};

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

pub(super) async fn run(settings: Settings, cmd: CatalogCommand) -> anyhow::Result<()> {
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
