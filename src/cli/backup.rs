//! `vpnshop backup` and `vpnshop restore`: the database to a verified file and back (see `crate::backup`).

use std::path::PathBuf;

use clap::Args;

use crate::backup::retention::Policy;
use crate::backup::{self, BackupOptions, Encryption, Programs, RestoreOptions};
use crate::config::Settings;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write (default `backup.dir`).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the newest backup of each of the last N days that have one (default `backup.keep_daily`).
    #[arg(long, value_name = "N")]
    pub keep_daily: Option<u32>,
    /// Keep the newest backup of each of the last M ISO weeks that have one (default `backup.keep_weekly`).
    #[arg(long, value_name = "M")]
    pub keep_weekly: Option<u32>,
    /// Encrypt to this age recipient (repeatable); with --recipients-file, replaces `backup.recipients`.
    #[arg(long = "recipient", short = 'r', value_name = "AGE_RECIPIENT")]
    pub recipients: Vec<String>,
    /// Encrypt to the recipients listed in this file (age's -R).
    #[arg(long, value_name = "FILE")]
    pub recipients_file: Option<PathBuf>,
    /// Delete no old backups.
    #[arg(long)]
    pub no_prune: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup (`vpnshop-….dump` or `.dump.age`); its manifest is read from beside it.
    pub file: PathBuf,
    /// The age identity file that decrypts an encrypted backup.
    #[arg(long, short = 'i', value_name = "AGE_IDENTITY_FILE")]
    pub identity: Option<PathBuf>,
    /// The manifest, when it is not beside the file.
    #[arg(long, value_name = "FILE", conflicts_with = "without_manifest")]
    pub manifest: Option<PathBuf>,
    /// Restore although the manifest is lost: nothing is checked.
    #[arg(long)]
    pub without_manifest: bool,
    /// The database is not empty: drop the backup's tables there and restore them, in the same transaction.
    /// Refused while other sessions are connected or when it has tables the backup has not.
    #[arg(long)]
    pub force: bool,
    /// Restore a backup made by a newer vpnshop (its schema has migrations this one does not know).
    #[arg(long)]
    pub allow_newer: bool,
}

pub async fn backup(settings: Settings, args: BackupArgs) -> anyhow::Result<()> {
    let mut options = BackupOptions::from_settings(&settings);
    if let Some(dir) = args.dir {
        options.dir = dir;
    }
    if let Some(policy) = options.retention.as_mut() {
        policy.keep_daily = args.keep_daily.unwrap_or(policy.keep_daily);
        policy.keep_weekly = args.keep_weekly.unwrap_or(policy.keep_weekly);
    }
    if args.no_prune {
        options.retention = None;
    }
    if !args.recipients.is_empty() || args.recipients_file.is_some() {
        options.encryption = Encryption { recipients: args.recipients, recipients_file: args.recipients_file };
    }
    let report = backup::backup(&settings, &options).await?;
    println!("{}", report.path.display());
    println!("size: {} bytes", report.bytes);
    println!("sha256: {}", report.sha256);
    println!("manifest: {} ({} tables, {} rows)", report.manifest_path.display(), report.tables, report.rows);
    if options.encryption.is_on() {
        println!("encrypted with age");
    }
    match (&options.retention, report.pruned.is_empty()) {
        (None, _) => println!("pruned: nothing (--no-prune)"),
        (Some(_), true) => println!("pruned: nothing"),
        (Some(Policy { keep_daily, keep_weekly }), false) => {
            println!("pruned (keeping {keep_daily} days, {keep_weekly} weeks): {}", report.pruned.join(", "))
        }
    }
    Ok(())
}

pub async fn restore(settings: Settings, args: RestoreArgs) -> anyhow::Result<()> {
    let options = RestoreOptions {
        file: args.file,
        identity: args.identity,
        manifest: args.manifest,
        without_manifest: args.without_manifest,
        force: args.force,
        allow_newer: args.allow_newer,
        programs: Programs::from_settings(&settings),
    };
    let report = backup::restore(&settings, &options).await?;
    let what = if report.replaced { "replaced the database's tables with" } else { "restored" };
    println!("{what} {}", options.file.display());
    match report.verified {
        Some((tables, rows)) => println!(
            "verified: {tables} tables, {rows} rows match the manifest (made by vpnshop {})",
            report.made_by.as_deref().unwrap_or("?")
        ),
        None => println!("not verified: restored without a manifest"),
    }
    if !report.unknown_migrations.is_empty() {
        println!(
            "the backup has {} migrations this vpnshop does not know: run the release that made it, or one that \
             runs on its schema",
            report.unknown_migrations.len()
        );
    }
    if report.pending_migrations > 0 {
        println!(
            "the backup predates {} migrations of this vpnshop: `vpnshop migrate` (or `serve`) applies them",
            report.pending_migrations
        );
    }
    Ok(())
}
