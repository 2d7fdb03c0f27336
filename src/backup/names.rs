//! Backup file names: `vpnshop-20261203T074500Z.dump` (`.dump.age` when encrypted) beside its manifest
//! `vpnshop-20261203T074500Z.manifest.json` (`.manifest.json.age`). The time is the snapshot's, in UTC. A backup
//! being written has a hidden name ending in `.partial`, so it never looks like a backup.

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDateTime, Utc};

const PREFIX: &str = "vpnshop-";
const STAMP: &str = "%Y%m%dT%H%M%SZ";
/// `20261203T074500Z`
const STAMP_LEN: usize = 16;
/// Hidden and suffixed: what a crash leaves behind is never taken for a backup.
pub const PARTIAL_PREFIX: &str = ".vpnshop-";
pub const PARTIAL_SUFFIX: &str = ".partial";

/// One backup: its time and whether it is encrypted with age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BackupName {
    pub stamp: DateTime<Utc>,
    pub encrypted: bool,
}

impl BackupName {
    /// The backup taken at `at` (to the second).
    pub fn new(at: DateTime<Utc>, encrypted: bool) -> BackupName {
        let stamp = DateTime::from_timestamp(at.timestamp(), 0).unwrap_or(at);
        BackupName { stamp, encrypted }
    }

    fn age(&self) -> &'static str {
        if self.encrypted { ".age" } else { "" }
    }

    /// The dump's file name.
    pub fn file(&self) -> String {
        format!("{PREFIX}{}.dump{}", self.stamp.format(STAMP), self.age())
    }

    /// Its manifest's file name.
    pub fn manifest(&self) -> String {
        format!("{PREFIX}{}.manifest.json{}", self.stamp.format(STAMP), self.age())
    }

    /// The name a file has while it is written.
    pub fn partial(file: &str) -> String {
        format!(".{file}{PARTIAL_SUFFIX}")
    }

    /// A dump's file name back to its backup; anything else (manifests, partial files, other files) is `None`.
    pub fn parse(file_name: &str) -> Option<BackupName> {
        let rest = file_name.strip_prefix(PREFIX)?;
        let (stamp, kind) = (rest.get(..STAMP_LEN)?, rest.get(STAMP_LEN..)?);
        let encrypted = match kind {
            ".dump" => false,
            ".dump.age" => true,
            _ => return None,
        };
        let at = NaiveDateTime::parse_from_str(stamp, STAMP).ok()?.and_utc();
        // strict: only what `file` writes (no lenient parses of other digits)
        (at.format(STAMP).to_string() == stamp).then_some(BackupName { stamp: at, encrypted })
    }
}

/// The manifest beside a dump file: `X.dump[.age]` → `X.manifest.json[.age]` (any `X`, so a renamed copy works).
pub fn manifest_beside(dump: &Path) -> PathBuf {
    let name = dump.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (base, age) = match name.strip_suffix(".age") {
        Some(base) => (base, ".age"),
        None => (name.as_str(), ""),
    };
    let base = base.strip_suffix(".dump").unwrap_or(base);
    dump.with_file_name(format!("{base}.manifest.json{age}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn names_carry_the_utc_second_and_round_trip() {
        let b = BackupName::new(at("2026-12-03T07:45:00.987+00:00"), false);
        assert_eq!(b.file(), "vpnshop-20261203T074500Z.dump");
        assert_eq!(b.manifest(), "vpnshop-20261203T074500Z.manifest.json");
        assert_eq!(BackupName::parse(&b.file()), Some(b));
        let e = BackupName::new(at("2026-12-03T10:45:00+03:00"), true);
        assert_eq!(e.file(), "vpnshop-20261203T074500Z.dump.age");
        assert_eq!(e.manifest(), "vpnshop-20261203T074500Z.manifest.json.age");
        assert_eq!(BackupName::parse(&e.file()), Some(e));
        assert_eq!(BackupName::partial(&e.file()), ".vpnshop-20261203T074500Z.dump.age.partial");
    }

    #[test]
    fn only_dump_files_parse() {
        for other in [
            "vpnshop-20261203T074500Z.manifest.json",
            ".vpnshop-20261203T074500Z.dump.partial",
            "vpnshop-20261203T074500Z.dump.partial",
            "vpnshop-20261203T074500Z.dump.gz",
            "vpnshop-20261303T074500Z.dump",
            "vpnshop-20261203T254500Z.dump",
            "vpnshop-2026123T074500Z.dump",
            "vpnshop-20261203T074500.dump",
            "other-20261203T074500Z.dump",
            "vpnshop-20261203T074500Z.dumpx",
            "notes.txt",
            "",
            "vpnshop-",
            "vpnshop-ééééééééééééééééé.dump",
        ] {
            assert_eq!(BackupName::parse(other), None, "{other}");
        }
    }

    #[test]
    fn the_manifest_sits_beside_its_dump_even_when_renamed() {
        let m = |p: &str| manifest_beside(Path::new(p)).to_string_lossy().into_owned();
        assert_eq!(m("/b/vpnshop-20261203T074500Z.dump"), "/b/vpnshop-20261203T074500Z.manifest.json");
        assert_eq!(m("/b/vpnshop-20261203T074500Z.dump.age"), "/b/vpnshop-20261203T074500Z.manifest.json.age");
        assert_eq!(m("copy.dump.age"), "copy.manifest.json.age");
        assert_eq!(m("/x/offsite"), "/x/offsite.manifest.json");
    }
}
