//! Restoring a backup into the configured database: the file is checked against its manifest (size, SHA-256,
//! migrations this binary knows), `pg_restore` runs in one transaction (a broken file leaves the database as it
//! was), and every restored table is then counted and checksummed against the manifest.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sqlx::Connection;

use super::manifest::{self, Manifest};
use super::tools::{Target, Tool};
use super::{Kind, Programs, decrypt_command, names, read_maybe_encrypted, sniff};
use crate::config::Settings;

/// What to restore, and how.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub file: PathBuf,
    /// The age identity file, for an encrypted backup.
    pub identity: Option<PathBuf>,
    /// Where the manifest is, when not beside the file.
    pub manifest: Option<PathBuf>,
    /// Restore a file whose manifest is lost: nothing is checked.
    pub without_manifest: bool,
    /// Replace the content of a database that is not empty.
    pub force: bool,
    /// Restore a backup whose schema has migrations this binary does not know (made by a newer vpnshop).
    pub allow_newer: bool,
    pub programs: Programs,
}

/// A finished restore.
#[derive(Debug, Clone)]
pub struct RestoreReport {
    /// The tables and rows checked against the manifest; `None` without one.
    pub verified: Option<(usize, i64)>,
    /// Whether existing content was replaced (`force`).
    pub replaced: bool,
    /// Migrations this binary has that the backup predates (`vpnshop migrate` applies them).
    pub pending_migrations: usize,
    /// Migrations of the backup this binary does not know (restored with `allow_newer`).
    pub unknown_migrations: Vec<i64>,
    /// The vpnshop version that made the backup.
    pub made_by: Option<String>,
}

/// Restores `options.file` into the database of `settings`.
pub async fn restore(settings: &Settings, options: &RestoreOptions) -> anyhow::Result<RestoreReport> {
    let file = &options.file;
    let kind = sniff(file)?;
    if !matches!(kind, Some(Kind::Dump | Kind::Age)) {
        bail!("{} is not a backup (neither a pg_dump custom archive nor an age-encrypted file)", file.display());
    }
    if kind == Some(Kind::Age) && options.identity.is_none() {
        bail!("{} is encrypted: pass --identity FILE (the age identity it was encrypted to)", file.display());
    }
    let manifest = if options.without_manifest { None } else { Some(load_manifest(options).await?) };
    let (mut pending_migrations, mut unknown_migrations) = (0, Vec::new());
    if let Some(m) = &manifest {
        check_file(file, m)?;
        (pending_migrations, unknown_migrations) = check_migrations(m, options.allow_newer)?;
    }

    let target = Target::from_url(settings.database_url())?;
    let mut conn = super::dump::connect(settings).await?;
    let existing = manifest::tables(&mut conn).await?;
    let replace = !existing.is_empty();
    if replace {
        let sample: Vec<&str> = existing.keys().take(3).map(String::as_str).collect();
        if !options.force {
            bail!(
                "the database is not empty ({} tables, e.g. {}): restore into a new, empty database, or pass --force \
                 to replace the backup's tables",
                existing.len(),
                sample.join(", ")
            );
        }
        let Some(m) = &manifest else {
            bail!("--force needs the backup's manifest (it says which tables are replaced)");
        };
        let theirs: BTreeSet<&str> = m.tables.iter().map(|t| t.table.as_str()).collect();
        let extra: Vec<&str> = existing.keys().map(String::as_str).filter(|t| !theirs.contains(t)).collect();
        if !extra.is_empty() {
            bail!(
                "the database has tables the backup does not ({}): --force only replaces the backup's own tables; \
                 restore into a new, empty database instead",
                extra.join(", ")
            );
        }
        let others: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity
              WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'",
        )
        .fetch_one(&mut conn)
        .await?;
        if others > 0 {
            bail!(
                "{others} other sessions are connected to the database: stop every vpnshop instance (and other \
                 clients) before replacing its content"
            );
        }
    }

    run_pg_restore(&target, options, kind == Some(Kind::Age), replace).await?;

    let Some(m) = manifest else {
        let _ = conn.close().await;
        let report =
            RestoreReport { verified: None, replaced: replace, pending_migrations, unknown_migrations, made_by: None };
        return Ok(report);
    };
    let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let found = manifest::digests(&mut tx).await.context("checking the restored tables")?;
    tx.rollback().await?;
    let _ = conn.close().await;
    let mismatches = manifest::compare(&m.tables, &found);
    if !mismatches.is_empty() {
        let list: Vec<String> = mismatches.iter().map(ToString::to_string).collect();
        bail!(
            "restored {}, but the database does not match its manifest: {} — do not run the shop on it",
            file.display(),
            list.join("; ")
        );
    }
    let rows = m.tables.iter().map(|t| t.rows).sum();
    Ok(RestoreReport {
        verified: Some((m.tables.len(), rows)),
        replaced: replace,
        pending_migrations,
        unknown_migrations,
        made_by: Some(m.vpnshop_version),
    })
}

/// Reads and decrypts the manifest.
async fn load_manifest(options: &RestoreOptions) -> anyhow::Result<Manifest> {
    let path = options.manifest.clone().unwrap_or_else(|| names::manifest_beside(&options.file));
    if !path.exists() {
        bail!(
            "the manifest {} is missing (the restore is checked against it): pass --manifest PATH when it is \
             elsewhere, or --without-manifest to restore with no check at all",
            path.display()
        );
    }
    let data = read_maybe_encrypted(&path, &options.programs.age, options.identity.as_deref()).await?;
    let m: Manifest =
        serde_json::from_slice(&data).with_context(|| format!("the manifest {} is not valid", path.display()))?;
    if m.format != manifest::FORMAT {
        bail!(
            "the manifest {} has format {}; this vpnshop reads format {}",
            path.display(),
            m.format,
            manifest::FORMAT
        );
    }
    Ok(m)
}

/// The file is the one the manifest describes: same size and SHA-256.
fn check_file(path: &Path, m: &Manifest) -> anyhow::Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let (mut hasher, mut bytes, mut buf) = (Sha256::new(), 0u64, vec![0u8; 256 * 1024]);
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        bytes += n as u64;
    }
    let sha256 = hex::encode(hasher.finalize());
    if bytes != m.dump.bytes || sha256 != m.dump.sha256 {
        bail!(
            "{} is incomplete or corrupt: {bytes} bytes with SHA-256 {sha256}, but its manifest says {} bytes with \
             SHA-256 {}",
            path.display(),
            m.dump.bytes,
            m.dump.sha256
        );
    }
    Ok(())
}

/// Compares the backup's migrations with this binary's: how many of ours it predates, and which of its own this
/// binary does not know. Those mean a newer vpnshop's schema, refused unless `allow_newer`: a release runs on a
/// schema one release newer (migrations are written so), but nothing promises more.
fn check_migrations(m: &Manifest, allow_newer: bool) -> anyhow::Result<(usize, Vec<i64>)> {
    let known: BTreeSet<i64> =
        crate::db::MIGRATOR.iter().filter(|x| x.migration_type.is_up_migration()).map(|x| x.version).collect();
    let theirs: BTreeSet<i64> = m.migrations.iter().copied().collect();
    let unknown: Vec<i64> = theirs.difference(&known).copied().collect();
    if !unknown.is_empty() && !allow_newer {
        let list: Vec<String> = unknown.iter().map(ToString::to_string).collect();
        bail!(
            "the backup was made by vpnshop {} with migrations this vpnshop ({}) does not know ({}): restore it \
             with vpnshop {} or newer (--allow-newer restores it anyway, e.g. to roll back an upgrade whose \
             migrations the previous release runs on)",
            m.vpnshop_version,
            env!("CARGO_PKG_VERSION"),
            list.join(", "),
            m.vpnshop_version
        );
    }
    Ok((known.difference(&theirs).count(), unknown))
}

/// `pg_restore` in one transaction, reading the file (through `age --decrypt` when encrypted).
async fn run_pg_restore(
    target: &Target,
    options: &RestoreOptions,
    encrypted: bool,
    replace: bool,
) -> anyhow::Result<()> {
    let mut cmd = Tool::PgRestore.command(&options.programs.pg_restore);
    cmd.args(["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]);
    if replace {
        cmd.args(["--clean", "--if-exists"]);
    }
    target.apply(&mut cmd);
    let untouched = "nothing was restored: the database is as it was";
    if !encrypted {
        cmd.arg(&options.file);
        return Tool::PgRestore.spawn(&mut cmd)?.finish().await.context(untouched);
    }
    let identity = options.identity.as_deref().context("an encrypted backup needs --identity")?;
    let mut age = decrypt_command(&options.programs.age, identity)?;
    age.arg(&options.file);
    let mut age = Tool::Age.spawn(&mut age)?;
    let plain: Stdio =
        age.child.stdout.take().context("age's output")?.try_into().context("piping age into pg_restore")?;
    cmd.stdin(plain);
    let restored = Tool::PgRestore.spawn(&mut cmd)?.finish().await;
    match (age.finish().await, restored) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Err(_)) | (Ok(()), Err(e)) => Err(e).context(untouched),
        (Err(e), Ok(())) => Err(e).context(
            "age failed although pg_restore finished: the database may hold part of the backup; restore again into \
             a new, empty database",
        ),
    }
}
