//! What `deploy/` ships, checked with the real tools: install.sh run for real into a directory, the systemd
//! units through `systemd-analyze`, the Caddyfile through `caddy`, the Dockerfile through hadolint, the compose
//! file through `docker-compose`, and two real containers made with debootstrap and started with
//! systemd-nspawn: the Dockerfile's runtime stage running the binary, and a booted systemd where install.sh
//! installs the shop and systemd runs it under the units' sandbox.

mod container;
mod install;
mod lint;
mod machine;
mod systemd;
mod units;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

use crate::helpers::{have, manifest_dir};

/// Whether `program` starts at all.
fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).output().is_ok()
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Root is needed to own files as another user, to debootstrap and to start containers; without it the
/// tests that need it are skipped even under VPNSHOP_REQUIRE_TOOLS (CI runs as root).
fn root_or_skip(what: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("skipping: {what} needs root");
    false
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn repo(path: &str) -> PathBuf {
    manifest_dir().join(path)
}

/// The binary the tests built (a debug build: the same code as the release binary the Dockerfile makes).
fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_vpnshop")
}

/// Runs deploy/install.sh into `root` with the test binary.
fn install_into(root: &Path) -> Output {
    Command::new("bash")
        .arg(repo("deploy/install.sh"))
        .arg("--root")
        .arg(root)
        .arg("--binary")
        .arg(binary())
        .output()
        .expect("run install.sh")
}

/// A root file system from scripts/ci-rootfs (cached tarball) unpacked into a fresh directory; `None` when
/// the tools are missing (and allowed to be).
fn rootfs(args: &[&str]) -> Option<TempDir> {
    let tools = ["debootstrap", "zstd", "systemd-nspawn", "nsenter"];
    let missing: Vec<&str> = tools.into_iter().filter(|t| !runs(t, &["--version"])).collect();
    if !have(&format!("{missing:?}"), missing.is_empty()) {
        return None;
    }
    let made = Command::new(repo("scripts/ci-rootfs")).args(args).output().expect("run scripts/ci-rootfs");
    assert!(made.status.success(), "scripts/ci-rootfs {args:?}:\n{}", text(&made));
    let tarball = String::from_utf8_lossy(&made.stdout).trim().to_owned();
    let dir = tempfile::Builder::new().prefix("vpnshop-rootfs-").tempdir().unwrap();
    let unpacked = Command::new("tar")
        .args(["--numeric-owner", "--xattrs", "--zstd", "-xpf", &tarball, "-C"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(unpacked.status.success(), "unpacking {tarball}: {}", text(&unpacked));
    Some(dir)
}
