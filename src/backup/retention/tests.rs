use std::fs::File;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, Utc};

use super::*;

fn at(date: &str, time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&format!("{date}T{time}+00:00")).unwrap().with_timezone(&Utc)
}

fn name(date: &str, time: &str) -> String {
    BackupName::new(at(date, time), false).file()
}

/// One backup at 03:45 every day from `first` to `last`.
fn nightly(first: &str, last: &str) -> Vec<String> {
    let (first, last) = (NaiveDate::parse_from_str(first, "%Y-%m-%d").unwrap(), last.parse::<NaiveDate>().unwrap());
    first.iter_days().take_while(|d| *d <= last).map(|d| name(&d.to_string(), "03:45:00")).collect()
}

fn policy(keep_daily: u32, keep_weekly: u32) -> Policy {
    Policy { keep_daily, keep_weekly }
}

fn plan(names: &[String], p: Policy, just_made: &str) -> Vec<String> {
    to_delete(names.iter().map(String::as_str), p, just_made)
}

#[test]
fn nothing_to_delete_in_an_empty_or_foreign_directory() {
    assert!(plan(&[], policy(7, 4), "vpnshop-20261203T034500Z.dump").is_empty());
    let foreign: Vec<String> = [
        "notes.txt",
        "vpnshop-20200101T000000Z.manifest.json",
        "vpnshop-20200101T000000Z.manifest.json.age",
        ".vpnshop-20200101T000000Z.dump.partial",
        "vpnshop-20200101T000000Z.dump.bak",
        "VPNSHOP-20200101T000000Z.dump",
        "pg-20200101.dump",
    ]
    .map(String::from)
    .into();
    assert!(plan(&foreign, policy(0, 0), "x").is_empty(), "only our dump files are ever deleted");
}

#[test]
fn the_newest_of_each_of_the_last_days_is_kept() {
    let names = nightly("2026-11-24", "2026-12-03");
    let doomed = plan(&names, policy(7, 0), &names[9]);
    assert_eq!(doomed, names[..3].to_vec(), "10 nights, 7 kept: the three oldest go");
}

#[test]
fn several_backups_in_a_day_keep_only_the_newest_of_that_day() {
    let names: Vec<String> =
        ["00:00:00", "03:45:00", "12:00:00", "23:59:59"].iter().map(|t| name("2026-12-02", t)).collect();
    let mut all = names.clone();
    all.push(name("2026-12-03", "00:00:00"));
    let doomed = plan(&all, policy(2, 0), &all[4]);
    assert_eq!(doomed, names[..3].to_vec(), "23:59:59 is the newest of 2 December; midnight starts 3 December");
}

#[test]
fn the_newest_of_each_of_the_last_iso_weeks_is_kept_too() {
    // 2026-11-30 is a Monday: W49 = 30 Nov–6 Dec, W48 = 23–29 Nov, W47 = 16–22, W46 = 9–15, W45 = 2–8, W44 ends 1 Nov
    let names = nightly("2026-11-01", "2026-12-03");
    let doomed = plan(&names, policy(7, 4), names.last().unwrap());
    let kept: Vec<&String> = names.iter().filter(|n| !doomed.contains(n)).collect();
    let expect: Vec<String> =
        ["2026-11-15", "2026-11-22", "2026-11-27", "2026-11-28", "2026-11-29", "2026-11-30", "2026-12-01"]
            .iter()
            .chain(&["2026-12-02", "2026-12-03"])
            .map(|d| name(d, "03:45:00"))
            .collect();
    assert_eq!(kept, expect.iter().collect::<Vec<_>>());
}

#[test]
fn weeks_change_on_monday_at_midnight_utc() {
    let sunday = name("2026-11-29", "23:59:59");
    let monday = name("2026-11-30", "00:00:00");
    let names = vec![name("2026-11-29", "01:00:00"), sunday.clone(), monday.clone()];
    let doomed = plan(&names, policy(0, 2), &monday);
    assert_eq!(doomed, vec![names[0].clone()], "Sunday's last and Monday's first are in different weeks");
}

#[test]
fn iso_weeks_cross_the_new_year() {
    // 2026 has 53 ISO weeks: Thursday 31 December 2026 and Saturday 2 January 2027 are both in 2026-W53
    let names = vec![name("2026-12-31", "03:45:00"), name("2027-01-02", "03:45:00"), name("2027-01-04", "03:45:00")];
    let doomed = plan(&names, policy(0, 2), &names[2]);
    assert_eq!(doomed, vec![names[0].clone()]);
}

#[test]
fn only_days_that_have_a_backup_count() {
    // backups failed for weeks: the last good ones are not aged out by the empty days
    let mut names = nightly("2026-11-01", "2026-11-05");
    names.push(name("2026-12-03", "03:45:00"));
    let doomed = plan(&names, policy(3, 0), &names[5]);
    assert_eq!(doomed, names[..3].to_vec());
}

#[test]
fn the_backup_just_made_is_never_deleted() {
    let names = nightly("2026-12-01", "2026-12-03");
    assert_eq!(plan(&names, policy(0, 0), &names[2]), names[..2].to_vec());
    // even when the clock went back and it is the oldest
    let older = name("2026-11-01", "00:00:00");
    let mut all = names.clone();
    all.push(older.clone());
    let doomed = plan(&all, policy(1, 0), &older);
    assert!(!doomed.contains(&older), "{doomed:?}");
    assert_eq!(doomed, names[..2].to_vec());
}

#[test]
fn encrypted_and_plain_backups_are_counted_alike() {
    let plain = name("2026-12-02", "03:45:00");
    let encrypted = BackupName::new(at("2026-12-03", "03:45:00"), true).file();
    let names = vec![plain.clone(), encrypted.clone()];
    assert_eq!(plan(&names, policy(1, 0), &encrypted), vec![plain]);
}

#[test]
fn the_order_of_names_does_not_change_the_choice() {
    let mut names = nightly("2026-10-01", "2026-12-03");
    let expect = plan(&names, policy(5, 3), "none");
    names.reverse();
    names.rotate_left(17);
    assert_eq!(plan(&names, policy(5, 3), "none"), expect);
    // the last 5 days hold the newest of weeks 49 and 48; week 47 adds 22 November
    assert_eq!(expect.len(), names.len() - 6);
}

fn touch(dir: &Path, name: &str) {
    std::fs::write(dir.join(name), b"x").unwrap();
}

#[test]
fn prune_deletes_old_dumps_with_their_manifests_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let names = nightly("2026-11-28", "2026-12-03");
    for n in &names {
        touch(d, n);
        touch(d, &BackupName::parse(n).unwrap().manifest());
    }
    for other in ["notes.txt", "vpnshop-20261101T000000Z.manifest.json", ".vpnshop-20261203T000000Z.dump.partial"] {
        touch(d, other);
    }
    std::fs::create_dir(d.join("vpnshop-20261101T000000Z.dump")).unwrap();
    let stale = ".vpnshop-20261130T034500Z.dump.age.partial";
    touch(d, stale);
    let two_days_ago = SystemTime::now() - Duration::from_secs(48 * 3600);
    File::options().write(true).open(d.join(stale)).unwrap().set_modified(two_days_ago).unwrap();

    let deleted = prune(d, policy(3, 0), names.last().unwrap()).unwrap();
    assert_eq!(deleted, names[..3].to_vec());
    let mut left: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    left.sort();
    let mut expect: Vec<String> = names[3..]
        .iter()
        .flat_map(|n| [n.clone(), BackupName::parse(n).unwrap().manifest()])
        .chain(
            [
                "notes.txt",
                "vpnshop-20261101T000000Z.manifest.json",
                ".vpnshop-20261203T000000Z.dump.partial",
                "vpnshop-20261101T000000Z.dump",
            ]
            .map(String::from),
        )
        .collect();
    expect.sort();
    assert_eq!(left, expect, "a fresh partial (a backup running now), foreign files and directories stay");
}

#[test]
fn prune_names_a_directory_it_cannot_read() {
    let err = prune(Path::new("/nonexistent/vpnshop-backups"), policy(1, 1), "x").unwrap_err();
    assert!(format!("{err:#}").contains("/nonexistent/vpnshop-backups"), "{err:#}");
}
