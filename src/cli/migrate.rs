//! `vpnshop migrate [--check]`: apply the pending migrations, or only say whether each of their statements is
//! safe to apply while the shop serves, and why (exit 0: all safe or none pending; 1: some unsafe; 2: could not
//! check).

use anyhow::Context;
use clap::Args;
use sqlx::{Connection, PgConnection};

use crate::config::Settings;
use crate::db::{self, migrations};
use migrations::check::{self, Report};

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Apply nothing: list the pending migrations and whether each statement is safe under load, and why.
    #[arg(long)]
    pub check: bool,
}

/// How `migrate --check` ends when not every pending migration is safe.
#[derive(Debug, thiserror::Error)]
pub enum CheckOutcome {
    #[error("{0} of the pending migrations are not safe to apply while the shop serves (see above)")]
    Unsafe(usize),
    #[error("cannot check the pending migrations")]
    CannotCheck,
}

impl CheckOutcome {
    pub fn exit_code(&self) -> u8 {
        match self {
            CheckOutcome::Unsafe(_) => 1,
            CheckOutcome::CannotCheck => 2,
        }
    }
}

pub(super) async fn run(settings: Settings, args: MigrateArgs) -> anyhow::Result<()> {
    let options = db::connect_options(&settings)?;
    if !args.check {
        for m in migrations::apply(&options, migrations::Policy::All).await? {
            println!("applied {} {}", m.version, m.description);
        }
        println!("database is up to date");
        return Ok(());
    }
    let reports = reports(&options).await.context(CheckOutcome::CannotCheck)?;
    let unsafe_count = reports.iter().filter(|r| !r.is_safe()).count();
    match (reports.len(), unsafe_count) {
        (0, _) => Ok(()),
        (n, 0) => {
            println!("all {n} pending migration(s) are safe to apply while the shop serves");
            Ok(())
        }
        (_, unsafe_count) => Err(CheckOutcome::Unsafe(unsafe_count).into()),
    }
}

/// Prints the database's state and checks its pending migrations.
async fn reports(options: &sqlx::postgres::PgConnectOptions) -> anyhow::Result<Vec<Report>> {
    let mut conn = PgConnection::connect_with(options).await.context("connecting to the database")?;
    let status = migrations::status(&mut conn).await?;
    if let Some(v) = status.failed.first() {
        anyhow::bail!("migration {v} started and did not finish: it needs an operator before anything else");
    }
    if let Some(v) = status.changed.first() {
        anyhow::bail!("migration {v} was applied with other content than this binary's file: was it edited?");
    }
    if !status.unknown.is_empty() {
        let versions: Vec<String> = status.unknown.iter().map(i64::to_string).collect();
        println!(
            "the database also has {} migration(s) of a newer release ({}); this release runs on it",
            versions.len(),
            versions.join(", ")
        );
    }
    if status.pending.is_empty() {
        println!("no pending migrations: the database is up to date");
        return Ok(Vec::new());
    }
    let catalog = migrations::load_catalog(&mut conn).await?;
    let _ = conn.close().await;
    let sources: Vec<check::Source<'_>> = status.pending.iter().map(|m| check::Source::from(*m)).collect();
    let reports = check::analyse(&sources, &catalog);
    println!("{} pending migration(s):", reports.len());
    for report in &reports {
        print_report(report);
    }
    Ok(reports)
}

fn print_report(report: &Report) {
    let verdict = match (&report.allowed, report.is_safe()) {
        (Some(reason), _) if report.findings.iter().any(|f| f.risk.is_some()) => format!("allowed ({reason})"),
        (_, true) => "safe".to_owned(),
        (_, false) => "UNSAFE".to_owned(),
    };
    println!("\n{} {}: {verdict}", report.version, report.description);
    for f in &report.findings {
        match f.risk {
            None => println!("  ok      {}\n          {}", f.statement, f.why),
            Some(risk) => println!("  UNSAFE  {}\n          {}: {}", f.statement, risk.label(), f.why),
        }
    }
    for note in &report.notes {
        println!("  note: {note}");
    }
}
