//! Making a backup: one REPEATABLE READ snapshot of the database gives both the manifest (row counts and
//! checksums) and `pg_dump --snapshot` of it; the dump streams (through `age` when encrypting, so plaintext never
//! touches the disk) into a hidden partial file, is fsynced and only then renamed to its backup name.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use super::manifest::{self, DumpFile, Manifest};
use super::names::BackupName;
use super::retention::{self, Policy};
use super::tools::{Target, Tool};
use super::{Encryption, Programs};
use crate::config::Settings;

/// What to back up where.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub dir: PathBuf,
    pub retention: Option<Policy>,
    pub encryption: Encryption,
    pub programs: Programs,
}

impl BackupOptions {
    /// As configured in `[backup]`.
    pub fn from_settings(settings: &Settings) -> BackupOptions {
        let b = &settings.backup;
        BackupOptions {
            dir: b.dir.clone(),
            retention: Some(Policy { keep_daily: b.keep_daily, keep_weekly: b.keep_weekly }),
            encryption: Encryption { recipients: b.recipients.clone(), recipients_file: b.recipients_file.clone() },
            programs: Programs::from_settings(settings),
        }
    }
}

/// A finished backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    pub path: PathBuf,
    pub manifest_path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    pub tables: usize,
    pub rows: i64,
    /// Old backups retention deleted.
    pub pruned: Vec<String>,
}

/// A file that is deleted unless kept: what a failed or cancelled backup wrote never stays.
struct Partial(Option<PathBuf>);

impl Partial {
    fn path(&self) -> &Path {
        self.0.as_deref().expect("a partial file is used before it is kept")
    }

    /// Renames it to `to` (never over an existing file) and makes the rename durable.
    fn keep_as(mut self, to: &Path) -> anyhow::Result<()> {
        let from = self.0.take().expect("kept once");
        if to.exists() {
            let _ = std::fs::remove_file(&from);
            bail!("{} already exists", to.display());
        }
        std::fs::rename(&from, to).with_context(|| format!("renaming {} to {}", from.display(), to.display()))
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Creates `path` for writing, readable by its owner only (a backup holds every secret of the shop).
async fn create_private(path: &Path) -> anyhow::Result<tokio::fs::File> {
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path).await.with_context(|| format!("cannot write in the backup directory: {}", path.display()))
}

/// Copies `from` into `file`, fsyncs it, and returns its size and SHA-256.
async fn write_synced(mut from: impl AsyncRead + Unpin, mut file: tokio::fs::File) -> anyhow::Result<(u64, String)> {
    let (mut hasher, mut bytes, mut buf) = (Sha256::new(), 0u64, vec![0u8; 256 * 1024]);
    loop {
        let n = from.read(&mut buf).await.context("reading the dump")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n]).await.context("writing the backup")?;
        bytes += n as u64;
    }
    file.sync_all().await.context("syncing the backup to disk")?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

/// Opens a connection with no statement or idle limits: the snapshot stays open while `pg_dump` reads it.
pub(super) async fn connect(settings: &Settings) -> anyhow::Result<PgConnection> {
    let options = crate::db::connect_options(settings)?
        .options([("statement_timeout", "0"), ("idle_in_transaction_session_timeout", "0")]);
    PgConnection::connect_with(&options).await.context("connecting to the database")
}

/// Backs up the database of `settings` as `options` say.
pub async fn backup(settings: &Settings, options: &BackupOptions) -> anyhow::Result<BackupReport> {
    let target = Target::from_url(settings.database_url())?;
    let dir = &options.dir;
    create_dir(dir)?;
    let mut conn = connect(settings).await?;
    let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut *tx).await?;
    let (at, database, server_version): (chrono::DateTime<chrono::Utc>, String, String) =
        sqlx::query_as("SELECT now(), current_database(), current_setting('server_version')")
            .fetch_one(&mut *tx)
            .await?;
    let tables = manifest::digests(&mut tx).await.context("counting the tables in the snapshot")?;
    let migrations = manifest::migrations(&mut tx).await.context("reading the applied migrations")?;

    let name = BackupName::new(at, options.encryption.is_on());
    let (path, manifest_path) = (dir.join(name.file()), dir.join(name.manifest()));
    if path.exists() {
        bail!("{} already exists (a backup in the same second)", path.display());
    }
    let partial = Partial(Some(dir.join(BackupName::partial(&name.file()))));
    let file = create_private(partial.path()).await?;

    let mut dump = Tool::PgDump.command(&options.programs.pg_dump);
    dump.args(["--format=custom", "--compress=6", &format!("--snapshot={snapshot}")]);
    target.apply(&mut dump);
    let mut dump = Tool::PgDump.spawn(&mut dump)?;
    let out = dump.child.stdout.take().context("pg_dump's output")?;
    let (bytes, sha256, age) = if options.encryption.is_on() {
        let mut age = options.encryption.encrypt_command(&options.programs.age)?;
        let piped: Stdio = out.try_into().context("piping pg_dump into age")?;
        age.stdin(piped);
        let mut age = Tool::Age.spawn(&mut age)?;
        let out = age.child.stdout.take().context("age's output")?;
        let (bytes, sha256) = write_synced(out, file).await?;
        (bytes, sha256, Some(age))
    } else {
        let (bytes, sha256) = write_synced(out, file).await?;
        (bytes, sha256, None)
    };
    // age refusing a recipient makes pg_dump fail on a broken pipe: age's error is the one that explains
    if let Some(age) = age {
        age.finish().await?;
    }
    dump.finish().await?;
    tx.commit().await?;
    let _ = conn.close().await;

    let rows = tables.iter().map(|t| t.rows).sum();
    let manifest = Manifest {
        format: manifest::FORMAT,
        vpnshop_version: env!("CARGO_PKG_VERSION").to_owned(),
        created_at: at,
        database,
        server_version,
        dump: DumpFile { file: name.file(), bytes, sha256: sha256.clone(), encrypted: name.encrypted },
        migrations,
        tables,
    };
    let manifest_partial = Partial(Some(dir.join(BackupName::partial(&name.manifest()))));
    let json = serde_json::to_vec_pretty(&manifest).context("writing the manifest")?;
    let json =
        if options.encryption.is_on() { options.encryption.encrypt(&options.programs.age, json).await? } else { json };
    write_synced(&json[..], create_private(manifest_partial.path()).await?).await?;
    // the manifest first: a file that looks like a backup always has its manifest
    manifest_partial.keep_as(&manifest_path)?;
    partial.keep_as(&path)?;
    sync_dir(dir)?;

    let pruned = match options.retention {
        Some(policy) => retention::prune(dir, policy, &name.file())?,
        None => Vec::new(),
    };
    Ok(BackupReport { path, manifest_path, bytes, sha256, tables: manifest.tables.len(), rows, pruned })
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).with_context(|| format!("cannot create the backup directory {}", dir.display()))
}

/// Makes the renames in `dir` survive a crash.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the backup directory {}", dir.display()))
}
