//! deploy/install.sh run for real into a temporary directory (`--root`): what it leaves, with which modes
//! and owners, that a second run changes nothing, and that the operator's files are never overwritten.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::{have, install_into, repo, root_or_skip, runs, text};

/// (path, mode, owner: "root" or "vpnshop", group)
const TREE: [(&str, u32, &str, &str); 17] = [
    ("etc/vpnshop", 0o750, "root", "vpnshop"),
    ("etc/vpnshop/default.toml", 0o640, "root", "vpnshop"),
    ("etc/vpnshop/production.toml", 0o640, "root", "vpnshop"),
    ("etc/vpnshop/plans.toml", 0o640, "root", "vpnshop"),
    ("etc/vpnshop/vpnshop.env", 0o600, "root", "root"),
    ("etc/vpnshop/id_ed25519", 0o640, "root", "vpnshop"),
    ("etc/vpnshop/id_ed25519.pub", 0o644, "root", "vpnshop"),
    ("var/lib/vpnshop", 0o750, "vpnshop", "vpnshop"),
    ("var/lib/vpnshop/backups", 0o750, "vpnshop", "vpnshop"),
    ("usr/local/bin/vpnshop", 0o755, "root", "root"),
    ("usr/local/sbin/vpnshopctl", 0o755, "root", "root"),
    ("etc/systemd/system/vpnshop.service", 0o644, "root", "root"),
    ("etc/systemd/system/vpnshop-backup.service", 0o644, "root", "root"),
    ("etc/systemd/system/vpnshop-backup.timer", 0o644, "root", "root"),
    ("etc/sysusers.d/vpnshop.conf", 0o644, "root", "root"),
    ("usr/local/share/doc/vpnshop/deploy.md", 0o644, "root", "root"),
    ("usr/local/share/doc/vpnshop/operations.md", 0o644, "root", "root"),
];

/// uid or gid of `name` in the tree's own /etc/passwd or /etc/group ("root" is 0).
fn id_in(root: &Path, db: &str, name: &str) -> u32 {
    if name == "root" {
        return 0;
    }
    let table = std::fs::read_to_string(root.join("etc").join(db)).unwrap();
    let line =
        table.lines().find(|l| l.starts_with(&format!("{name}:"))).unwrap_or_else(|| panic!("no {name} in {db}"));
    line.split(':').nth(2).unwrap().parse().unwrap()
}

#[test]
fn install_sh_and_the_scripts_it_installs_pass_shellcheck() {
    let scripts = ["deploy/install.sh", "deploy/vpnshopctl", "deploy/docker/healthcheck", "scripts/ci-rootfs"];
    for script in scripts {
        let syntax = Command::new("bash").arg("-n").arg(repo(script)).output().unwrap();
        assert!(syntax.status.success(), "{script}: {}", text(&syntax));
    }
    if !have("shellcheck", runs("shellcheck", &["--version"])) {
        return;
    }
    let lint = Command::new("shellcheck").args(scripts.map(repo)).output().unwrap();
    assert!(lint.status.success(), "shellcheck:\n{}", text(&lint));
}

#[test]
fn install_sh_refuses_bad_options_and_a_missing_binary() {
    let out = Command::new("bash").arg(repo("deploy/install.sh")).arg("--frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("unknown option: --frobnicate"), "{}", text(&out));
    if !root_or_skip("install.sh") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo("deploy/install.sh"))
        .arg("--root")
        .arg(dir.path())
        .args(["--binary", "/nonexistent/vpnshop"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("no vpnshop binary at /nonexistent/vpnshop"), "{}", text(&out));
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none(), "nothing written before the check");
}

#[test]
fn install_sh_lays_out_the_tree_once_and_keeps_the_operators_files() {
    if !root_or_skip("install.sh") || !have("systemd-sysusers", runs("systemd-sysusers", &["--version"])) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let first = install_into(root);
    assert!(first.status.success(), "first run:\n{}", text(&first));
    let log = text(&first);
    assert!(log.contains("created user vpnshop") && log.contains("systemctl enable --now vpnshop"), "{log}");
    assert!(log.contains("systemd is not running here: no daemon-reload"), "never touches the host's systemd: {log}");

    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let user = passwd.lines().find(|l| l.starts_with("vpnshop:")).expect("user vpnshop");
    assert!(user.ends_with(":/var/lib/vpnshop:/usr/sbin/nologin"), "{user}");
    assert!(id_in(root, "passwd", "vpnshop") < 1000, "a system user: {user}");
    for (path, mode, owner, group) in TREE {
        let meta = std::fs::metadata(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.mode() & 0o7777, mode, "{path}: mode {:o}", meta.mode() & 0o7777);
        assert_eq!(meta.uid(), id_in(root, "passwd", owner), "{path}: owner");
        assert_eq!(meta.gid(), id_in(root, "group", group), "{path}: group");
    }
    let installed = std::fs::read(root.join("usr/local/bin/vpnshop")).unwrap();
    assert!(installed == std::fs::read(super::binary()).unwrap(), "the given binary is installed");
    let env = std::fs::read_to_string(root.join("etc/vpnshop/vpnshop.env")).unwrap();
    let jwt = env.lines().find_map(|l| l.strip_prefix("VPNSHOP__SECURITY__JWT_SECRET=")).expect("a JWT secret");
    assert!(jwt.len() >= 32 && jwt.chars().all(|c| c.is_ascii_alphanumeric()), "generated: {}", jwt.len());
    for key in ["DATABASE_URL=", "TELEGRAM_BOT_TOKEN=", "VPNSHOP__PROVISION__SSH_KEY_PATH=/etc/vpnshop/id_ed25519"] {
        assert!(env.lines().any(|l| l.starts_with(key)), "{key} in the env file:\n{env}");
    }
    // the private key and its .pub belong together (ssh-keygen wants a 0600 copy to read it)
    let copy = tempfile::NamedTempFile::new().unwrap();
    std::fs::copy(root.join("etc/vpnshop/id_ed25519"), copy.path()).unwrap();
    std::fs::set_permissions(copy.path(), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let public = Command::new("ssh-keygen").arg("-y").arg("-f").arg(copy.path()).output().unwrap();
    assert!(public.status.success(), "{}", text(&public));
    let shipped = std::fs::read_to_string(root.join("etc/vpnshop/id_ed25519.pub")).unwrap();
    let key_of = |line: &str| line.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    assert_eq!(key_of(&String::from_utf8_lossy(&public.stdout)), key_of(&shipped));

    // the second run finds everything in place
    let second = install_into(root);
    assert!(second.status.success(), "second run:\n{}", text(&second));
    let log = text(&second);
    assert!(log.contains("nothing to change"), "{log}");
    let acted = |l: &&str| ["installed ", "made ", "created ", "saved "].iter().any(|w| l.starts_with(w));
    assert_eq!(log.lines().filter(acted).count(), 0, "{log}");

    // the operator's files stay; the shipped defaults follow the release, the old ones kept aside
    std::fs::write(root.join("etc/vpnshop/vpnshop.env"), "DATABASE_URL=postgres://mine\n").unwrap();
    std::fs::write(root.join("etc/vpnshop/production.toml"), "[http]\naddr = \"127.0.0.1:8081\"\n").unwrap();
    std::fs::write(root.join("etc/vpnshop/default.toml"), "# edited\n").unwrap();
    std::fs::write(root.join("etc/systemd/system/vpnshop.service"), "[Unit]\n").unwrap();
    let third = install_into(root);
    assert!(third.status.success(), "third run:\n{}", text(&third));
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("etc/vpnshop/vpnshop.env"), "DATABASE_URL=postgres://mine\n");
    assert_eq!(read("etc/vpnshop/production.toml"), "[http]\naddr = \"127.0.0.1:8081\"\n");
    assert_eq!(read("etc/vpnshop/default.toml"), read_repo("config/default.toml"));
    assert_eq!(read("etc/vpnshop/default.toml.old"), "# edited\n");
    assert_eq!(read("etc/systemd/system/vpnshop.service"), read_repo("deploy/systemd/vpnshop.service"));
    let log = text(&third);
    assert!(
        log.contains("kept /etc/vpnshop/vpnshop.env") && log.contains("installed /etc/systemd/system/vpnshop.service")
    );
}

fn read_repo(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}
