//! Which backups to keep: the newest of each of the `keep_daily` most recent days that have a backup, and the
//! newest of each of the `keep_weekly` most recent ISO weeks that have one (UTC). Counting only days that have a
//! backup means a run of failed nights never ages the last good backups out. Only our own dump files (and their
//! manifests) are ever deleted; the backup just made never is.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use chrono::Datelike;

use super::names::{BackupName, PARTIAL_PREFIX, PARTIAL_SUFFIX};

/// How many days and weeks keep a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub keep_daily: u32,
    pub keep_weekly: u32,
}

/// The dump file names among `names` to delete under `policy`; `just_made` is always kept. Names that are not
/// our dump files are never returned.
pub fn to_delete<'a>(names: impl IntoIterator<Item = &'a str>, policy: Policy, just_made: &str) -> Vec<String> {
    let mut backups: Vec<(BackupName, &str)> =
        names.into_iter().filter_map(|n| BackupName::parse(n).map(|b| (b, n))).collect();
    // newest first; the name breaks ties so the choice never depends on the directory's order
    backups.sort_by(|a, b| b.cmp(a));
    let (mut days, mut weeks) = (HashSet::new(), HashSet::new());
    let mut doomed = Vec::new();
    for (backup, name) in backups {
        let date = backup.stamp.date_naive();
        let week = (date.iso_week().year(), date.iso_week().week());
        let mut keep = name == just_made;
        if !days.contains(&date) && days.len() < policy.keep_daily as usize {
            days.insert(date);
            keep = true;
        }
        if !weeks.contains(&week) && weeks.len() < policy.keep_weekly as usize {
            weeks.insert(week);
            keep = true;
        }
        if !keep {
            doomed.push(name.to_owned());
        }
    }
    doomed.sort();
    doomed
}

/// A partial file this old is what a crashed backup left: no backup runs that long.
const STALE_PARTIAL: Duration = Duration::from_secs(24 * 3600);

/// Applies `policy` to `dir`: deletes the doomed dumps with their manifests, and partial files a crashed run
/// left more than a day ago. Returns the dump files deleted.
pub fn prune(dir: &Path, policy: Policy, just_made: &str) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing backup directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("listing backup directory {}", dir.display()))?;
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if let (true, Some(name)) = (is_file, entry.file_name().to_str()) {
            names.push(name.to_owned());
        }
    }
    let doomed = to_delete(names.iter().map(String::as_str), policy, just_made);
    for name in &doomed {
        let backup = BackupName::parse(name).expect("to_delete returns backup names");
        std::fs::remove_file(dir.join(name)).with_context(|| format!("deleting old backup {name}"))?;
        match std::fs::remove_file(dir.join(backup.manifest())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("deleting the manifest of {name}"));
            }
            _ => {}
        }
    }
    let now = SystemTime::now();
    for name in names.iter().filter(|n| n.starts_with(PARTIAL_PREFIX) && n.ends_with(PARTIAL_SUFFIX)) {
        let path = dir.join(name);
        let age = std::fs::metadata(&path).and_then(|m| m.modified()).ok().and_then(|m| now.duration_since(m).ok());
        if age.is_some_and(|age| age > STALE_PARTIAL) {
            // best effort: a leftover that cannot be deleted harms nothing but space
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(doomed)
}

#[cfg(test)]
mod tests;
