//! Backups that restore: `pg_dump` of the database with a manifest taken in the same snapshot (`dump`), optional
//! encryption with `age`, retention by day and ISO week (`retention`), and a restore that runs in one transaction
//! and then checks every table against the manifest (`restore`). Used by `vpnshop backup`/`restore` and by the
//! `backup` job of the scheduler.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::Settings;
use tools::Tool;

mod dump;
pub mod manifest;
pub mod names;
mod restore;
pub mod retention;
mod tools;

pub use dump::{BackupOptions, BackupReport, backup};
pub use restore::{RestoreOptions, RestoreReport, restore};

/// The programs used, as configured (`backup.pg_dump`, `backup.pg_restore`, `backup.age`).
#[derive(Debug, Clone)]
pub struct Programs {
    pub pg_dump: PathBuf,
    pub pg_restore: PathBuf,
    pub age: PathBuf,
}

impl Programs {
    pub fn from_settings(settings: &Settings) -> Programs {
        let b = &settings.backup;
        Programs { pg_dump: b.pg_dump.clone(), pg_restore: b.pg_restore.clone(), age: b.age.clone() }
    }
}

/// Whom a backup is encrypted to (age recipients: `age1…` or SSH public keys); off when none are given.
#[derive(Debug, Clone, Default)]
pub struct Encryption {
    pub recipients: Vec<String>,
    pub recipients_file: Option<PathBuf>,
}

impl Encryption {
    pub fn is_on(&self) -> bool {
        !self.recipients.is_empty() || self.recipients_file.is_some()
    }

    /// `age --encrypt` to the recipients, stdin to stdout.
    fn encrypt_command(&self, age: &Path) -> anyhow::Result<tokio::process::Command> {
        let mut cmd = Tool::Age.command(age);
        cmd.arg("--encrypt");
        for r in &self.recipients {
            cmd.arg("--recipient").arg(r);
        }
        if let Some(file) = &self.recipients_file {
            std::fs::File::open(file).with_context(|| format!("cannot read the recipients file {}", file.display()))?;
            cmd.arg("--recipients-file").arg(file);
        }
        Ok(cmd)
    }

    /// Encrypts a small document (the manifest).
    async fn encrypt(&self, age: &Path, data: Vec<u8>) -> anyhow::Result<Vec<u8>> {
        run_filter(self.encrypt_command(age)?, data).await
    }
}

/// `age --decrypt --identity FILE`.
fn decrypt_command(age: &Path, identity: &Path) -> anyhow::Result<tokio::process::Command> {
    std::fs::File::open(identity).with_context(|| format!("cannot read the identity file {}", identity.display()))?;
    let mut cmd = Tool::Age.command(age);
    cmd.arg("--decrypt").arg("--identity").arg(identity);
    Ok(cmd)
}

/// Runs `age` over `data` in memory and returns its output.
async fn run_filter(mut cmd: tokio::process::Command, data: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    cmd.stdin(Stdio::piped());
    let mut age = Tool::Age.spawn(&mut cmd)?;
    let mut input = age.child.stdin.take().context("age's input")?;
    // written while the output is read, so neither pipe can fill up and stall the other
    let writer = tokio::spawn(async move {
        let _ = input.write_all(&data).await;
    });
    let mut out = Vec::new();
    age.child.stdout.take().context("age's output")?.read_to_end(&mut out).await.context("reading from age")?;
    let _ = writer.await;
    age.finish().await?;
    Ok(out)
}

/// What a file starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A `pg_dump --format=custom` archive.
    Dump,
    /// An age file (binary or armored).
    Age,
    Json,
}

fn sniff(path: &Path) -> anyhow::Result<Option<Kind>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(64);
    std::fs::File::open(path)
        .and_then(|f| f.take(64).read_to_end(&mut head))
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok(if head.starts_with(b"PGDMP") {
        Some(Kind::Dump)
    } else if head.starts_with(b"age-encryption.org/") || head.starts_with(b"-----BEGIN AGE ENCRYPTED FILE-----") {
        Some(Kind::Age)
    } else if head.trim_ascii_start().starts_with(b"{") {
        Some(Kind::Json)
    } else {
        None
    })
}

/// Reads a file that may be age-encrypted, decrypting it with `identity`.
async fn read_maybe_encrypted(path: &Path, age: &Path, identity: Option<&Path>) -> anyhow::Result<Vec<u8>> {
    let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if sniff(path)? != Some(Kind::Age) {
        return Ok(data);
    }
    let Some(identity) = identity else {
        bail!(
            "{} is encrypted: pass --identity FILE (the age identity whose recipient it was made for)",
            path.display()
        )
    };
    run_filter(decrypt_command(age, identity)?, data)
        .await
        .with_context(|| format!("cannot decrypt {} with {}", path.display(), identity.display()))
}
